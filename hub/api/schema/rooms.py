"""The hub's own room endpoints (``rooms.counts``, ``rooms.members``): queries and answers."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

#: Most members one ``rooms.members`` page may hold (the websocket's full-list bound).
MAX_PAGE = 10_000

#: Required: the endpoints answer 400 naming it when it is missing (query models have no
#: required field, so the reader's own message stays one shape).
Room = Annotated[str, Meta(max_length=128, description="The room id (required).")]


class RoomCountsQuery(Struct):
    room: Room = ""


class RoomMembersQuery(Struct):
    """A page of a room's members in the window order: from ``offset``, or after
    ``cursor`` (the ``cursor`` of the previous page, which members moving never shift)."""

    room: Room = ""
    offset: Annotated[int, Meta(ge=0, description="The index of the page's first member.")] = 0
    count: Annotated[int, Meta(ge=1, le=MAX_PAGE, description="Members per page.")] = 100
    cursor: (
        Annotated[
            str, Meta(max_length=1024, description="The previous page's cursor (not offset).")
        ]
        | None
    ) = None


class RoomCounts(Struct):
    """A room's numbers: members online, away, busy, and all of them."""

    room: str
    online: int
    away: int
    busy: int
    total: int
    cursor: Annotated[int, Meta(description="The store clock the numbers are as of (ms).")]
    success: bool = True


class RoomMember(Struct, omit_defaults=True):
    """A member's presence entry, as the websocket shows it."""

    id: str
    username: str
    name: str
    status: str
    text: str
    at: int
    lastSeen: int | None = None
    until: int | None = None


class RoomMembers(Struct):
    """One page of a room's members, online, then away, then busy, then offline by last
    seen (most recent first); ties by name, then id."""

    room: str
    members: list[RoomMember]
    offset: Annotated[int, Meta(description="The index of the page's first member.")]
    count: int
    total: int
    cursor: Annotated[
        str | None, Meta(description="Pass it as `cursor` for the next page; null at the end.")
    ]
    success: bool = True
