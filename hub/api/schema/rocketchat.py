"""Rocket.Chat's presence REST API (``/api/v1``): bodies, queries and answers."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct, field

Ids = Annotated[list[str], Meta(description="User ids (`ids=a,b`, `ids[]=a&ids[]=b`).")]


class RcPresenceQuery(Struct):
    """``users.presence``: ``ids`` first; else ``from`` inside the window; else everyone."""

    ids: Ids = []
    from_: Annotated[
        str | None,
        Meta(description="ISO 8601 time: the users changed at or after it (inside the window)."),
    ] = field(default=None, name="from")


class RcTargetQuery(Struct):
    """A user by id or by username (``users.getPresence``: neither is the caller)."""

    userId: Annotated[str, Meta(max_length=256)] | None = None
    username: Annotated[str, Meta(max_length=256)] | None = None


class RcSetStatusBody(Struct):
    """``users.setStatus``: the caller's own status (the admin: any user's)."""

    status: Annotated[
        str | None, Meta(description="online, away, busy or offline (invisible).")
    ] = None
    message: Annotated[str | None, Meta(description="Status text, at most 120 characters.")] = None
    expiresAt: Annotated[
        str | None,
        Meta(
            description="ISO 8601 time (at most a year ahead) when the status and message "
            "clear: the status returns to automatic (online)."
        ),
    ] = None
    lastSeen: Annotated[
        Literal["everyone", "nobody"] | None,
        Meta(description="Who may see the user's last seen (its own choice)."),
    ] = None
    userId: str | None = None
    username: str | None = None


class RcListByStatusQuery(Struct):
    """``users.listByStatus`` (seed 003)."""

    status: Literal["active", "deactivated"] | None = None
    hasLoggedIn: Annotated[str | None, Meta(description="true or false.")] = None
    type: str | None = None
    roles: Annotated[list[str], Meta(description="Any of these roles (`roles[]=`).")] = []
    searchTerm: str = ""
    offset: Annotated[int, Meta(ge=0)] = 0
    count: Annotated[int, Meta(ge=0, description="0 means the upper limit (100).")] = 50
    sort: Annotated[str | None, Meta(description='A JSON object like `{"username": 1}`.')] = None


class RcPresenceUser(Struct, omit_defaults=True):
    """A user as ``users.presence`` shows it."""

    id: str = field(name="_id")
    username: str
    name: str
    status: str
    statusText: str
    utcOffset: int | float
    avatarETag: str | None = None


class RcPresenceAnswer(Struct):
    users: list[RcPresenceUser]
    full: bool
    success: bool = True


class RcGetPresenceAnswer(Struct, omit_defaults=True, kw_only=True):
    presence: str
    connectionStatus: str
    lastLogin: str | None = None
    lastSeen: Annotated[
        str | None,
        Meta(description="ISO 8601: when an offline user was last seen (unless hidden)."),
    ] = None
    success: bool


class RcSuccess(Struct):
    success: bool = True


class RcPreferences(Struct):
    preferences: dict[str, str] = {}


class RcUser(Struct, omit_defaults=True):
    """A user as ``me`` and ``users.info`` show it."""

    id: str = field(name="_id")
    username: str
    name: str
    type: str
    status: str
    statusConnection: str
    statusText: str
    utcOffset: int | float
    active: bool
    roles: list[str]
    lastLogin: str | None = None
    avatarETag: str | None = None


class RcMeAnswer(RcUser, omit_defaults=True, kw_only=True):
    """``me``: the caller, as Rocket.Chat shows it (``settings`` holds no preferences here)."""

    settings: RcPreferences
    success: bool


class RcUserInfoAnswer(Struct):
    user: RcUser
    success: bool = True


class RcListUser(Struct, omit_defaults=True):
    """A user as ``users.listByStatus`` shows it (seed 003)."""

    id: str = field(name="_id")
    username: str
    type: str
    roles: list[str]
    status: str
    active: bool
    name: str
    lastLogin: str | None = None
    avatarETag: str | None = None


class RcListByStatusAnswer(Struct):
    users: list[RcListUser]
    count: int
    offset: int
    total: int
    success: bool = True


class RcFailure(Struct, omit_defaults=True, kw_only=True):
    """400, 403, 404, 413, 503: what went wrong (``errorType`` as Rocket.Chat names it)."""

    error: str
    success: bool
    errorType: str | None = None


class RcUnauthorized(Struct):
    """401: missing or wrong credentials."""

    message: str
    status: str = "error"
