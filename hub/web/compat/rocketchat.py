"""Rocket.Chat's presence REST API at its own paths (``/api/v1/users.*``).

``users.presence`` follows the seed page and Rocket.Chat's server: ``ids`` first (those not
offline, ``full: false``), then ``from`` inside the window (users changed at or after it,
offline ones included, the caller left out, ``full: false``), else every user not offline
(``full: true``). An unparseable ``from`` gets the full answer, as Rocket.Chat does.
Errors use Rocket.Chat's shapes: ``{success: false, error}`` (400) and
``{status: "error", message}`` (401).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.node import Node
from hub.presence import check_audience, check_status, check_text, check_until
from hub.registry.base import User
from hub.registry.query import Sort, UserQuery, list_users
from hub.store.base import StoreUnavailable, UserView
from hub.web.caller import Caller, Forbidden, Unauthorized, authenticate
from hub.web.http import BadRequest, etag, iso_ms, json_body, parse_iso


def rc_user(view: UserView) -> dict[str, Any]:
    """A user as ``users.presence`` shows it."""
    out: dict[str, Any] = {
        "_id": view.id,
        "username": view.username,
        "name": view.name,
        "status": view.status,
        "statusText": view.text,
        "utcOffset": _offset(view.utc_offset),
    }
    if view.avatar:
        out["avatarETag"] = etag(view.avatar)
    return out


def _offset(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def failure(message: str, status: int = 400, **extra: Any) -> JSONResponse:
    return JSONResponse({"success": False, "error": message, **extra}, status_code=status)


def unauthorized(message: str) -> JSONResponse:
    return JSONResponse(
        {"status": "error", "message": f"You must be logged in to do this. ({message})"},
        status_code=401,
    )


def unavailable() -> JSONResponse:
    return JSONResponse(
        {"success": False, "error": "presence store unreachable, retry later"},
        status_code=503,
        headers={"Retry-After": "1"},
    )


def rc_endpoint(handler: Any) -> Any:
    """Authenticate, then map the hub's exceptions to Rocket.Chat's error shapes."""

    async def endpoint(request: Request) -> Response:
        node: Node = request.app.state.node
        try:
            caller = authenticate(request, node.settings)
            gate = getattr(node, "rest_gate", None)
            if gate is not None:
                await gate(caller)
            result: Response = await handler(request, node, caller)
            return result
        except Unauthorized as exc:
            return unauthorized(str(exc))
        except Forbidden as exc:
            return failure(str(exc), 403, errorType="error-not-allowed")
        except BadRequest as exc:
            return failure(str(exc), 400)
        except StoreUnavailable:
            return unavailable()

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


def _ids(request: Request) -> list[str] | None:
    params = request.query_params
    raw = params.getlist("ids[]") + params.getlist("ids")
    if not raw:
        return None
    ids: list[str] = []
    for item in raw:
        ids.extend(part.strip() for part in item.split(",") if part.strip())
    return list(dict.fromkeys(ids))


@rc_endpoint
async def users_presence(request: Request, node: Node, caller: Caller) -> Response:
    """Presence of every user, or of those that changed since ``from`` (seed 004)."""
    store = node.store
    ids = _ids(request)
    if ids is not None:
        views = await store.users(ids)
        users = [rc_user(v) for v in views if v.status != "offline"]
        return JSONResponse({"users": users, "full": False, "success": True})
    raw_from = request.query_params.get("from")
    since = parse_iso(raw_from) if raw_from else None
    changes = await store.changes(since)
    if changes.full:
        users = [rc_user(v) for v in changes.users]
    else:
        users = [rc_user(v) for v in changes.users if v.id != caller.user]
    return JSONResponse({"users": users, "full": changes.full, "success": True})


async def _target(request: Request, node: Node, params: Any) -> UserView:
    user_id = params.get("userId")
    username = params.get("username")
    if user_id is None and username is None:
        raise BadRequest("userId or username is required")
    if user_id is not None and (not isinstance(user_id, str) or not user_id):
        raise BadRequest("userId must be a non-empty string")
    if username is not None and (not isinstance(username, str) or not username):
        raise BadRequest("username must be a non-empty string")
    if user_id is None:
        user_id = await node.store.find_username(str(username))
    view = await node.store.get(user_id) if user_id else None
    if view is None:
        raise LookupError("User not found")
    return view


def _connection_status(view: UserView) -> str:
    if view.connections == 0:
        return "offline"
    return view.status if view.chosen == "online" else "online"


@rc_endpoint
async def users_get_presence(request: Request, node: Node, caller: Caller) -> Response:
    """One user's presence (``userId`` or ``username``)."""
    try:
        view = await _target(request, node, request.query_params)
    except LookupError as exc:
        return failure(str(exc), 400, errorType="error-invalid-user")
    out: dict[str, Any] = {
        "presence": view.status,
        "connectionStatus": _connection_status(view),
        "lastLogin": iso_ms(view.last_login) if view.last_login else None,
        "success": True,
    }
    if out["lastLogin"] is None:
        del out["lastLogin"]
    if view.shown_last_seen():
        # Offline, and neither the user nor HUB_LAST_SEEN hides it; ISO like lastLogin.
        out["lastSeen"] = iso_ms(view.shown_last_seen())
    return JSONResponse(out)


async def _status_extras(body: Any, node: Node) -> tuple[int | None, bool | None]:
    """``expiresAt`` (ISO 8601, within a year ahead) as ``until`` ms, and ``lastSeen``
    (everyone or nobody) as the user's hide flag; BadRequest naming the field."""
    expires = body.get("expiresAt")
    last_seen = body.get("lastSeen")
    until = None
    if expires is not None:
        if body.get("status") is None and body.get("message") is None:
            raise BadRequest("expiresAt needs a status or a message to expire")
        until = parse_iso(expires) if isinstance(expires, str) else None
        if until is None:
            raise BadRequest(f"expiresAt must be an ISO 8601 time, got {expires!r}")
    try:
        if until is not None:
            check_until(until, await node.store.now(), field_name="expiresAt")
        if last_seen is not None:
            check_audience(last_seen, field_name="lastSeen")
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return until, None if last_seen is None else last_seen == "nobody"


@rc_endpoint
async def users_set_status(request: Request, node: Node, caller: Caller) -> Response:
    """Set the caller's (or, for the admin, any user's) status and status message."""
    body = await json_body(request)
    status = body.get("status")
    message = body.get("message")
    if status is None and message is None and body.get("lastSeen") is None:
        raise BadRequest("status or message (or lastSeen) is required")
    try:
        if status is not None:
            check_status(status, field_name="status")
        if message is not None:
            check_text(message, field_name="message")
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if "userId" in body or "username" in body:
        try:
            target = (await _target(request, node, body)).id
        except LookupError as exc:
            return failure(str(exc), 400, errorType="error-invalid-user")
    elif caller.user is not None:
        target = caller.user
    else:
        raise BadRequest("userId or username is required when acting as admin")
    if not caller.may_act_for(target):
        raise Forbidden("a user may set only its own status")
    until, hide = await _status_extras(body, node)

    async def apply() -> UserView | None:
        try:
            return await node.store.set_status(
                target, status=status, text=message, until=until, hide_last_seen=hide
            )
        except ValueError as exc:  # expiresAt passed between the check and the write
            raise BadRequest(str(exc).replace("until", "expiresAt", 1)) from None

    view = await apply()
    if view is None and caller.claims is not None and caller.user == target:
        # A user whose token is valid is known even before its first connection.
        await node.store.set_profile(caller.claims.profile())
        view = await apply()
    if view is None:
        return failure("User not found", 400, errorType="error-invalid-user")
    return JSONResponse({"success": True})


# -- users.listByStatus (seed 003) ---------------------------------------------------------

#: Rocket.Chat's default and upper page sizes (API_Default_Count, API_Upper_Count_Limit).
LIST_DEFAULT_COUNT = 50
LIST_MAX_COUNT = 100
#: ``sort`` fields Rocket.Chat clients send, and the registry field each one means.
LIST_SORT_FIELDS = {
    "username": "username",
    "name": "name",
    "_id": "id",
    "type": "type",
    "active": "activated",
    "status": "activated",
    "createdAt": "created",
    "_createdAt": "created",
    "_updatedAt": "updated",
    "lastLogin": "last_login",
}


def _list_sort(raw: str | None) -> Sort:
    if raw is None or raw == "":
        return Sort((("username", 1),))
    try:
        spec = json.loads(raw)
    except ValueError:
        example = '{"username": 1}'
        raise BadRequest(f"sort must be a JSON object like {example}, got {raw!r}") from None
    if not isinstance(spec, dict) or not spec:
        raise BadRequest("sort must be a non-empty JSON object of field: 1 or -1")
    keys: list[tuple[str, int]] = []
    for name, direction in spec.items():
        if name not in LIST_SORT_FIELDS:
            known = ", ".join(LIST_SORT_FIELDS)
            raise BadRequest(f"sort field {name!r} is not one of {known}")
        if direction not in (1, -1) or isinstance(direction, bool):
            raise BadRequest(f"sort.{name} must be 1 or -1, got {direction!r}")
        keys.append((LIST_SORT_FIELDS[name], direction))
    return Sort(tuple(keys))


def _whole(raw: str | None, name: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, got {raw!r}") from None
    if value < 0:
        raise BadRequest(f"{name} must not be negative, got {value}")
    return value


def _list_flag(raw: str | None, name: str) -> bool | None:
    if raw is None or raw == "":
        return None
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise BadRequest(f"{name} must be true or false, got {raw!r}")


def _list_query(request: Request) -> UserQuery:
    params = request.query_params
    status = params.get("status")
    if status not in (None, "", "active", "deactivated"):
        raise BadRequest(f"status must be active or deactivated, got {status!r}")
    kind = params.get("type")
    roles = params.getlist("roles[]") + params.getlist("roles")
    return UserQuery(
        search=(params.get("searchTerm") or "").strip(),
        roles=frozenset(r.strip() for item in roles for r in item.split(",") if r.strip()),
        type=kind or None,
        activated=None if not status else status == "active",
        logged_in=_list_flag(params.get("hasLoggedIn"), "hasLoggedIn"),
    )


def rc_list_user(user: User, status: str) -> dict[str, Any]:
    """A user as ``users.listByStatus`` shows it (seed 003)."""
    out: dict[str, Any] = {
        "_id": user.id,
        "username": user.username,
        "type": user.type,
        "roles": list(user.roles),
        "status": status,
        "active": user.activated,
        "name": user.name or user.username,
    }
    if user.last_login:
        out["lastLogin"] = iso_ms(user.last_login)
    if user.avatar:
        out["avatarETag"] = etag(user.avatar)
    return out


@rc_endpoint
async def users_list_by_status(request: Request, node: Node, caller: Caller) -> Response:
    """Registered users filtered by activation, first login, type, roles and a search term
    (seed 003), ``offset``/``count``/``sort`` paged; ``status`` in each is its presence."""
    query = _list_query(request)
    sort = _list_sort(request.query_params.get("sort"))
    offset = _whole(request.query_params.get("offset"), "offset", 0)
    count = _whole(request.query_params.get("count"), "count", LIST_DEFAULT_COUNT)
    count = LIST_MAX_COUNT if count == 0 else min(count, LIST_MAX_COUNT)
    registry = request.app.state.admin.registry
    page = await list_users(registry, query, sort, offset, count)
    views = {v.id: v.status for v in await node.store.users([u.id for u in page.users])}
    users = [rc_list_user(u, views.get(u.id, "offline")) for u in page.users]
    return JSONResponse(
        {"users": users, "count": len(users), "offset": offset, "total": page.total,
         "success": True}
    )  # fmt: skip


routes = [
    Route("/api/v1/users.presence", users_presence, methods=["GET"]),
    Route("/api/v1/users.getPresence", users_get_presence, methods=["GET"]),
    Route("/api/v1/users.setStatus", users_set_status, methods=["POST"]),
    Route("/api/v1/users.listByStatus", users_list_by_status, methods=["GET"]),
]
