"""Agora Chat's RESTful user system (seed 002) at its own paths: ``/{org}/{app}/users...``.

The hub serves one app, so any ``org`` and ``app`` are accepted and echoed back in the
common response fields (``action``, ``application``, ``path``, ``uri``, ``entities``,
``timestamp``, ``duration``, ``organization``, ``applicationName``). A user is addressed
by its username (case-insensitive, as the page says) or, failing that, by its id.

Access: ``Authorization: Bearer`` with the admin key or a user token. A user token may read
(one user, the list, online status) and change only its own password; registering,
deleting, deactivating, activating and forcing offline need the admin key (403 otherwise).
Errors keep Agora's shape: ``{error, exception, timestamp, duration, error_description}``
with 400 ``illegal_argument`` (the description names the field), 401 ``unauthorized``,
403 ``forbidden_op``, 404 ``service_resource_not_found`` for unknown users, and 501 for the
offline-message endpoints, which are messaging, not presence.

Limits from the page: a username is 1-64 characters of ``a-z A-Z 0-9 _ - .``; a password at
most 64 bytes; at most 60 users per registration; ``limit`` 1-100 (default 10) when listing
or deleting; at most 100 usernames per batch status query, unknown users being offline.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.admin import Admin
from hub.registry.base import Conflict, User
from hub.registry.passwords import hash_password_async
from hub.store.base import StoreUnavailable
from hub.web.caller import Caller, Forbidden, Unauthorized, authenticate
from hub.web.compat.common import admin_of, body_json, check_caller, now_ms, parse_int
from hub.web.http import BadRequest

USERNAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
USERNAME_RULE = "1-64 characters of a-z, A-Z, 0-9, _, - and ."
MAX_REGISTER = 60
MAX_STATUS = 100
MAX_PASSWORD_BYTES = 64
MAX_NICKNAME = 100
LIMIT_DEFAULT = 10
LIMIT_MAX = 100
#: Namespace of the stable ``application`` id derived from org and app names.
APPLICATION_NS = uuid.UUID("6f1c2f4e-9a53-4b4e-9d0e-2c1d5b7a8e31")


class NotFound(Exception):
    """404: the user is unknown."""


class Duplicate(Exception):
    """400: the username is taken."""


class NotImplementedHere(Exception):
    """501: an endpoint of the page that is not presence."""


@dataclass
class Call:
    """One request: who calls, for which org/app, since when (for ``duration``)."""

    request: Request
    admin: Admin
    caller: Caller
    started: int

    @property
    def org(self) -> str:
        return str(self.request.path_params["org"])

    @property
    def app(self) -> str:
        return str(self.request.path_params["app"])

    def common(self, action: str, **fields: Any) -> dict[str, Any]:
        """The common response fields of the page, then ``fields``."""
        now = now_ms()
        return {
            "action": action,
            "application": str(uuid.uuid5(APPLICATION_NS, f"{self.org}/{self.app}")),
            "path": "/users",
            "uri": str(self.request.url.replace(query="")),
            **fields,
            "timestamp": now,
            "duration": max(0, now - self.started),
            "organization": self.org,
            "applicationName": self.app,
        }

    def require_admin(self) -> None:
        if not self.caller.admin:
            raise Forbidden("this operation needs the admin key (a user token may only read)")


def error(call_started: int, status: int, code: str, exception: str, text: str) -> JSONResponse:
    now = now_ms()
    return JSONResponse(
        {
            "error": code,
            "exception": exception,
            "timestamp": now,
            "duration": max(0, now - call_started),
            "error_description": text,
        },
        status_code=status,
    )


Handler = Callable[[Call], Awaitable[Response]]


def agora_endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Authenticate, then map the hub's exceptions to Agora's error shapes."""

    async def endpoint(request: Request) -> Response:
        started = now_ms()
        try:
            caller = authenticate(request, request.app.state.settings)
            await check_caller(request, caller)
            return await handler(Call(request, admin_of(request), caller, started))
        except Unauthorized as exc:
            return error(started, 401, "unauthorized", "EasemobUnauthorizedException",
                         f"Unable to authenticate: {exc}")  # fmt: skip
        except Forbidden as exc:
            return error(started, 403, "forbidden_op", "EasemobForbiddenOpException", str(exc))
        except BadRequest as exc:
            return error(started, 400, "illegal_argument", "IllegalArgumentException", str(exc))
        except Duplicate as exc:
            return error(started, 400, "duplicate_unique_property_exists",
                         "DuplicateUniquePropertyExistsException", str(exc))  # fmt: skip
        except NotFound as exc:
            return error(started, 404, "service_resource_not_found", "UserNotFoundException",
                         str(exc))  # fmt: skip
        except NotImplementedHere as exc:
            return error(started, 501, "not_implemented", "NotImplementedException", str(exc))
        except StoreUnavailable:
            response = error(started, 503, "service_unavailable", "ServiceUnavailableException",
                             "presence store unreachable, retry later")  # fmt: skip
            response.headers["Retry-After"] = "1"
            return response

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


# -- users as the page shows them -------------------------------------------------------


def entity(user: User) -> dict[str, Any]:
    out: dict[str, Any] = {
        "uuid": user.uuid,
        "type": "user",
        "created": user.created,
        "modified": user.updated,
        "username": user.username,
        "activated": user.activated,
    }
    if user.name:
        out["nickname"] = user.name
    return out


async def find_user(admin: Admin, name: str) -> User | None:
    """A registered user by username (case-insensitive), else by id."""
    uid = await admin.registry.find_username(name)
    found = await admin.registry.get(uid) if uid is not None else None
    return found or await admin.registry.get(name)


async def user_or_404(admin: Admin, name: str) -> User:
    found = await find_user(admin, name)
    if found is None:
        raise NotFound(f"User {name} not found")
    return found


async def presence_id(admin: Admin, name: str) -> str | None:
    """The id of a user known to the registry or to presence, by username or id."""
    found = await find_user(admin, name)
    if found is not None:
        return found.id
    store = admin.node.store
    uid = await store.find_username(name)
    if uid is not None:
        return uid
    return name if await store.get(name) is not None else None


def _cursor_out(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def _cursor_in(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    try:
        key = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequest(f"cursor {value!r} is not a cursor this server gave") from None
    stamp, sep, _ = key.partition(":")
    if not sep or len(stamp) != 15 or not stamp.isdigit():
        raise BadRequest(f"cursor {value!r} is not a cursor this server gave")
    return key


def _params(request: Request) -> dict[str, list[str]]:
    params = request.query_params
    return {key: params.getlist(key) for key in params}


def _limit(request: Request) -> int:
    return parse_int(
        request.query_params.get("limit"), "limit",
        default=LIMIT_DEFAULT, minimum=1, maximum=LIMIT_MAX,
    )  # fmt: skip


# -- registration ----------------------------------------------------------------------


@dataclass(frozen=True)
class NewUser:
    username: str
    password: str
    nickname: str


def _new_user(item: Any, where: str) -> NewUser:
    if not isinstance(item, dict):
        raise BadRequest(f"{where} must be a JSON object with username and password")
    username = item.get("username")
    password = item.get("password")
    nickname = item.get("nickname", "")
    if not isinstance(username, str) or not USERNAME.match(username):
        raise BadRequest(f"{where}username must be {USERNAME_RULE}, got {username!r}")
    if not isinstance(password, str) or not password:
        raise BadRequest(f"{where}password is required: a string of at most 64 bytes")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise BadRequest(f"{where}password must be at most {MAX_PASSWORD_BYTES} bytes")
    if not isinstance(nickname, str) or len(nickname) > MAX_NICKNAME:
        raise BadRequest(f"{where}nickname must be a string of at most {MAX_NICKNAME} characters")
    return NewUser(username, password, nickname)


async def _register(admin: Admin, new: NewUser, hashed: str | None = None) -> User:
    account = User(id=new.username, username=new.username, name=new.nickname)
    try:
        return await admin.register(account, new.password, hashed=hashed)
    except Conflict:
        raise Duplicate(
            f"Application user property username = {new.username} already exists"
        ) from None


@agora_endpoint
async def users(call: Call) -> Response:
    """Register one or up to 60 users (POST), list users (GET), delete the oldest (DELETE)."""
    method = call.request.method
    if method == "GET":
        return await _list(call)
    if method == "DELETE":
        return await _delete_oldest(call)
    call.require_admin()
    body = await body_json(call.request)
    if isinstance(body, dict):
        created = await _register(call.admin, _new_user(body, ""))
        return JSONResponse(call.common("post", entities=[entity(created)]))
    if not isinstance(body, list) or not body:
        raise BadRequest("body must be a user object or an array of 1 to 60 user objects")
    if len(body) > MAX_REGISTER:
        raise BadRequest(f"at most {MAX_REGISTER} users per request, got {len(body)}")
    batch = [_new_user(item, f"[{i}].") for i, item in enumerate(body)]
    # Hashing is the slow part (scrypt): all at once, in threads; then register in order.
    hashes = await asyncio.gather(*(hash_password_async(new.password) for new in batch))
    entities: list[dict[str, Any]] = []
    failures: list[dict[str, str]] = []
    for new, hashed in zip(batch, hashes, strict=True):
        try:
            entities.append(entity(await _register(call.admin, new, hashed)))
        except Duplicate:
            failures.append(
                {"username": new.username,
                 "registerUserFailReason": f"the {new.username} already exists"}
            )  # fmt: skip
    return JSONResponse(call.common("post", entities=entities, data=failures))


async def _list(call: Call) -> Response:
    limit = _limit(call.request)
    after = _cursor_in(call.request.query_params.get("cursor"))
    registry = call.admin.registry
    pairs = await registry.after("created", after, limit + 1)
    page = pairs[:limit]
    found = await registry.get_many([uid for _, uid in page])
    fields: dict[str, Any] = {
        "params": _params(call.request),
        "entities": [entity(u) for u in found],
    }
    if len(pairs) > limit:
        fields["cursor"] = _cursor_out(page[-1][0])
    fields["count"] = len(found)
    return JSONResponse(call.common("get", **fields))


async def _delete_oldest(call: Call) -> Response:
    call.require_admin()
    limit = _limit(call.request)
    after = _cursor_in(call.request.query_params.get("cursor"))
    deleted = await call.admin.delete_oldest(limit, after)
    fields: dict[str, Any] = {
        "params": _params(call.request),
        "entities": [entity(u) for u in deleted.users],
    }
    if deleted.cursor is not None:
        fields["cursor"] = _cursor_out(deleted.cursor)
    return JSONResponse(call.common("delete", **fields))


# -- one user ----------------------------------------------------------------------------


def _name(call: Call) -> str:
    return str(call.request.path_params["username"])


@agora_endpoint
async def user(call: Call) -> Response:
    """Query one user (GET) or delete it (DELETE)."""
    if call.request.method == "DELETE":
        call.require_admin()
        found = await user_or_404(call.admin, _name(call))
        deleted = await call.admin.delete(found.id)
        if deleted is None:
            raise NotFound(f"User {_name(call)} not found")
        return JSONResponse(call.common("delete", entities=[entity(deleted)]))
    found = await user_or_404(call.admin, _name(call))
    return JSONResponse(call.common("get", entities=[entity(found)], count=1))


@agora_endpoint
async def password(call: Call) -> Response:
    """Set a user's password (the admin, or the user itself); the old one is not needed."""
    found = await user_or_404(call.admin, _name(call))
    if not call.caller.may_act_for(found.id):
        raise Forbidden("a user token may change only its own password")
    body = await body_json(call.request)
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object with newpassword")
    new = body.get("newpassword")
    if not isinstance(new, str) or not new:
        raise BadRequest("newpassword is required: a string of at most 64 bytes")
    if len(new.encode()) > MAX_PASSWORD_BYTES:
        raise BadRequest(f"newpassword must be at most {MAX_PASSWORD_BYTES} bytes")
    if not await call.admin.set_password(found.id, new):
        raise NotFound(f"User {_name(call)} not found")
    now = now_ms()
    return JSONResponse(
        {"action": "set user password", "timestamp": now, "duration": now - call.started}
    )


@agora_endpoint
async def deactivate(call: Call) -> Response:
    """Ban a user: offline now, sockets closed with 4003, refused until activated."""
    call.require_admin()
    found = await user_or_404(call.admin, _name(call))
    updated = await call.admin.deactivate(found.id)
    if updated is None:
        raise NotFound(f"User {_name(call)} not found")
    return JSONResponse(call.common("Deactivate user", entities=[entity(updated)]))


@agora_endpoint
async def activate(call: Call) -> Response:
    """Lift a ban."""
    call.require_admin()
    found = await user_or_404(call.admin, _name(call))
    if await call.admin.activate(found.id) is None:
        raise NotFound(f"User {_name(call)} not found")
    now = now_ms()
    return JSONResponse(
        {"action": "activate user", "timestamp": now, "duration": now - call.started}
    )


@agora_endpoint
async def disconnect(call: Call) -> Response:
    """Force a user offline: sockets closed with 4004 on every node, offline at once."""
    call.require_admin()
    uid = await presence_id(call.admin, _name(call))
    if uid is None:
        raise NotFound(f"User {_name(call)} not found")
    await call.admin.disconnect(uid)
    return JSONResponse(call.common("get", entities=[], data={"result": True}))


def _online(status: str | None) -> str:
    return "offline" if status in (None, "offline") else "online"


@agora_endpoint
async def status(call: Call) -> Response:
    """Whether one user is online (any status but offline) or offline."""
    name = _name(call)
    uid = await presence_id(call.admin, name)
    if uid is None:
        raise NotFound(f"User {name} not found")
    view = await call.admin.node.store.get(uid)
    state = _online(view.status if view else None)
    return JSONResponse(call.common("get", entities=[], data={name: state}, count=0))


@agora_endpoint
async def batch_status(call: Call) -> Response:
    """Whether each of up to 100 users is online; unknown users are offline."""
    body = await body_json(call.request)
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object with usernames")
    names = body.get("usernames")
    if not isinstance(names, list) or not names:
        raise BadRequest("usernames must be a non-empty array of usernames")
    if len(names) > MAX_STATUS:
        raise BadRequest(f"usernames may list at most {MAX_STATUS} users, got {len(names)}")
    if not all(isinstance(n, str) and n for n in names):
        raise BadRequest("usernames must hold non-empty strings only")
    ids = {name: await presence_id(call.admin, name) for name in dict.fromkeys(names)}
    views = await call.admin.node.store.users([uid for uid in ids.values() if uid])
    by_id = {v.id: v.status for v in views}
    data = [{name: _online(by_id.get(ids[name] or ""))} for name in names]
    now = now_ms()
    return JSONResponse(
        {"action": "get batch user status", "data": data, "timestamp": now,
         "duration": now - call.started}
    )  # fmt: skip


@agora_endpoint
async def offline_messages(call: Call) -> Response:
    """Offline messages are messaging, not presence: 501."""
    raise NotImplementedHere(
        "offline messages are messaging, not presence: Presence Hub does not serve them"
    )


routes = [
    Route("/{org}/{app}/users", users, methods=["GET", "POST", "DELETE"]),
    Route("/{org}/{app}/users/batch/status", batch_status, methods=["POST"]),
    Route("/{org}/{app}/users/{username}", user, methods=["GET", "DELETE"]),
    Route("/{org}/{app}/users/{username}/password", password, methods=["PUT"]),
    Route("/{org}/{app}/users/{username}/deactivate", deactivate, methods=["POST"]),
    Route("/{org}/{app}/users/{username}/activate", activate, methods=["POST"]),
    Route("/{org}/{app}/users/{username}/disconnect", disconnect, methods=["GET"]),
    Route("/{org}/{app}/users/{username}/status", status, methods=["GET"]),
    Route("/{org}/{app}/users/{username}/offline_msg_count", offline_messages, methods=["GET"]),
    Route(
        "/{org}/{app}/users/{username}/offline_msg_status/{msg_id}",
        offline_messages,
        methods=["GET"],
    ),
]
