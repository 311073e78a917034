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
Errors are ``{success: false, error, code}`` with the HTTP status as ``code``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.admin import Admin
from hub.protocol import MAX_ROOM_LENGTH
from hub.registry.base import Conflict, User
from hub.store.base import StoreUnavailable, UserView
from hub.web.caller import Unauthorized, from_admin_key
from hub.web.compat.common import admin_of, body_map, parse_int
from hub.web.http import BadRequest

STATUS_CODES = {"online": "1", "away": "2", "busy": "3"}
MAX_ROOM_NAME = 200
ROOMS_LIMIT = 1000


class NotFound(Exception):
    """404: the room or the user is unknown."""


class NotServed(Exception):
    """501: messaging, not presence."""


def ifly_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"success": False, "error": message, "code": status}, status_code=status)


Handler = Callable[[Request, Admin, dict[str, Any]], Awaitable[Response]]


def ifly_endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Read the body, check ``api_key``, map errors to iFlyChat-style JSON."""

    async def endpoint(request: Request) -> Response:
        try:
            body = await body_map(request)
            key = body.get("api_key")
            from_admin_key(
                request.app.state.settings, key if isinstance(key, str) else None, "api_key"
            )
            return await handler(request, admin_of(request), body)
        except Unauthorized as exc:
            return ifly_error(401, f"{exc} (api_key must be the hub's admin key)")
        except BadRequest as exc:
            return ifly_error(400, str(exc))
        except NotFound as exc:
            return ifly_error(404, str(exc))
        except NotServed as exc:
            return ifly_error(501, str(exc))
        except StoreUnavailable:
            response = ifly_error(503, "presence store unreachable, retry later")
            response.headers["Retry-After"] = "1"
            return response

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


def ifly_user(view: UserView, account: User | None) -> dict[str, Any]:
    profile_url = account.metadata.get("profile_url") if account else None
    return {
        "user_id": view.id,
        "user_role": account.roles[0] if account and account.roles else "user",
        "user_name": view.name or view.username or view.id,
        "user_status": STATUS_CODES.get(view.status, "1"),
        "user_avatar_url": view.avatar or (account.avatar if account else ""),
        "user_profile_url": profile_url if isinstance(profile_url, str) else "javascript:void(0)",
    }


async def _users(admin: Admin, views: list[UserView]) -> dict[str, Any]:
    accounts = {u.id: u for u in await admin.registry.get_many([v.id for v in views])}
    users = [ifly_user(v, accounts.get(v.id)) for v in views]
    return {"users": users, "length": len(users)}


def _text(body: dict[str, Any], name: str, limit: int, *, required: bool) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{name} is required: a non-empty string")
    if len(value) > limit:
        raise BadRequest(f"{name} must be at most {limit} characters")
    return value


def _room_id(request: Request) -> str:
    room = str(request.path_params["room"])
    if len(room) > MAX_ROOM_LENGTH:
        raise BadRequest(f"room id must be at most {MAX_ROOM_LENGTH} characters")
    return room


def _wire_id(room: str) -> int | str:
    return int(room) if room.isdigit() and len(room) < 16 else room


@ifly_endpoint
async def users_list(request: Request, admin: Admin, body: dict[str, Any]) -> Response:
    """iFlyChat: every user who is online (not offline)."""
    changes = await admin.node.store.changes(None)
    views = sorted(changes.users, key=lambda v: (v.name or v.username or v.id).lower())
    return JSONResponse(await _users(admin, views))


@ifly_endpoint
async def room_create(request: Request, admin: Admin, body: dict[str, Any]) -> Response:
    """iFlyChat: create a room; answers its id."""
    name = _text(body, "room_name", MAX_ROOM_NAME, required=True)
    room = _text(body, "room_id", MAX_ROOM_LENGTH, required=False)
    assert name is not None
    try:
        made = await admin.rooms.create(room, name)
    except Conflict:
        raise BadRequest(f"room_id {room!r} already exists") from None
    return JSONResponse({"room_id": _wire_id(made.id)})


@ifly_endpoint
async def room_list(request: Request, admin: Admin, body: dict[str, Any]) -> Response:
    """iFlyChat: every room (``offset``/``limit`` page through them)."""
    offset = parse_int(_opt(body, "offset"), "offset", default=0, minimum=0)
    limit = parse_int(
        _opt(body, "limit"), "limit", default=ROOMS_LIMIT, minimum=1, maximum=ROOMS_LIMIT
    )
    rooms, total = await admin.rooms.list_rooms(offset, limit)
    out = [
        {"room_id": _wire_id(r.id), "room_name": r.name,
         "member_count": await admin.registry.member_count(r.id)}
        for r in rooms
    ]  # fmt: skip
    return JSONResponse({"rooms": out, "length": len(out), "total": total})


def _opt(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    return None if value is None else str(value)


@ifly_endpoint
async def room_edit(request: Request, admin: Admin, body: dict[str, Any]) -> Response:
    """iFlyChat: rename a room."""
    room = _room_id(request)
    name = _text(body, "room_name", MAX_ROOM_NAME, required=True)
    assert name is not None
    if await admin.rooms.edit(room, name) is None:
        raise NotFound(f"room {room!r} not found")
    return JSONResponse({"success": True})


@ifly_endpoint
async def room_delete(request: Request, admin: Admin, body: dict[str, Any]) -> Response:
    """iFlyChat: delete a room; its members leave it."""
    room = _room_id(request)
    if not await admin.rooms.delete(room):
        raise NotFound(f"room {room!r} not found")
    return JSONResponse({"success": True})


@ifly_endpoint
async def room_users(request: Request, admin: Admin, body: dict[str, Any]) -> Response:
    """iFlyChat: the members of a room who are online."""
    room = _room_id(request)
    if await admin.rooms.get(room) is None:
        raise NotFound(f"room {room!r} not found")
    views = await admin.rooms.online(room)
    views.sort(key=lambda v: (v.name or v.username or v.id).lower())
    return JSONResponse(await _users(admin, views))


@ifly_endpoint
async def user_kick(request: Request, admin: Admin, body: dict[str, Any]) -> Response:
    """iFlyChat: kick a user from the chat (4004 on every socket, offline at once)."""
    user = str(request.path_params["user"])
    room = _text(body, "room_id", MAX_ROOM_LENGTH, required=False)
    known = await admin.node.store.get(user) is not None or await admin.registry.get(user)
    if not known:
        raise NotFound(f"user {user!r} not found")
    if room is not None:
        await admin.rooms.remove_member(room, user)
    await admin.disconnect(user, "kicked by an admin")
    return JSONResponse({"success": True})


@ifly_endpoint
async def not_presence(request: Request, admin: Admin, body: dict[str, Any]) -> Response:
    """Messaging endpoints of the seed's index: not served (501)."""
    raise NotServed("threads and messages are messaging, not presence: Presence Hub does not "
                    "serve them")  # fmt: skip


routes = [
    Route("/api/1.1/users/list", users_list, methods=["POST"]),
    Route("/api/1.1/room/create", room_create, methods=["POST"]),
    Route("/api/1.1/room/list", room_list, methods=["POST"]),
    Route("/api/1.1/room/{room}/edit", room_edit, methods=["POST"]),
    Route("/api/1.1/room/{room}/delete", room_delete, methods=["POST"]),
    Route("/api/1.1/room/{room}/users", room_users, methods=["POST"]),
    Route("/api/1.1/user/{user}/kick", user_kick, methods=["POST"]),
    Route("/api/1.1/threads/get", not_presence, methods=["POST"]),
    Route("/api/1.1/room/{room}/publish", not_presence, methods=["POST"]),
    Route("/api/1.1/user/{user}/publish", not_presence, methods=["POST"]),
]
