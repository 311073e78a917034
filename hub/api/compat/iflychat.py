"""iFlyChat's REST API 1.1 (seed 000) at its own paths: online users, rooms and kicks.

Every call is a POST whose body (JSON, or a form as iFlyChat's PHP clients send) carries
``api_key``, which must be the hub's admin key. Seed 000 shows ``users/list`` in full and
only names the room, kick and thread APIs; their paths follow iFlyChat's published API 1.1
(the room id or user id in the path, everything else in the body):

=====================================  ==================================================
``POST /api/1.1/users/list``           every user not offline: ``{users, length}``
``POST /api/1.1/room/create``          ``room_name`` (``room_id`` to choose the id) ->
                                       ``{room_id}`` (a number when generated)
``POST /api/1.1/room/list``            ``{rooms: [{room_id, room_name, member_count}],
                                       length}`` (``offset``/``limit``, at most 1000)
``POST /api/1.1/room/{id}/edit``       ``room_name`` -> ``{success: true}``
``POST /api/1.1/room/{id}/delete``     every member leaves -> ``{success: true}``
``POST /api/1.1/room/{id}/users``      the room's members not offline: ``{users, length}``
``POST /api/1.1/user/{id}/kick``       sockets closed with 4004 on every node, offline at
                                       once -> ``{success: true}`` (``room_id``: the user
                                       also leaves that room)
``POST /api/1.1/threads/get``          thread history is messaging: 501
``POST /api/1.1/room/{id}/publish``    messaging: 501
``POST /api/1.1/user/{id}/publish``    messaging: 501
=====================================  ==================================================

``room_role``, ``room_private`` and ``room_moderate`` are accepted and ignored: who may
enter a room is the chat's business, not presence's. iFlyChat's kick also keeps the user
out for 15 minutes; here a kicked user may reconnect at once (deactivate it to keep it out).
A user is ``{user_id, user_role, user_name, user_status, user_avatar_url,
user_profile_url}`` with ``user_status`` ``"1"`` online, ``"2"`` away, ``"3"`` busy.
Errors are ``{success: false, error, code}`` with the HTTP status as ``code``, mapped once
for the app (an unknown path or method under ``/api/1.1`` too). Names and ids must be valid
Unicode text: a lone surrogate is a 400 naming the field, and nothing changes.
"""

from __future__ import annotations

from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.api.body import read_json_or_form
from hub.api.caller import Unauthorized, from_admin_key
from hub.api.compat.common import parse_int
from hub.api.http import BadRequest, NotFound, NotServed, PayloadTooLarge, reply
from hub.api.schema import iflychat as m
from hub.api.services import Services
from hub.api.spec import Operation
from hub.model.text import BadText, check_text
from hub.stores.presence.base import StoreUnavailable, UserView
from hub.stores.registry.base import Conflict, User
from hub.wire.hub import MAX_ROOM_LENGTH

PREFIX = "/api/1.1"
TAG = "iFlyChat"
STATUS_CODES = {"online": "1", "away": "2", "busy": "3"}
MAX_ROOM_NAME = 200
ROOMS_LIMIT = 1000
MAX_USER_ID = 256

B = TypeVar("B", bound=m.IflyKeyBody | m.IflyRoomCreateBody | m.IflyRoomEditBody
            | m.IflyRoomListBody | m.IflyKickBody)  # fmt: skip


def ifly_error(status: int, message: str) -> Response:
    return reply(m.IflyError(error=message, code=status), status)


def ifly_user(view: UserView, account: User | None) -> m.IflyUser:
    profile_url = account.metadata.get("profile_url") if account else None
    return m.IflyUser(
        user_id=view.id,
        user_role=account.roles[0] if account and account.roles else "user",
        user_name=view.name or view.username or view.id,
        user_status=STATUS_CODES.get(view.status, "1"),
        user_avatar_url=view.avatar or (account.avatar if account else ""),
        user_profile_url=profile_url if isinstance(profile_url, str) else "javascript:void(0)",
    )


def _text(value: int | str | None, name: str, limit: int, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{name} is required: a non-empty string")
    try:
        return check_text(value, name, limit)
    except BadText as exc:
        raise BadRequest(str(exc)) from None


def _opt(value: int | str | None) -> str | None:
    return None if value is None else str(value)


def _wire_id(room: str) -> int | str:
    return int(room) if room.isdigit() and len(room) < 16 else room


class IFlyChat:
    """The ``/api/1.1`` sub-app: iFlyChat's online users, rooms and kicks."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.admin = services.admin

    async def _body(self, request: Request, model: type[B]) -> B:
        """The body as ``model``, after its ``api_key`` is checked."""
        body = await read_json_or_form(request, model)
        from_admin_key(self.services.settings, body.api_key, "api_key")
        return body

    def _room(self, request: Request) -> str:
        room = _text(str(request.path_params["room"]), "room id", MAX_ROOM_LENGTH,
                     required=True)  # fmt: skip
        assert room is not None
        return room

    async def _users(self, views: list[UserView]) -> m.IflyUsersAnswer:
        accounts = {u.id: u for u in await self.admin.registry.get_many([v.id for v in views])}
        users = [ifly_user(v, accounts.get(v.id)) for v in views]
        return m.IflyUsersAnswer(users=users, length=len(users))

    async def users_list(self, request: Request) -> Response:
        """iFlyChat: every user who is online (not offline)."""
        await self._body(request, m.IflyKeyBody)
        views = await self.services.queries.online()
        views.sort(key=lambda v: (v.name or v.username or v.id).lower())
        return reply(await self._users(views))

    async def room_create(self, request: Request) -> Response:
        """iFlyChat: create a room; answers its id."""
        body = await self._body(request, m.IflyRoomCreateBody)
        name = _text(body.room_name, "room_name", MAX_ROOM_NAME, required=True)
        room = _text(body.room_id, "room_id", MAX_ROOM_LENGTH, required=False)
        assert name is not None
        try:
            made = await self.admin.rooms.create(room, name)
        except Conflict:
            raise BadRequest(f"room_id {room!r} already exists") from None
        return reply(m.IflyRoomCreated(room_id=_wire_id(made.id)))

    async def room_list(self, request: Request) -> Response:
        """iFlyChat: every room (``offset``/``limit`` page through them)."""
        body = await self._body(request, m.IflyRoomListBody)
        offset = parse_int(_opt(body.offset), "offset", default=0, minimum=0)
        limit = parse_int(
            _opt(body.limit), "limit", default=ROOMS_LIMIT, minimum=1, maximum=ROOMS_LIMIT
        )
        rooms, total = await self.admin.rooms.list_rooms(offset, limit)
        out = [
            m.IflyRoom(room_id=_wire_id(r.id), room_name=r.name,
                       member_count=await self.admin.registry.member_count(r.id))
            for r in rooms
        ]  # fmt: skip
        return reply(m.IflyRoomsAnswer(rooms=out, length=len(out), total=total))

    async def room_edit(self, request: Request) -> Response:
        """iFlyChat: rename a room."""
        body = await self._body(request, m.IflyRoomEditBody)
        room = self._room(request)
        name = _text(body.room_name, "room_name", MAX_ROOM_NAME, required=True)
        assert name is not None
        if await self.admin.rooms.edit(room, name) is None:
            raise NotFound(f"room {room!r} not found")
        return reply(m.IflySuccess())

    async def room_delete(self, request: Request) -> Response:
        """iFlyChat: delete a room; its members leave it."""
        await self._body(request, m.IflyKeyBody)
        room = self._room(request)
        if not await self.admin.rooms.delete(room):
            raise NotFound(f"room {room!r} not found")
        return reply(m.IflySuccess())

    async def room_users(self, request: Request) -> Response:
        """iFlyChat: the members of a room who are online."""
        await self._body(request, m.IflyKeyBody)
        room = self._room(request)
        if await self.admin.rooms.get(room) is None:
            raise NotFound(f"room {room!r} not found")
        views = await self.admin.rooms.online(room)
        views.sort(key=lambda v: (v.name or v.username or v.id).lower())
        return reply(await self._users(views))

    async def user_kick(self, request: Request) -> Response:
        """iFlyChat: kick a user from the chat (4004 on every socket, offline at once)."""
        body = await self._body(request, m.IflyKickBody)
        user = _text(str(request.path_params["user"]), "user id", MAX_USER_ID, required=True)
        assert user is not None
        room = _text(body.room_id, "room_id", MAX_ROOM_LENGTH, required=False)
        store = self.services.node.store
        known = await store.get(user) is not None or await self.admin.registry.get(user)
        if not known:
            raise NotFound(f"user {user!r} not found")
        if room is not None:
            await self.admin.rooms.remove_member(room, user)
        await self.admin.disconnect(user, "kicked by an admin")
        return reply(m.IflySuccess())

    async def not_presence(self, request: Request) -> Response:
        """Messaging endpoints of the seed's index: not served (501)."""
        await self._body(request, m.IflyKeyBody)
        raise NotServed("threads and messages are messaging, not presence: Presence Hub does "
                        "not serve them")  # fmt: skip

    def app(self) -> Starlette:
        post = ["POST"]
        routes = [
            Route("/users/list", self.users_list, methods=post),
            Route("/room/create", self.room_create, methods=post),
            Route("/room/list", self.room_list, methods=post),
            Route("/rooms/list", self.room_list, methods=post),
            Route("/room/{room}/edit", self.room_edit, methods=post),
            Route("/room/{room}/delete", self.room_delete, methods=post),
            Route("/room/{room}/users", self.room_users, methods=post),
            Route("/user/{user}/kick", self.user_kick, methods=post),
            Route("/threads/get", self.not_presence, methods=post),
            Route("/room/{room}/publish", self.not_presence, methods=post),
            Route("/user/{user}/publish", self.not_presence, methods=post),
        ]
        return Starlette(routes=routes, exception_handlers=HANDLERS)


def _status(code: int, prefix: str = "") -> Any:
    async def handler(request: Request, exc: Exception) -> Response:
        return ifly_error(code, f"{prefix}{exc}")

    return handler


async def _unauthorized(request: Request, exc: Exception) -> Response:
    return ifly_error(401, f"{exc} (api_key must be the hub's admin key)")


async def _unavailable(request: Request, exc: Exception) -> Response:
    response = ifly_error(503, "presence store unreachable, retry later")
    response.headers["Retry-After"] = "1"
    return response


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path} (use POST)"
    else:
        message = f"no such endpoint: {request.url.path}"
    response = ifly_error(exc.status_code, message)
    response.headers.update(exc.headers or {})
    return response


async def _crash(request: Request, exc: Exception) -> Response:
    return ifly_error(500, "internal error (logged on the hub)")


HANDLERS: dict[Any, Any] = {
    Exception: _crash,
    Unauthorized: _unauthorized,
    BadRequest: _status(400),
    NotFound: _status(404),
    NotServed: _status(501),
    PayloadTooLarge: _status(413),
    StoreUnavailable: _unavailable,
    HTTPException: _http,
}

_ERR: dict[int, Any] = {400: m.IflyError, 401: m.IflyError, 413: m.IflyError,
                        503: m.IflyError}  # fmt: skip


def _op(path: str, op_id: str, summary: str, body: Any, answer: Any, *extra: int) -> Operation:
    responses = {**({200: answer} if answer else {}), **_ERR,
                 **dict.fromkeys(extra, m.IflyError)}  # fmt: skip
    # The credential is the body's api_key: no security scheme can say so.
    return Operation("post", f"{PREFIX}{path}", op_id, summary, TAG, responses, body=body,
                     form=True)  # fmt: skip


OPERATIONS = [
    _op("/users/list", "iflyUsersList", "Every user who is online", m.IflyKeyBody,
        m.IflyUsersAnswer),
    _op("/room/create", "iflyRoomCreate", "Create a room", m.IflyRoomCreateBody,
        m.IflyRoomCreated),
    _op("/room/list", "iflyRoomList", "Every room (paged)", m.IflyRoomListBody,
        m.IflyRoomsAnswer),
    _op("/rooms/list", "iflyRoomsList", "Every room (paged; the documentation's path)",
        m.IflyRoomListBody, m.IflyRoomsAnswer),
    _op("/room/{room}/edit", "iflyRoomEdit", "Rename a room", m.IflyRoomEditBody,
        m.IflySuccess, 404),
    _op("/room/{room}/delete", "iflyRoomDelete", "Delete a room (its members leave it)",
        m.IflyKeyBody, m.IflySuccess, 404),
    _op("/room/{room}/users", "iflyRoomUsers", "The members of a room who are online",
        m.IflyKeyBody, m.IflyUsersAnswer, 404),
    _op("/user/{user}/kick", "iflyUserKick", "Kick a user (sockets closed, offline at once)",
        m.IflyKickBody, m.IflySuccess, 404),
    _op("/threads/get", "iflyThreadsGet", "Thread history: messaging, not served",
        m.IflyKeyBody, None, 501),
    _op("/room/{room}/publish", "iflyRoomPublish", "Publish to a room: messaging, not served",
        m.IflyKeyBody, None, 501),
    _op("/user/{user}/publish", "iflyUserPublish", "Publish to a user: messaging, not served",
        m.IflyKeyBody, None, 501),
]  # fmt: skip
