"""Agora Chat's RESTful user system (seed 002): bodies and answers."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct


class AgoraNewUser(Struct):
    username: Annotated[str, Meta(description="1-64 characters of a-z, A-Z, 0-9, _, - and .")]
    password: Annotated[str, Meta(description="At most 64 bytes.")]
    nickname: Annotated[str, Meta(description="At most 100 characters.")] = ""


#: One user, or 1 to 60 of them.
AgoraRegisterBody = AgoraNewUser | list[AgoraNewUser]


class AgoraPasswordBody(Struct):
    newpassword: Annotated[str, Meta(description="At most 64 bytes.")]


class AgoraBatchStatusBody(Struct):
    usernames: Annotated[list[str], Meta(description="1 to 100 usernames.")]


class AgoraListQuery(Struct):
    limit: Annotated[int, Meta(ge=1, le=100)] = 10
    cursor: Annotated[str | None, Meta(description="The `cursor` of the previous page.")] = None


class AgoraEntity(Struct, omit_defaults=True):
    uuid: str
    type: str
    created: int
    modified: int
    username: str
    activated: bool
    nickname: str | None = None


class AgoraRegisterFailure(Struct):
    username: str
    registerUserFailReason: str


class AgoraAnswer(Struct, omit_defaults=True):
    """The page's common response fields, then what the call returns."""

    action: str
    application: str
    path: str
    uri: str
    entities: list[AgoraEntity]
    timestamp: int
    duration: int
    organization: str
    applicationName: str
    params: dict[str, list[str]] | None = None
    cursor: str | None = None
    count: int | None = None
    data: list[AgoraRegisterFailure] | dict[str, bool | str] | None = None


class AgoraAction(Struct):
    action: str
    timestamp: int
    duration: int


class AgoraBatchStatusAnswer(Struct):
    action: str
    data: list[dict[str, str]]
    timestamp: int
    duration: int


class AgoraError(Struct):
    error: str
    exception: str
    timestamp: int
    duration: int
    error_description: str
