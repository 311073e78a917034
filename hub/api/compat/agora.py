"""Agora Chat's RESTful user system (seed 002) at its own paths: ``/{org}/{app}/users...``.

The hub serves one app, so any ``org`` and ``app`` are accepted and echoed back in the
common response fields (``action``, ``application``, ``path``, ``uri``, ``entities``,
``timestamp``, ``duration``, ``organization``, ``applicationName``). A user is addressed
by its username (case-insensitive, as the page says) or, failing that, by its id.

Access: ``Authorization: Bearer`` with the admin key or a user token. A user token may read
(one user, the list, online status) and change only its own password (another user's is a
403 whether or not that user exists); registering,
deleting, deactivating, activating and forcing offline need the admin key (403 otherwise).
Errors keep Agora's shape: ``{error, exception, timestamp, duration, error_description}``
with 400 ``illegal_argument`` (the description names the field), 401 ``unauthorized``,
403 ``forbidden_op``, 404 ``service_resource_not_found`` for unknown users, and 501 for the
offline-message endpoints, which are messaging, not presence. The app is mounted at
``/{org}/{app}`` and maps each error once, an unknown path or method under it included.

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
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.api.body import read_json
from hub.api.caller import Caller, Forbidden, Unauthorized
from hub.api.compat.common import now_ms
from hub.api.http import BadRequest, NotFound, NotServed, PayloadTooLarge, reply
from hub.api.query import read_query
from hub.api.schema import agora as m
from hub.api.services import Services
from hub.api.spec import Operation
from hub.model.text import BadText, check_text
from hub.stores.presence.base import StoreUnavailable
from hub.stores.registry.base import Conflict, User
from hub.stores.registry.passwords import hash_password_async

PREFIX = "/{org}/{app}"
TAG = "Agora Chat"
USERNAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
USERNAME_RULE = "1-64 characters of a-z, A-Z, 0-9, _, - and ."
MAX_REGISTER = 60
MAX_STATUS = 100
MAX_PASSWORD_BYTES = 64
MAX_NICKNAME = 100
MAX_NAME = 256
#: Namespace of the stable ``application`` id derived from org and app names.
APPLICATION_NS = uuid.UUID("6f1c2f4e-9a53-4b4e-9d0e-2c1d5b7a8e31")


class Duplicate(Exception):
    """400: the username is taken."""


def _started(request: Request) -> int:
    started = getattr(request.state, "started", None)
    return started if isinstance(started, int) else now_ms()


def error(request: Request, status: int, code: str, exception: str, text: str) -> Response:
    now = now_ms()
    return reply(
        m.AgoraError(error=code, exception=exception, timestamp=now,
                     duration=max(0, now - _started(request)), error_description=text),
        status,
    )  # fmt: skip


class Call:
    """One request: who calls, for which org/app, since when (for ``duration``)."""

    def __init__(self, request: Request, caller: Caller) -> None:
        self.request = request
        self.caller = caller
        self.started = _started(request)

    @property
    def org(self) -> str:
        return str(self.request.path_params["org"])

    @property
    def app(self) -> str:
        return str(self.request.path_params["app"])

    def answer(self, action: str, entities: list[m.AgoraEntity], **fields: Any) -> Response:
        """The common response fields of the page, then ``fields``."""
        now = now_ms()
        return reply(
            m.AgoraAnswer(
                action=action,
                application=str(uuid.uuid5(APPLICATION_NS, f"{self.org}/{self.app}")),
                path="/users",
                uri=str(self.request.url.replace(query="")),
                entities=entities,
                timestamp=now,
                duration=max(0, now - self.started),
                organization=self.org,
                applicationName=self.app,
                **fields,
            )
        )

    def action(self, action: str) -> Response:
        now = now_ms()
        return reply(m.AgoraAction(action=action, timestamp=now, duration=now - self.started))

    def require_admin(self) -> None:
        if not self.caller.admin:
            raise Forbidden("this operation needs the admin key (a user token may only read)")

    def name(self) -> str:
        name = str(self.request.path_params["username"])
        try:
            return check_text(name, "username", MAX_NAME)
        except BadText as exc:
            raise BadRequest(str(exc)) from None


def entity(user: User) -> m.AgoraEntity:
    return m.AgoraEntity(
        uuid=user.uuid,
        type="user",
        created=user.created,
        modified=user.updated,
        username=user.username,
        activated=user.activated,
        nickname=user.name or None,
    )


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


def _page(request: Request) -> tuple[int, str | None]:
    """``limit`` (1-100, default 10) and ``cursor`` (a key this hub gave) of a listing."""
    query = read_query(request.query_params, m.AgoraListQuery)
    return query.limit, _cursor_in(query.cursor)


def _check_new(new: m.AgoraNewUser, where: str) -> m.AgoraNewUser:
    if not USERNAME.match(new.username):
        raise BadRequest(f"{where}username must be {USERNAME_RULE}, got {new.username!r}")
    if not new.password:
        raise BadRequest(f"{where}password is required: a string of at most 64 bytes")
    try:
        if len(new.password.encode()) > MAX_PASSWORD_BYTES:
            raise BadRequest(f"{where}password must be at most {MAX_PASSWORD_BYTES} bytes")
        check_text(new.nickname, f"{where}nickname", MAX_NICKNAME)
    except BadText as exc:
        raise BadRequest(str(exc)) from None
    except UnicodeEncodeError:
        raise BadRequest(f"{where}password must be valid Unicode text") from None
    return new


def _online(status: str | None) -> str:
    return "offline" if status in (None, "offline") else "online"


class Agora:
    """The ``/{org}/{app}`` sub-app: Agora Chat's user system."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.admin = services.admin

    async def _call(self, request: Request) -> Call:
        request.state.started = now_ms()
        return Call(request, await self.services.caller(request))

    async def find_user(self, name: str) -> User | None:
        """A registered user by username (case-insensitive), else by id."""
        registry = self.admin.registry
        uid = await registry.find_username(name)
        found = await registry.get(uid) if uid is not None else None
        return found or await registry.get(name)

    async def user_or_404(self, name: str) -> User:
        found = await self.find_user(name)
        if found is None:
            raise NotFound(f"User {name} not found")
        return found

    async def presence_id(self, name: str) -> str | None:
        """The id of a user known to the registry or to presence, by username or id."""
        found = await self.find_user(name)
        if found is not None:
            return found.id
        store = self.services.node.store
        uid = await store.find_username(name)
        if uid is not None:
            return uid
        return name if await store.get(name) is not None else None

    async def _register(self, new: m.AgoraNewUser, hashed: str | None = None) -> User:
        account = User(id=new.username, username=new.username, name=new.nickname)
        try:
            return await self.admin.register(account, new.password, hashed=hashed)
        except Conflict:
            raise Duplicate(
                f"Application user property username = {new.username} already exists"
            ) from None

    # -- /users ------------------------------------------------------------------------

    async def users(self, request: Request) -> Response:
        """Register one or up to 60 users (POST), list users (GET), delete the oldest
        (DELETE)."""
        call = await self._call(request)
        if request.method == "GET":
            return await self._list(call)
        if request.method == "DELETE":
            return await self._delete_oldest(call)
        call.require_admin()
        body: m.AgoraNewUser | list[m.AgoraNewUser] = await read_json(
            request,
            m.AgoraRegisterBody,  # type: ignore[arg-type]
        )
        if isinstance(body, m.AgoraNewUser):
            created = await self._register(_check_new(body, ""))
            return call.answer("post", [entity(created)])
        if not body:
            raise BadRequest("body must be a user object or an array of 1 to 60 user objects")
        if len(body) > MAX_REGISTER:
            raise BadRequest(f"at most {MAX_REGISTER} users per request, got {len(body)}")
        batch = [_check_new(item, f"[{i}].") for i, item in enumerate(body)]
        # Hashing is the slow part (scrypt): all at once, in threads; then register in order.
        hashes = await asyncio.gather(*(hash_password_async(new.password) for new in batch))
        entities: list[m.AgoraEntity] = []
        failures: list[m.AgoraRegisterFailure] = []
        for new, hashed in zip(batch, hashes, strict=True):
            try:
                entities.append(entity(await self._register(new, hashed)))
            except Duplicate:
                failures.append(m.AgoraRegisterFailure(
                    username=new.username,
                    registerUserFailReason=f"the {new.username} already exists"))  # fmt: skip
        return call.answer("post", entities, data=failures)

    async def _list(self, call: Call) -> Response:
        limit, after = _page(call.request)
        registry = self.admin.registry
        pairs = await registry.after("created", after, limit + 1)
        page = pairs[:limit]
        found = await registry.get_many([uid for _, uid in page])
        cursor = _cursor_out(page[-1][0]) if len(pairs) > limit else None
        return call.answer("get", [entity(u) for u in found], params=_params(call.request),
                           cursor=cursor, count=len(found))  # fmt: skip

    async def _delete_oldest(self, call: Call) -> Response:
        call.require_admin()
        limit, after = _page(call.request)
        deleted = await self.admin.delete_oldest(limit, after)
        cursor = _cursor_out(deleted.cursor) if deleted.cursor is not None else None
        return call.answer("delete", [entity(u) for u in deleted.users],
                           params=_params(call.request), cursor=cursor)  # fmt: skip

    # -- one user ----------------------------------------------------------------------

    async def user(self, request: Request) -> Response:
        """Query one user (GET) or delete it (DELETE)."""
        call = await self._call(request)
        name = call.name()
        if request.method == "DELETE":
            call.require_admin()
            found = await self.user_or_404(name)
            deleted = await self.admin.delete(found.id)
            if deleted is None:
                raise NotFound(f"User {name} not found")
            return call.answer("delete", [entity(deleted)])
        found = await self.user_or_404(name)
        return call.answer("get", [entity(found)], count=1)

    async def password(self, request: Request) -> Response:
        """Set a user's password (the admin, or the user itself); the old one is not needed."""
        call = await self._call(request)
        name = call.name()
        found = await self.find_user(name)
        # Authorization before existence: another user's password is 403 either way.
        if not call.caller.admin and (found is None or found.id != call.caller.user):
            raise Forbidden("a user token may change only its own password")
        if found is None:
            raise NotFound(f"User {name} not found")
        body = await read_json(request, m.AgoraPasswordBody)
        if not body.newpassword:
            raise BadRequest("newpassword is required: a string of at most 64 bytes")
        try:
            if len(body.newpassword.encode()) > MAX_PASSWORD_BYTES:
                raise BadRequest(f"newpassword must be at most {MAX_PASSWORD_BYTES} bytes")
        except UnicodeEncodeError:
            raise BadRequest("newpassword must be valid Unicode text") from None
        if not await self.admin.set_password(found.id, body.newpassword):
            raise NotFound(f"User {name} not found")
        return call.action("set user password")

    async def deactivate(self, request: Request) -> Response:
        """Ban a user: offline now, sockets closed with 4003, refused until activated."""
        call = await self._call(request)
        call.require_admin()
        found = await self.user_or_404(call.name())
        updated = await self.admin.deactivate(found.id)
        if updated is None:
            raise NotFound(f"User {call.name()} not found")
        return call.answer("Deactivate user", [entity(updated)])

    async def activate(self, request: Request) -> Response:
        """Lift a ban."""
        call = await self._call(request)
        call.require_admin()
        found = await self.user_or_404(call.name())
        if await self.admin.activate(found.id) is None:
            raise NotFound(f"User {call.name()} not found")
        return call.action("activate user")

    async def disconnect(self, request: Request) -> Response:
        """Force a user offline: sockets closed with 4004 on every node, offline at once."""
        call = await self._call(request)
        call.require_admin()
        uid = await self.presence_id(call.name())
        if uid is None:
            raise NotFound(f"User {call.name()} not found")
        await self.admin.disconnect(uid)
        return call.answer("get", [], data={"result": True})

    async def status(self, request: Request) -> Response:
        """Whether one user is online (any status but offline) or offline."""
        call = await self._call(request)
        name = call.name()
        uid = await self.presence_id(name)
        if uid is None:
            raise NotFound(f"User {name} not found")
        view = await self.services.node.store.get(uid)
        state = _online(view.status if view else None)
        return call.answer("get", [], data={name: state}, count=0)

    async def batch_status(self, request: Request) -> Response:
        """Whether each of up to 100 users is online; unknown users are offline."""
        call = await self._call(request)
        body = await read_json(request, m.AgoraBatchStatusBody)
        names = body.usernames
        if not names:
            raise BadRequest("usernames must be a non-empty array of usernames")
        if len(names) > MAX_STATUS:
            raise BadRequest(f"usernames may list at most {MAX_STATUS} users, got {len(names)}")
        if not all(names):
            raise BadRequest("usernames must hold non-empty strings only")
        for i, name in enumerate(names):
            try:
                check_text(name, f"usernames[{i}]", MAX_NAME)
            except BadText as exc:
                raise BadRequest(str(exc)) from None
        ids = {name: await self.presence_id(name) for name in dict.fromkeys(names)}
        views = await self.services.node.store.users([uid for uid in ids.values() if uid])
        by_id = {v.id: v.status for v in views}
        data = [{name: _online(by_id.get(ids[name] or ""))} for name in names]
        now = now_ms()
        answer = m.AgoraBatchStatusAnswer(action="get batch user status", data=data,
                                          timestamp=now, duration=now - call.started)  # fmt: skip
        return reply(answer)

    async def offline_messages(self, request: Request) -> Response:
        """Offline messages are messaging, not presence: 501."""
        await self._call(request)
        raise NotServed(
            "offline messages are messaging, not presence: Presence Hub does not serve them"
        )

    def app(self) -> Starlette:
        routes = [
            Route("/users", self.users, methods=["GET", "POST", "DELETE"]),
            Route("/users/batch/status", self.batch_status, methods=["POST"]),
            Route("/users/{username}", self.user, methods=["GET", "DELETE"]),
            Route("/users/{username}/password", self.password, methods=["PUT"]),
            Route("/users/{username}/deactivate", self.deactivate, methods=["POST"]),
            Route("/users/{username}/activate", self.activate, methods=["POST"]),
            Route("/users/{username}/disconnect", self.disconnect, methods=["GET"]),
            Route("/users/{username}/status", self.status, methods=["GET"]),
            Route("/users/{username}/offline_msg_count", self.offline_messages,
                  methods=["GET"]),
            Route("/users/{username}/offline_msg_status/{msg_id}", self.offline_messages,
                  methods=["GET"]),
        ]  # fmt: skip
        return Starlette(routes=routes, exception_handlers=HANDLERS)


def _handler(status: int, code: str, exception: str, prefix: str = "") -> Any:
    async def handler(request: Request, exc: Exception) -> Response:
        return error(request, status, code, exception, f"{prefix}{exc}")

    return handler


async def _unavailable(request: Request, exc: Exception) -> Response:
    response = error(request, 503, "service_unavailable", "ServiceUnavailableException",
                     "presence store unreachable, retry later")  # fmt: skip
    response.headers["Retry-After"] = "1"
    return response


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        text = f"method {request.method} is not allowed on {request.url.path}"
        response = error(request, 405, "method_not_allowed", "MethodNotAllowedException", text)
    else:
        text = f"no such endpoint: {request.url.path}"
        response = error(request, exc.status_code, "service_resource_not_found",
                         "ResourceNotFoundException", text)  # fmt: skip
    response.headers.update(exc.headers or {})
    return response


async def _crash(request: Request, exc: Exception) -> Response:
    return error(request, 500, "internal_error", "InternalServerErrorException",
                 "internal error (logged on the hub)")  # fmt: skip


HANDLERS: dict[Any, Any] = {
    Exception: _crash,
    Unauthorized: _handler(401, "unauthorized", "EasemobUnauthorizedException",
                           "Unable to authenticate: "),
    Forbidden: _handler(403, "forbidden_op", "EasemobForbiddenOpException"),
    BadRequest: _handler(400, "illegal_argument", "IllegalArgumentException"),
    Duplicate: _handler(400, "duplicate_unique_property_exists",
                        "DuplicateUniquePropertyExistsException"),
    NotFound: _handler(404, "service_resource_not_found", "UserNotFoundException"),
    NotServed: _handler(501, "not_implemented", "NotImplementedException"),
    PayloadTooLarge: _handler(413, "request_entity_too_large", "RequestTooLargeException"),
    StoreUnavailable: _unavailable,
    HTTPException: _http,
}  # fmt: skip

_AUTH = (("bearer",),)
_ERR: dict[int, Any] = {400: m.AgoraError, 401: m.AgoraError, 503: m.AgoraError}
_ADMIN: dict[int, Any] = {**_ERR, 403: m.AgoraError}
_ONE: dict[int, Any] = {**_ADMIN, 404: m.AgoraError}


def _op(method: str, path: str, op_id: str, summary: str, responses: dict[int, Any],
        **kw: Any) -> Operation:  # fmt: skip
    return Operation(method, f"{PREFIX}{path}", op_id, summary, TAG, responses,
                     security=_AUTH, **kw)  # fmt: skip


OPERATIONS = [
    _op("post", "/users", "agoraRegisterUsers", "Register one user or up to 60 (admin)",
        {200: m.AgoraAnswer, **_ADMIN, 413: m.AgoraError}, body=m.AgoraRegisterBody),
    _op("get", "/users", "agoraListUsers", "List users (paged by cursor)",
        {200: m.AgoraAnswer, **_ERR}, query=m.AgoraListQuery),
    _op("delete", "/users", "agoraDeleteUsers", "Delete the oldest users (admin)",
        {200: m.AgoraAnswer, **_ADMIN}, query=m.AgoraListQuery),
    _op("post", "/users/batch/status", "agoraBatchStatus",
        "Whether each of up to 100 users is online",
        {200: m.AgoraBatchStatusAnswer, **_ERR, 413: m.AgoraError},
        body=m.AgoraBatchStatusBody),
    _op("get", "/users/{username}", "agoraGetUser", "One user", {200: m.AgoraAnswer, **_ONE}),
    _op("delete", "/users/{username}", "agoraDeleteUser", "Delete one user (admin)",
        {200: m.AgoraAnswer, **_ONE}),
    _op("put", "/users/{username}/password", "agoraSetPassword",
        "Set a user's password (the admin, or the user itself)",
        {200: m.AgoraAction, **_ONE, 413: m.AgoraError}, body=m.AgoraPasswordBody),
    _op("post", "/users/{username}/deactivate", "agoraDeactivateUser",
        "Ban a user: offline now, refused until activated (admin)",
        {200: m.AgoraAnswer, **_ONE}),
    _op("post", "/users/{username}/activate", "agoraActivateUser", "Lift a ban (admin)",
        {200: m.AgoraAction, **_ONE}),
    _op("get", "/users/{username}/disconnect", "agoraDisconnectUser",
        "Force a user offline on every node (admin)", {200: m.AgoraAnswer, **_ONE}),
    _op("get", "/users/{username}/status", "agoraUserStatus", "Whether a user is online",
        {200: m.AgoraAnswer, **_ONE}),
    _op("get", "/users/{username}/offline_msg_count", "agoraOfflineMsgCount",
        "Offline messages: messaging, not served", {**_ERR, 501: m.AgoraError}),
    _op("get", "/users/{username}/offline_msg_status/{msg_id}", "agoraOfflineMsgStatus",
        "Offline messages: messaging, not served", {**_ERR, 501: m.AgoraError}),
]  # fmt: skip
