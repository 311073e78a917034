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
``role`` and ``roles`` (any of them), ``tags`` (any of them), ``withTags``,
``onlyDeactivated`` and ``withDeactivated`` (deactivated users are left out otherwise), and
``count`` (accepted; the pagination always carries the exact total). Users come sorted by
username. A bad parameter is a 400 whose ``devMessage`` names it; nothing else happens.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.registry.base import User
from hub.registry.query import Sort, UserQuery, list_users
from hub.store.base import StoreUnavailable
from hub.web.caller import Unauthorized, from_admin_key
from hub.web.compat.common import admin_of, parse_bool, parse_int, query_list
from hub.web.http import BadRequest

PER_PAGE_DEFAULT = 100
PER_PAGE_MAX = 1000
SEARCH_IN = {"name": "name", "uid": "id"}
STATUSES = ("available", "offline")


def cc_error(status: int, message: str, dev: str, code: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "devMessage": dev, "source": "v3-users", "code": code}},
        status_code=status,
    )


def cc_user(user: User, status: str, with_tags: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"uid": user.id, "name": user.name or user.username}
    if user.avatar:
        out["avatar"] = user.avatar
    if user.metadata:
        out["metadata"] = dict(user.metadata)
    out["status"] = status
    out["role"] = user.roles[0] if user.roles else "default"
    if with_tags:
        out["tags"] = list(user.tags)
    out["createdAt"] = user.created // 1000
    out["updatedAt"] = user.updated // 1000
    if user.last_login:
        out["lastActiveAt"] = user.last_login // 1000
    if not user.activated:
        out["deactivatedAt"] = user.updated // 1000
    return out


class _Params:
    """The query, validated: a BadRequest names the first wrong parameter."""

    def __init__(self, request: Request) -> None:
        q = request.query_params
        self.search = q.get("searchKey") or ""
        fields = query_list(q, "searchIn") or list(SEARCH_IN)
        wrong = [f for f in fields if f not in SEARCH_IN]
        if wrong:
            raise BadRequest(f"searchIn must be name, uid or both, got {wrong[0]!r}")
        self.search_in = frozenset(SEARCH_IN[f] for f in fields)
        self.status = q.get("status")
        if self.status is not None and self.status not in STATUSES:
            raise BadRequest(f"status must be available or offline, got {self.status!r}")
        parse_bool(q.get("count"), "count")
        self.per_page = parse_int(
            q.get("perPage"), "perPage", default=PER_PAGE_DEFAULT, minimum=1,
            maximum=PER_PAGE_MAX,
        )  # fmt: skip
        self.page = parse_int(q.get("page"), "page", default=1, minimum=1)
        role = q.get("role")
        if role is not None and not role.strip():
            raise BadRequest("role must not be empty")
        self.roles = frozenset(query_list(q, "roles") + ([role.strip()] if role else []))
        self.with_tags = bool(parse_bool(q.get("withTags"), "withTags"))
        self.tags = frozenset(query_list(q, "tags"))
        only = parse_bool(q.get("onlyDeactivated"), "onlyDeactivated")
        with_deactivated = parse_bool(q.get("withDeactivated"), "withDeactivated")
        self.activated = False if only else (None if with_deactivated else True)


async def users(request: Request) -> Response:
    """CometChat: list users, with search, presence, role and tag filters, by page."""
    settings = request.app.state.settings
    try:
        from_admin_key(settings, request.headers.get("apikey"), "apikey header")
        params = _Params(request)
        admin = admin_of(request)
        query = UserQuery(
            prefix=params.search,
            prefix_fields=params.search_in,
            roles=params.roles,
            tags=params.tags,
            activated=params.activated,
        )
        store = admin.node.store
        if params.status is not None:
            # Who is online is the store's snapshot: O(users online), never a scan of all.
            online = frozenset(v.id for v in (await store.changes(None)).users)
            if params.status == "available":
                query = replace(query, ids=online)
            else:
                query = replace(query, exclude=online)
        offset = (params.page - 1) * params.per_page
        page = await list_users(admin.registry, query, Sort(), offset, params.per_page)
        views = {v.id: v.status for v in await store.users([u.id for u in page.users])}
    except Unauthorized as exc:
        return cc_error(401, "The apikey is missing or invalid.", str(exc),
                        "AUTH_ERR_APIKEY_NOT_FOUND")  # fmt: skip
    except BadRequest as exc:
        return cc_error(400, "Failed to validate the data sent with the request.", str(exc),
                        "ERR_BAD_REQUEST")  # fmt: skip
    except StoreUnavailable:
        response = cc_error(503, "Service unavailable, retry later.",
                            "presence store unreachable", "ERR_SERVICE_UNAVAILABLE")  # fmt: skip
        response.headers["Retry-After"] = "1"
        return response
    data = [
        cc_user(u, "offline" if views.get(u.id, "offline") == "offline" else "available",
                params.with_tags)
        for u in page.users
    ]  # fmt: skip
    total = page.total or 0
    body: dict[str, Any] = {
        "data": data,
        "meta": {
            "pagination": {
                "total": total,
                "count": len(data),
                "per_page": params.per_page,
                "current_page": params.page,
                "total_pages": max(1, math.ceil(total / params.per_page)),
            }
        },
    }
    if data:
        body["cursor"] = {"updatedAt": max(d["updatedAt"] for d in data), "affix": "prepend"}
    return JSONResponse(body)


routes = [Route("/v3/users", users, methods=["GET"])]
