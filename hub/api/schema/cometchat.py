"""CometChat's ``GET /v3/users`` (seed 001): query and answers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

Flag = Annotated[str | None, Meta(description="true or false (also 1/0, yes/no).")]
Listed = Annotated[list[str], Meta(description="Comma-separated, or the parameter repeated.")]


class CcUsersQuery(Struct):
    searchKey: Annotated[str, Meta(description="A prefix of the uid and/or the name.")] = ""
    searchIn: Annotated[list[Literal["name", "uid"]], Meta(description="name, uid or both.")] = []
    status: Literal["available", "offline"] | None = None
    count: Flag = None
    perPage: Annotated[int, Meta(ge=1, le=1000)] = 100
    page: Annotated[int, Meta(ge=1)] = 1
    role: Annotated[str | None, Meta(description="The role shown (`default` when none).")] = None
    roles: Listed = []
    tags: Listed = []
    withTags: Flag = None
    onlyDeactivated: Flag = None
    withDeactivated: Flag = None


class CcUser(Struct, omit_defaults=True):
    uid: str
    name: str
    status: Literal["available", "offline"]
    role: str
    createdAt: int
    updatedAt: int
    avatar: str | None = None
    metadata: dict[str, Any] | None = None
    tags: list[str] | None = None
    lastActiveAt: int | None = None
    deactivatedAt: int | None = None


class CcPagination(Struct):
    total: int
    count: int
    per_page: int
    current_page: int
    total_pages: int


class CcMeta(Struct):
    pagination: CcPagination


class CcCursor(Struct):
    updatedAt: int
    affix: str = "prepend"


class CcUsersAnswer(Struct, omit_defaults=True):
    data: list[CcUser]
    meta: CcMeta
    cursor: CcCursor | None = None


class CcErrorBody(Struct):
    message: str
    devMessage: str
    source: str
    code: str


class CcError(Struct):
    """Every error: ``devMessage`` names what was wrong."""

    error: CcErrorBody
