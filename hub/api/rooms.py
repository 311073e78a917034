"""The hub's own room endpoints, for rooms of any size: their numbers and their members.

``GET /api/v1/rooms.counts?room=R`` answers a room's numbers (members online, away, busy,
and all of them) from the room index, whatever the room's size: a sum over the store's
buckets, never a walk over members. ``GET /api/v1/rooms.members?room=R&offset=&count=``
pages through the members in the window order (:mod:`hub.model.roster`); each page's
``cursor`` names its last member's place in the order, so the next page (``cursor=``)
starts right after it even while members join, leave or change status before it. A page
holds up to 10,000 members. Both need a user token or the admin key; an unknown room is
404. Errors take the shapes of the ``/api/v1`` app they are served from.
"""

from __future__ import annotations

import base64
import binascii

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.api.http import BadRequest, NotFound, reply
from hub.api.query import read_query
from hub.api.schema import rocketchat as rc
from hub.api.schema import rooms as m
from hub.api.services import Services
from hub.api.spec import Operation
from hub.model.roster import total_of
from hub.stores.presence.base import Slice

TAG = "Hub"


def encode_cursor(key: str) -> str:
    """A page cursor: the last member's key, opaque to the client (URL-safe base64)."""
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequest("cursor is not one this hub gave (pass a page's cursor as is)") from None
    if "\x00" not in key or key[:1] not in "0123":
        raise BadRequest("cursor is not one this hub gave (pass a page's cursor as is)")
    return key


class RoomsApi:
    """``rooms.counts`` and ``rooms.members``."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.store = services.node.store

    async def _room(self, room: str) -> None:
        if not room:
            raise BadRequest("room is required: the id of the room (room=...)")
        if await self.services.admin.registry.get_room(room) is None:
            raise NotFound(f"no room {room!r}")

    async def counts(self, request: Request) -> Response:
        """A room's numbers."""
        await self.services.caller(request)
        query = read_query(request.query_params, m.RoomCountsQuery)
        await self._room(query.room)
        parts = await self.store.room_counts(query.room)
        cursor = await self.store.now()
        c = total_of(parts)
        return reply(m.RoomCounts(room=query.room, online=c.online, away=c.away, busy=c.busy,
                                  total=c.total, cursor=cursor))  # fmt: skip

    async def members(self, request: Request) -> Response:
        """A page of a room's members in the window order."""
        await self.services.caller(request)
        query = read_query(request.query_params, m.RoomMembersQuery)
        await self._room(query.room)
        piece: Slice
        if query.cursor is not None:
            piece = await self.store.room_after(query.room, decode_cursor(query.cursor),
                                                query.count)  # fmt: skip
        else:
            piece = await self.store.room_slice(query.room, query.offset, query.count)
        total = total_of(piece.parts).total
        members = [msgspec.convert(entry, m.RoomMember) for _, entry in piece.items]
        more = bool(piece.items) and not piece.at_end
        cursor = encode_cursor(piece.items[-1][0]) if more else None
        return reply(m.RoomMembers(room=query.room, members=members, offset=piece.start,
                                   count=len(members), total=total, cursor=cursor))  # fmt: skip

    def routes(self) -> list[Route]:
        return [
            Route("/rooms.counts", self.counts, methods=["GET"]),
            Route("/rooms.members", self.members, methods=["GET"]),
        ]


_AUTH = (("rcToken", "rcUserId"), ("bearer",))
_ERRORS = {400: rc.RcFailure, 401: rc.RcUnauthorized, 404: rc.RcFailure, 503: rc.RcFailure}

OPERATIONS = [
    Operation("get", "/api/v1/rooms.counts", "roomsCounts",
              "A room's numbers: members online, away, busy, and all of them", TAG,
              {200: m.RoomCounts, **_ERRORS}, query=m.RoomCountsQuery, security=_AUTH,
              description="From the room index, whatever the room's size (no walk over "
              "members). An unknown room is 404."),
    Operation("get", "/api/v1/rooms.members", "roomsMembers",
              "A page of a room's members: online, away, busy, then offline by last seen",
              TAG, {200: m.RoomMembers, **_ERRORS}, query=m.RoomMembersQuery, security=_AUTH,
              description="Ties by name, then id. Pass a page's `cursor` for the next one: "
              "it starts right after that page's last member, however members move meanwhile. "
              f"Up to {m.MAX_PAGE} members a page."),
]  # fmt: skip
