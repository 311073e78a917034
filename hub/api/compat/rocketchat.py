"""Rocket.Chat's presence REST API at its own paths, mounted at ``/api/v1``.

``users.presence`` follows the seed page and Rocket.Chat's server: ``ids`` first (those not
offline, ``full: false``), then ``from`` inside the window (users changed at or after it,
offline ones included, the caller left out, ``full: false``), else every user not offline
(``full: true``). An unparseable ``from`` gets the full answer, as Rocket.Chat does.
``users.getPresence`` with no parameter answers the caller's own presence; ``me`` and
``users.info`` show a user as Rocket.Chat does. Rocket.Chat gives every account the role
``user`` unless it was removed: one whose token names no roles shows (and is found by)
``roles: ["user"]``; one whose roles leave it out (``["admin"]``) neither shows it nor is
found by ``roles[]=user``.

Errors use Rocket.Chat's shapes, mapped once for the whole app: ``{success: false, error,
errorType}`` (400, 403, 404, 405, 413, 503) and ``{status: "error", message}`` (401).
A user who may not act for another gets 403 before anything is looked up, so the answer
does not tell whether that user exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hub.api.body import decode_json, read_json
from hub.api.caller import Caller, Forbidden, Unauthorized
from hub.api.http import BadRequest, NotFound, PayloadTooLarge, etag, iso_ms, parse_iso, reply
from hub.api.query import read_query
from hub.api.schema import rocketchat as m
from hub.api.services import Services
from hub.api.spec import Operation
from hub.model.presence import CHOSEN_STATUSES, MAX_TEXT, check_until
from hub.model.text import BadText, check_text
from hub.stores.presence.base import StoreUnavailable, UserView
from hub.stores.registry.base import User
from hub.stores.registry.query import Sort, UserQuery, list_users

PREFIX = "/api/v1"
TAG = "Rocket.Chat"
#: A user id or username read from a query or a body.
MAX_ID = 256
#: Rocket.Chat's message when a userId or username matches nobody.
INVALID_USER = 'The required "userId" or "username" param provided does not match any users'
#: Every Rocket.Chat user has this role.
DEFAULT_ROLES = ("user",)

#: Rocket.Chat's upper page size (API_Upper_Count_Limit; the default, 50, is the model's).
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


def _offset(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def presence_user(view: UserView) -> m.RcPresenceUser:
    return m.RcPresenceUser(
        id=view.id,
        username=view.username,
        name=view.name,
        status=view.status,
        statusText=view.text,
        utcOffset=_offset(view.utc_offset),
        avatarETag=etag(view.avatar) if view.avatar else None,
    )


def connection_status(view: UserView | None) -> str:
    if view is None or view.connections == 0:
        return "offline"
    return view.status if view.chosen == "online" else "online"


def list_user(user: User, status: str) -> m.RcListUser:
    return m.RcListUser(
        id=user.id,
        username=user.username,
        type=user.type,
        roles=list(user.roles or DEFAULT_ROLES),
        status=status,
        active=user.activated,
        name=user.name or user.username,
        lastLogin=iso_ms(user.last_login) if user.last_login else None,
        avatarETag=etag(user.avatar) if user.avatar else None,
    )


def rc_user(uid: str, account: User | None, view: UserView | None) -> m.RcUser:
    username = (account.username if account else "") or (view.username if view else "") or uid
    name = (account.name if account else "") or (view.name if view else "") or username
    avatar = (view.avatar if view else "") or (account.avatar if account else "")
    last_login = (account.last_login if account else 0) or (view.last_login if view else 0)
    return m.RcUser(
        id=uid,
        username=username,
        name=name,
        type=account.type if account else "user",
        status=view.status if view else "offline",
        statusConnection=connection_status(view),
        statusText=view.text if view else "",
        utcOffset=_offset(view.utc_offset if view else (account.utc_offset if account else 0)),
        active=account.activated if account else True,
        roles=list((account.roles if account else ()) or DEFAULT_ROLES),
        lastLogin=iso_ms(last_login) if last_login else None,
        avatarETag=etag(avatar) if avatar else None,
    )


def _ident(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    try:
        check_text(value, name, MAX_ID)
    except BadText as exc:
        raise BadRequest(str(exc)) from None
    if not value:
        raise BadRequest(f"{name} must be a non-empty string")
    return value


def _status(value: str | None) -> str | None:
    if value is not None and value not in CHOSEN_STATUSES:
        raise BadRequest(
            f"status must be one of online, away, busy, offline; got {value!r}",
            "error-invalid-status",
        )
    return value


def _list_sort(raw: str) -> Sort:
    if raw == "":
        return Sort((("username", 1),))
    spec = decode_json(raw, dict[str, int], what="sort")
    if not spec:
        raise BadRequest("sort must be a non-empty JSON object of field: 1 or -1")
    keys: list[tuple[str, int]] = []
    for name, direction in spec.items():
        if name not in LIST_SORT_FIELDS:
            known = ", ".join(LIST_SORT_FIELDS)
            raise BadRequest(f"sort field {name!r} is not one of {known}")
        if direction not in (1, -1):
            raise BadRequest(f"sort.{name} must be 1 or -1, got {direction!r}")
        keys.append((LIST_SORT_FIELDS[name], direction))
    return Sort(tuple(keys))


def _list_flag(raw: str | None, name: str) -> bool | None:
    if raw is None:
        return None
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise BadRequest(f"{name} must be true or false, got {raw!r}")


def _list_query(query: m.RcListByStatusQuery) -> UserQuery:
    return UserQuery(
        search=query.searchTerm.strip(),
        # Matched against the roles each user shows (``user`` for one with none), so the
        # filter and the answer agree: ["admin"] alone is not found by roles[]=user.
        roles=frozenset(query.roles),
        type=query.type,
        activated=None if query.status is None else query.status == "active",
        logged_in=_list_flag(query.hasLoggedIn, "hasLoggedIn"),
        default_roles=DEFAULT_ROLES,
    )


class RocketChat:
    """The ``/api/v1`` sub-app: Rocket.Chat's presence and user endpoints."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.store = services.node.store

    # -- endpoints ---------------------------------------------------------------------

    async def users_presence(self, request: Request) -> Response:
        """Presence of every user, or of those that changed since ``from`` (seed 004)."""
        caller = await self.services.caller(request)
        query = read_query(request.query_params, m.RcPresenceQuery)
        if query.ids:
            views = await self.store.users(query.ids)
            users = [presence_user(v) for v in views if v.status != "offline"]
            return reply(m.RcPresenceAnswer(users=users, full=False))
        since = parse_iso(query.from_) if query.from_ else None
        changes = await self.store.changes(since)
        views = changes.users if changes.full else [
            v for v in changes.users if v.id != caller.user
        ]  # fmt: skip
        return reply(m.RcPresenceAnswer(users=[presence_user(v) for v in views],
                                        full=changes.full))  # fmt: skip

    async def _find(self, user_id: str | None, username: str | None) -> str | None:
        """The id of a user known to presence or the registry, by id or username."""
        if user_id is not None:
            if await self.store.get(user_id) is not None:
                return user_id
            return user_id if await self.services.admin.registry.get(user_id) else None
        assert username is not None
        found = await self.store.find_username(username)
        return found or await self.services.admin.registry.find_username(username)

    async def _target(self, caller: Caller, query: m.RcTargetQuery) -> str:
        """The user a read is about: ``userId``/``username``, else the caller itself."""
        user_id = _ident(query.userId, "userId")
        username = _ident(query.username, "username")
        if user_id is None and username is None:
            if caller.user is None:
                raise BadRequest("userId or username is required", "error-user-param-not-provided")
            return caller.user
        found = await self._find(user_id, username)
        if found is None:
            raise BadRequest(INVALID_USER, "error-invalid-user")
        return found

    async def users_get_presence(self, request: Request) -> Response:
        """One user's presence (``userId`` or ``username``; neither: the caller's own)."""
        caller = await self.services.caller(request)
        uid = await self._target(caller, read_query(request.query_params, m.RcTargetQuery))
        view = await self.store.get(uid)
        last_login = view.last_login if view else 0
        return reply(
            m.RcGetPresenceAnswer(
                presence=view.status if view else "offline",
                connectionStatus=connection_status(view),
                lastLogin=iso_ms(last_login) if last_login else None,
                # Offline, and neither the user nor HUB_LAST_SEEN hides it; ISO like lastLogin.
                lastSeen=iso_ms(seen) if view and (seen := view.shown_last_seen()) else None,
                success=True,
            )
        )

    async def _until(self, body: m.RcSetStatusBody) -> int | None:
        """``expiresAt`` (ISO 8601, within a year ahead) as ``until`` ms; BadRequest naming
        the field."""
        if body.expiresAt is None:
            return None
        if body.status is None and body.message is None:
            raise BadRequest("expiresAt needs a status or a message to expire")
        until = parse_iso(body.expiresAt)
        if until is None:
            raise BadRequest(f"expiresAt must be an ISO 8601 time, got {body.expiresAt!r}")
        try:
            check_until(until, await self.store.now(), field_name="expiresAt")
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        return until

    async def users_set_status(self, request: Request) -> Response:
        """Set the caller's (or, for the admin, any user's) status and status message."""
        caller = await self.services.caller(request)
        body = await read_json(request, m.RcSetStatusBody)
        if body.status is None and body.message is None and body.lastSeen is None:
            raise BadRequest("status or message (or lastSeen) is required")
        status = _status(body.status)
        if body.message is not None:
            try:
                check_text(body.message, "message", MAX_TEXT)
            except BadText as exc:
                raise BadRequest(str(exc)) from None
        user_id = _ident(body.userId, "userId")
        username = _ident(body.username, "username")
        if user_id is None and username is None:
            if caller.user is None:
                raise BadRequest(
                    "userId or username is required when acting as admin",
                    "error-user-param-not-provided",
                )
            target = caller.user
        else:
            # Authorization before existence: another user is 403 whether or not it exists.
            if not caller.admin:
                if user_id is not None and user_id != caller.user:
                    raise Forbidden("a user may set only its own status")
                if username is not None and await self._find(None, username) != caller.user:
                    raise Forbidden("a user may set only its own status")
            found = await self._find(user_id, username)
            if found is None:
                raise BadRequest(INVALID_USER, "error-invalid-user")
            target = found
        if not caller.may_act_for(target):
            raise Forbidden("a user may set only its own status")
        until = await self._until(body)
        hide = None if body.lastSeen is None else body.lastSeen == "nobody"

        async def apply() -> UserView | None:
            try:
                return await self.store.set_status(
                    target, status=status, text=body.message, until=until, hide_last_seen=hide
                )
            except ValueError as exc:  # expiresAt passed between the check and the write
                raise BadRequest(str(exc).replace("until", "expiresAt", 1)) from None

        view = await apply()
        if view is None and caller.claims is not None and caller.user == target:
            # A user whose token is valid is known even before its first connection.
            await self.store.set_profile(caller.claims.profile())
            view = await apply()
        if view is None:
            raise BadRequest(INVALID_USER, "error-invalid-user")
        return reply(m.RcSuccess())

    async def me(self, request: Request) -> Response:
        """The caller, as Rocket.Chat's ``GET /api/v1/me`` shows it."""
        caller = await self.services.caller(request)
        if caller.user is None:
            raise BadRequest(
                "me needs a user: send X-Auth-Token with X-User-Id",
                "error-user-param-not-provided",
            )
        account = await self.services.admin.registry.get(caller.user)
        view = await self.store.get(caller.user)
        if view is None and account is None and caller.claims is not None:
            profile = caller.claims.profile()
            user = rc_user(caller.user, User(id=caller.user, username=profile.username,
                                             name=profile.name), None)  # fmt: skip
        else:
            user = rc_user(caller.user, account, view)
        fields = msgspec.structs.asdict(user)
        return reply(m.RcMeAnswer(**fields, settings=m.RcPreferences(), success=True))

    async def users_info(self, request: Request) -> Response:
        """One user (``userId`` or ``username``), as Rocket.Chat's ``users.info`` shows it."""
        caller = await self.services.caller(request)
        query = read_query(request.query_params, m.RcTargetQuery)
        if query.userId is None and query.username is None:
            raise BadRequest("userId or username is required", "error-user-param-not-provided")
        uid = await self._target(caller, query)
        account = await self.services.admin.registry.get(uid)
        view = await self.store.get(uid)
        return reply(m.RcUserInfoAnswer(user=rc_user(uid, account, view)))

    async def users_list_by_status(self, request: Request) -> Response:
        """Registered users filtered by activation, first login, type, roles and a search
        term (seed 003), ``offset``/``count``/``sort`` paged; ``status`` is the presence."""
        await self.services.caller(request)
        params = read_query(request.query_params, m.RcListByStatusQuery)
        query = _list_query(params)
        sort = _list_sort(params.sort or "")
        offset = params.offset
        count = LIST_MAX_COUNT if params.count == 0 else min(params.count, LIST_MAX_COUNT)
        page = await list_users(self.services.admin.registry, query, sort, offset, count)
        views = {v.id: v.status for v in await self.store.users([u.id for u in page.users])}
        users = [list_user(u, views.get(u.id, "offline")) for u in page.users]
        return reply(m.RcListByStatusAnswer(users=users, count=len(users), offset=offset,
                                            total=page.total or 0))  # fmt: skip

    # -- the app -----------------------------------------------------------------------

    def app(self, extra: Sequence[BaseRoute] = ()) -> Starlette:
        """The sub-app; ``extra``: other routes under the same prefix (the hub's own)."""
        routes = [
            *extra,
            Route("/users.presence", self.users_presence, methods=["GET"]),
            Route("/users.getPresence", self.users_get_presence, methods=["GET"]),
            Route("/users.setStatus", self.users_set_status, methods=["POST"]),
            Route("/users.listByStatus", self.users_list_by_status, methods=["GET"]),
            Route("/users.info", self.users_info, methods=["GET"]),
            Route("/me", self.me, methods=["GET"]),
        ]
        return Starlette(routes=routes, exception_handlers=HANDLERS)


def failure(status: int, message: str, error_type: str | None = None) -> Response:
    return reply(m.RcFailure(error=message, errorType=error_type, success=False), status)


async def _bad_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BadRequest)
    if exc.error_type:
        return failure(400, f"{exc} [{exc.error_type}]", exc.error_type)
    return failure(400, str(exc))


async def _unauthorized(request: Request, exc: Exception) -> Response:
    message = f"You must be logged in to do this. ({exc})"
    return reply(m.RcUnauthorized(message=message), 401)


async def _forbidden(request: Request, exc: Exception) -> Response:
    return failure(403, f"{exc} [error-not-allowed]", "error-not-allowed")


async def _too_large(request: Request, exc: Exception) -> Response:
    return failure(413, str(exc))


async def _not_found(request: Request, exc: Exception) -> Response:
    return failure(404, str(exc))


async def _unavailable(request: Request, exc: Exception) -> Response:
    response = failure(503, "presence store unreachable, retry later")
    response.headers["Retry-After"] = "1"
    return response


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    elif exc.status_code == 404:
        message = f"no such endpoint: {request.url.path}"
    else:
        message = str(exc.detail)
    response = failure(exc.status_code, message)
    response.headers.update(exc.headers or {})
    return response


async def _crash(request: Request, exc: Exception) -> Response:
    return failure(500, "internal error (logged on the hub)")


HANDLERS: dict[Any, Any] = {
    Exception: _crash,
    BadRequest: _bad_request,
    Unauthorized: _unauthorized,
    Forbidden: _forbidden,
    PayloadTooLarge: _too_large,
    NotFound: _not_found,
    StoreUnavailable: _unavailable,
    HTTPException: _http,
}

_AUTH = (("rcToken", "rcUserId"), ("bearer",))
_ERRORS: dict[int, Any] = {400: m.RcFailure, 401: m.RcUnauthorized, 503: m.RcFailure}

OPERATIONS = [
    Operation(
        "get", f"{PREFIX}/users.presence", "rcUsersPresence",
        "Presence of every user, or of those changed since `from`", TAG,
        {200: m.RcPresenceAnswer, **_ERRORS}, query=m.RcPresenceQuery, security=_AUTH,
        description=(
            "`ids` first: those of them not offline (`full: false`). Else `from` inside the "
            "window: every user changed at or after it, offline ones included, the caller "
            "left out (`full: false`). Else, or when `from` is unparseable: every user not "
            "offline (`full: true`)."
        ),
    ),
    Operation(
        "get", f"{PREFIX}/users.getPresence", "rcUsersGetPresence",
        "One user's presence (no parameter: the caller's own)", TAG,
        {200: m.RcGetPresenceAnswer, **_ERRORS}, query=m.RcTargetQuery, security=_AUTH,
        description="`userId` or `username` names the user. Without either, a user's "
        "credentials answer for that user; the admin key, which is no user, gets 400 "
        "`error-user-param-not-provided`. An unknown user is 400 `error-invalid-user`, "
        "as Rocket.Chat answers.",
    ),
    Operation(
        "post", f"{PREFIX}/users.setStatus", "rcUsersSetStatus",
        "Set the caller's status and status text (the admin: any user's)", TAG,
        {200: m.RcSuccess, **_ERRORS, 403: m.RcFailure, 413: m.RcFailure},
        body=m.RcSetStatusBody, security=_AUTH,
        description="A user naming another user gets 403, whether or not that user exists.",
    ),
    Operation(
        "get", f"{PREFIX}/users.listByStatus", "rcUsersListByStatus",
        "Registered users by activation, login, type, roles and search term (paged)", TAG,
        {200: m.RcListByStatusAnswer, **_ERRORS}, query=m.RcListByStatusQuery,
        security=_AUTH,
    ),
    Operation(
        "get", f"{PREFIX}/users.info", "rcUsersInfo", "One user, as Rocket.Chat shows it", TAG,
        {200: m.RcUserInfoAnswer, **_ERRORS}, query=m.RcTargetQuery, security=_AUTH,
        description="`userId` or `username` is required: without either, 400 "
        "`error-user-param-not-provided`; an unknown user is 400 `error-invalid-user`.",
    ),
    Operation(
        "get", f"{PREFIX}/me", "rcMe", "The caller (clients call it to check credentials)",
        TAG, {200: m.RcMeAnswer, **_ERRORS}, security=_AUTH,
        description="The caller must be a user: X-Auth-Token with X-User-Id, or a user "
        "token as Bearer. The admin key alone (Bearer) is no user: 400 "
        "`error-user-param-not-provided`.",
    ),
]  # fmt: skip
