"""CometChat's ``GET /v3/users`` (seed 001) at its own path.

Authorised by the ``apikey`` header, which must be the hub's admin key (CometChat's REST
key has full access). The answer is CometChat's ``{data, meta: {pagination}, cursor}``:
each user has ``uid``, ``name``, ``status`` (``available`` when not offline, else
``offline``), ``role`` (the first role, ``default`` when none) and the seconds-since-epoch
``createdAt``/``updatedAt``; ``avatar``, ``metadata``, ``tags`` (with ``withTags``),
``lastActiveAt`` and ``deactivatedAt`` when they apply.

Parameters as the page lists them: ``searchKey`` (a prefix of the uid and/or the name,
chosen by ``searchIn``: ``name``, ``uid`` or both, the default), ``status``
(``available``/``offline``), ``perPage`` (default 100, at most 1000), ``page`` (from 1),
``role`` and ``roles`` (the role each user shows: its first, ``default`` when none),
``tags`` (any of them), ``withTags``, ``onlyDeactivated`` and ``withDeactivated``
(deactivated users are left out otherwise), and ``count`` (accepted; the pagination always
carries the exact total). Users come sorted by username. A bad parameter is a 400 whose
``devMessage`` names it; nothing else happens. Every error, an unknown path under ``/v3``
included, is CometChat's ``{error: {message, devMessage, source, code}}``, mapped once for
the app.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.api.caller import Unauthorized, from_admin_key
from hub.api.compat.common import parse_bool
from hub.api.http import BadRequest, reply
from hub.api.query import read_query
from hub.api.schema import cometchat as m
from hub.api.services import Services
from hub.api.spec import Operation
from hub.stores.presence.base import StoreUnavailable
from hub.stores.registry.base import User
from hub.stores.registry.query import Sort, UserQuery, list_users

SEARCH_IN = {"name": "name", "uid": "id"}
DEFAULT_ROLE = "default"


def cc_error(status: int, message: str, dev: str, code: str) -> Response:
    body = m.CcError(m.CcErrorBody(message=message, devMessage=dev, source="v3-users",
                                   code=code))  # fmt: skip
    return reply(body, status)


def cc_user(user: User, status: str, with_tags: bool) -> m.CcUser:
    return m.CcUser(
        uid=user.id,
        name=user.name or user.username,
        avatar=user.avatar or None,
        metadata=dict(user.metadata) if user.metadata else None,
        status="offline" if status == "offline" else "available",
        role=user.roles[0] if user.roles else DEFAULT_ROLE,
        tags=list(user.tags) if with_tags else None,
        createdAt=user.created // 1000,
        updatedAt=user.updated // 1000,
        lastActiveAt=user.last_login // 1000 if user.last_login else None,
        deactivatedAt=user.updated // 1000 if not user.activated else None,
    )


class _Params:
    """The query, validated: a BadRequest names the first wrong parameter."""

    def __init__(self, request: Request) -> None:
        q = read_query(request.query_params, m.CcUsersQuery)
        self.search = q.searchKey
        self.search_in = frozenset(SEARCH_IN[f] for f in q.searchIn or SEARCH_IN)
        self.status = q.status
        parse_bool(q.count, "count")
        self.per_page = q.perPage
        self.page = q.page
        self.roles = frozenset(q.roles + ([q.role.strip()] if q.role else []))
        self.with_tags = bool(parse_bool(q.withTags, "withTags"))
        self.tags = frozenset(q.tags)
        only = parse_bool(q.onlyDeactivated, "onlyDeactivated")
        with_deactivated = parse_bool(q.withDeactivated, "withDeactivated")
        self.activated = False if only else (None if with_deactivated else True)


class CometChat:
    """The ``/v3`` sub-app: CometChat's user list."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def users(self, request: Request) -> Response:
        """CometChat: list users, with search, presence, role and tag filters, by page."""
        from_admin_key(self.services.settings, request.headers.get("apikey"), "apikey header")
        params = _Params(request)
        query = UserQuery(
            prefix=params.search,
            prefix_fields=params.search_in,
            # The role filters match the role each user shows (its first, or "default").
            first_role=params.roles,
            default_roles=(DEFAULT_ROLE,),
            tags=params.tags,
            activated=params.activated,
        )
        if params.status is not None:
            online = await self.services.queries.online_ids()
            if params.status == "available":
                query = replace(query, ids=online)
            else:
                query = replace(query, exclude=online)
        registry = self.services.admin.registry
        offset = (params.page - 1) * params.per_page
        page = await list_users(registry, query, Sort(), offset, params.per_page)
        store = self.services.node.store
        views = {v.id: v.status for v in await store.users([u.id for u in page.users])}
        data = [cc_user(u, views.get(u.id, "offline"), params.with_tags) for u in page.users]
        total = page.total or 0
        pagination = m.CcPagination(
            total=total,
            count=len(data),
            per_page=params.per_page,
            current_page=params.page,
            total_pages=max(1, math.ceil(total / params.per_page)),
        )
        cursor = m.CcCursor(updatedAt=max(d.updatedAt for d in data)) if data else None
        return reply(m.CcUsersAnswer(data=data, meta=m.CcMeta(pagination), cursor=cursor))

    def app(self) -> Starlette:
        routes = [Route("/users", self.users, methods=["GET"])]
        return Starlette(routes=routes, exception_handlers=HANDLERS)


async def _unauthorized(request: Request, exc: Exception) -> Response:
    return cc_error(401, "The apikey is missing or invalid.", str(exc),
                    "AUTH_ERR_APIKEY_NOT_FOUND")  # fmt: skip


async def _bad_request(request: Request, exc: Exception) -> Response:
    return cc_error(400, "Failed to validate the data sent with the request.", str(exc),
                    "ERR_BAD_REQUEST")  # fmt: skip


async def _unavailable(request: Request, exc: Exception) -> Response:
    response = cc_error(503, "Service unavailable, retry later.",
                        "presence store unreachable", "ERR_SERVICE_UNAVAILABLE")  # fmt: skip
    response.headers["Retry-After"] = "1"
    return response


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        response = cc_error(405, "The method is not allowed.",
                            f"method {request.method} is not allowed on {request.url.path}",
                            "ERR_METHOD_NOT_ALLOWED")  # fmt: skip
    else:
        response = cc_error(exc.status_code, "The requested resource does not exist.",
                            f"no such endpoint: {request.url.path}",
                            "ERR_NOT_FOUND")  # fmt: skip
    response.headers.update(exc.headers or {})
    return response


async def _crash(request: Request, exc: Exception) -> Response:
    return cc_error(500, "Internal error.", "internal error (logged on the hub)",
                    "ERR_INTERNAL")  # fmt: skip


HANDLERS: dict[Any, Any] = {
    Exception: _crash,
    Unauthorized: _unauthorized,
    BadRequest: _bad_request,
    StoreUnavailable: _unavailable,
    HTTPException: _http,
}

OPERATIONS = [
    Operation(
        "get", "/v3/users", "ccListUsers",
        "CometChat: list users (search, presence, role, tags; paged)", "CometChat",
        {200: m.CcUsersAnswer, 400: m.CcError, 401: m.CcError, 503: m.CcError},
        query=m.CcUsersQuery, security=(("cometchatApiKey",),),
    ),
]  # fmt: skip
