"""iFlyChat's REST API 1.1 (seed 000): bodies (JSON or a form) and answers."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

Key = Annotated[str | None, Meta(description="The hub's admin key.")]
#: iFlyChat's PHP clients send numbers as strings; both are accepted.
Number = int | str | None


class IflyKeyBody(Struct):
    api_key: Key = None


class IflyRoomCreateBody(Struct):
    api_key: Key = None
    room_name: Annotated[Number, Meta(description="Required, at most 200 characters.")] = None
    room_id: Annotated[Number, Meta(description="Choose the id (else a number is made).")] = None
    room_role: Number = None
    room_private: Number = None
    room_moderate: Number = None


class IflyRoomEditBody(Struct):
    api_key: Key = None
    room_name: Number = None
    room_role: Number = None
    room_private: Number = None
    room_moderate: Number = None


class IflyRoomListBody(Struct):
    api_key: Key = None
    offset: Annotated[Number, Meta(description="From 0.")] = None
    limit: Annotated[Number, Meta(description="1 to 1000 (the default).")] = None


class IflyKickBody(Struct):
    api_key: Key = None
    room_id: Annotated[Number, Meta(description="The user also leaves this room.")] = None


class IflyUser(Struct):
    user_id: str
    user_role: str
    user_name: str
    user_status: Annotated[str, Meta(description='"1" online, "2" away, "3" busy.')]
    user_avatar_url: str
    user_profile_url: str


class IflyUsersAnswer(Struct):
    users: list[IflyUser]
    length: int


class IflyRoomCreated(Struct):
    room_id: int | str


class IflyRoom(Struct):
    room_id: int | str
    room_name: str
    member_count: int


class IflyRoomsAnswer(Struct):
    rooms: list[IflyRoom]
    length: int
    total: int


class IflySuccess(Struct):
    success: bool = True


class IflyError(Struct):
    """Every error; ``code`` is the HTTP status."""

    error: str
    code: int
    success: bool = False
