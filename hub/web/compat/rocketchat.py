"""Rocket.Chat's presence REST API at its own paths (``/api/v1/users.*``).

``users.presence`` follows the seed page and Rocket.Chat's server: ``ids`` first (those not
offline, ``full: false``), then ``from`` inside the window (users changed at or after it,
offline ones included, the caller left out, ``full: false``), else every user not offline
(``full: true``). An unparseable ``from`` gets the full answer, as Rocket.Chat does.
Errors use Rocket.Chat's shapes: ``{success: false, error}`` (400) and
``{status: "error", message}`` (401).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.node import Node
from hub.presence import check_status, check_text
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
    return JSONResponse(out)


@rc_endpoint
async def users_set_status(request: Request, node: Node, caller: Caller) -> Response:
    """Set the caller's (or, for the admin, any user's) status and status message."""
    body = await json_body(request)
    status = body.get("status")
    message = body.get("message")
    if status is None and message is None:
        raise BadRequest("status or message is required")
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
    view = await node.store.set_status(target, status=status, text=message)
    if view is None and caller.claims is not None and caller.user == target:
        # A user whose token is valid is known even before its first connection.
        await node.store.set_profile(caller.claims.profile())
        view = await node.store.set_status(target, status=status, text=message)
    if view is None:
        return failure("User not found", 400, errorType="error-invalid-user")
    return JSONResponse({"success": True})


routes = [
    Route("/api/v1/users.presence", users_presence, methods=["GET"]),
    Route("/api/v1/users.getPresence", users_get_presence, methods=["GET"]),
    Route("/api/v1/users.setStatus", users_set_status, methods=["POST"]),
]
