"""The OpenAPI 3.1 document (``GET /openapi.json``) and the API page (``GET /docs``).

Generated, not written: every REST operation is an :class:`~hub.api.spec.Operation` next to
its route, naming the msgspec models it reads (query, body) and answers (per status), and
the schemas come from those models (``msgspec.json.schema_components``). What is not JSON
(the websocket, the metrics, the pages) is described here. ``/docs`` is one static HTML page
that fetches the document and renders it, with no CDN and no build step.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from hub import __version__
from hub.api import rest as api
from hub.api import rooms
from hub.api.compat import agora, cometchat, iflychat, rocketchat
from hub.api.http import reply
from hub.api.schema.native import HubError
from hub.api.spec import Operation

DOCS_PAGE = Path(__file__).with_name("docs.html")
REF = "#/components/schemas/{name}"

Schema = dict[str, Any]

WS_DESCRIPTION = """\
The realtime protocol. Connect with subprotocol `hub.v1.json` (text frames) or
`hub.v1.msgpack` (binary frames); JSON when none is asked. Every frame is a map with an `op`.
The first client frame must be `hello` with a user token, within 5 s; the hub answers `ready`.

| direction | op | fields |
| --- | --- | --- |
| client | `hello` | `token` |
| server | `ready` | `conn`, `user` (own entry), `cursor`, `window` (seconds) |
| client | `status` | `status` (online, away, busy, offline) and/or `text` (120 chars) |
| client | `activity` | `state`: `online` or `away` (this connection's idle state) |
| client | `sub` / `unsub` | `all: true`, `users: [...]` (10,000 ids) or `room`; see below |
| client | `range` | `room`, `range: [from, to]`: move this connection's member window |
| client | `join` / `leave` | `room` |
| server | `snapshot` | `scope`, `full`, `users`, `cursor`; `unknown`; `total`, `v` |
| server | `delta` | `scope`, `users`, `cursor` (at most one per subscriber, scope and tick) |
| server | `counts` | `scope`, `online`, `away`, `busy`, `total`, `cursor` (at most once a tick) |
| server | `window` | `scope`, `v`, `ops` (insert / delete / update), `total`, `cursor` |
| both | `ping` / `pong` | |
| server | `ack` | `ref` of the client frame that took effect |
| server | `error` | `code`, `message`, `ref` |

Any client frame may carry a `ref`; the hub answers it with `ack` or `error` carrying the
same `ref`. A `sub` takes an optional `since`, or `counts: true` (the numbers of `all` or a
room), or, for a room, `range: [from, to]` (a window of its ordered members: a `snapshot`,
then `window` frames). A `users` snapshot lists the ids the hub never saw in `unknown`.
A `sub` with a `since` inside the window gets the users changed at or after it
(`full: false`); otherwise a full snapshot of everyone not offline (`full: true`).

Close codes: 4001 not authenticated, 4003 deactivated, 4004 disconnected by an admin,
4008 rate limited, 1009 frame too large, 1012 node restarting (reconnect), 1013 store
unreachable (retry later).
"""

_HTML = ("text/html", "HTML page.")

#: What is not JSON: the websocket, the metrics, this document and the pages.
OPERATIONS = [
    Operation(
        "get", "/ws", "websocket", "The realtime presence websocket", "Websocket", {},
        description=WS_DESCRIPTION,
        extra={
            "parameters": [{
                "name": "Sec-WebSocket-Protocol", "in": "header", "required": False,
                "schema": {"type": "string", "enum": ["hub.v1.json", "hub.v1.msgpack"]},
            }],
            "responses": {
                "101": {"description": "Switching to the websocket protocol."},
                "404": {
                    "description": "A plain HTTP request (no websocket upgrade): /ws serves "
                    "only the handshake.",
                    "content": {"application/json": {"schema": {"$ref": REF.format(
                        name="HubError")}}},
                },
                "503": {
                    "description": "The node is draining (SIGTERM): the handshake is refused "
                    "before any upgrade, so a proxy can send the client to a live hub.",
                    "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                },
            },
            "x-websocket": {
                "subprotocols": ["hub.v1.json", "hub.v1.msgpack"],
                "closeCodes": {
                    "4001": "not authenticated", "4003": "deactivated",
                    "4004": "disconnected by an admin", "4008": "rate limited",
                    "1009": "frame too large", "1012": "node restarting",
                    "1013": "store unreachable",
                },
            },
        },
    ),
    Operation(
        "get", "/metrics", "metrics", "Prometheus metrics of this node", "Operations", {},
        description="Text exposition format 0.0.4. Cluster-wide figures "
        "(`hub_online_users`, `hub_nodes_alive`) are cached for a few seconds.",
        raw={200: ("text/plain", "The metrics.")},
    ),
    Operation("get", "/openapi.json", "openapi", "This document", "Operations", {},
              raw={200: ("application/json", "OpenAPI 3.1 document.")}),
    Operation("get", "/docs", "docs", "A readable page of this document", "Operations", {},
              raw={200: _HTML}),
    Operation("get", "/", "index", "The live presence page (browser client)", "Live page", {},
              raw={200: _HTML}),
    Operation(
        "get", "/static/{path}", "static", "The browser client's files (ES modules, CSS)",
        "Live page", {404: HubError}, raw={200: ("application/octet-stream", "The file.")},
    ),
]  # fmt: skip

TAGS = [
    {"name": "Websocket", "description": "Live presence: subscribe, set status, idle."},
    {"name": "Rocket.Chat", "description": "Rocket.Chat's presence REST at its own paths."},
    {"name": "CometChat", "description": "CometChat's user list at its own path."},
    {"name": "Agora Chat", "description": "Agora Chat's user system at its own paths."},
    {"name": "iFlyChat", "description": "iFlyChat's API 1.1: online users, rooms, kicks."},
    {"name": "Hub", "description": "The hub's own endpoints."},
    {"name": "Operations", "description": "Health, readiness, metrics and this document."},
    {"name": "Live page", "description": "The browser client served by the hub."},
]

SECURITY_SCHEMES: dict[str, Schema] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "The admin key, or a user token (HS256 JWT signed with HUB_SECRET, "
        "`sub` = user id).",
    },
    "rcToken": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Auth-Token",
        "description": "Rocket.Chat style: a user token whose `sub` is X-User-Id, or the "
        "admin key.",
    },
    "rcUserId": {"type": "apiKey", "in": "header", "name": "X-User-Id"},
    "cometchatApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "apikey",
        "description": "CometChat style: the hub's admin key.",
    },
}

STATUS_TEXT = {
    200: "OK.",
    400: "Bad input: the message names the field and what was expected.",
    401: "Missing or wrong credentials.",
    403: "The caller may not do this.",
    404: "No such user, room or path.",
    413: "The body is over the size limit.",
    501: "Messaging, not presence: not served.",
    503: "The presence store is unreachable; retry after the given seconds.",
}


def operations() -> list[Operation]:
    """Every operation the app serves, in the order the document lists them."""
    return [
        *OPERATIONS,
        *api.OPERATIONS,
        *rooms.OPERATIONS,
        *rocketchat.OPERATIONS,
        *cometchat.OPERATIONS,
        *agora.OPERATIONS,
        *iflychat.OPERATIONS,
    ]


def _models(ops: Iterable[Operation]) -> list[Any]:
    seen: list[Any] = []
    for op in ops:
        for model in (op.query, op.body, *op.responses.values()):
            if model is not None and not any(model is m for m in seen):
                seen.append(model)
    return seen


def _not_null(schema: Schema) -> Schema:
    """A query parameter is absent or a value, never null: ``T | None`` documents as T."""
    variants = [v for v in schema.get("anyOf", ()) if v != {"type": "null"}]
    if "anyOf" not in schema or len(variants) == len(schema["anyOf"]):
        return schema
    rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
    if len(variants) == 1:
        return {**rest, **variants[0]}
    return {**rest, "anyOf": variants}


def _parameters(op: Operation, components: dict[str, Schema], schema: Schema | None
                ) -> list[Schema]:  # fmt: skip
    params: list[Schema] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": "^[^/]+$"},
        }
        for name in re.findall(r"\{([^}]+)\}", op.path)
    ]
    if schema is not None:
        query = components[schema["$ref"].rsplit("/", 1)[-1]]
        required = set(query.get("required", ()))
        for name, prop in query.get("properties", {}).items():
            param: Schema = {"name": name, "in": "query", "required": name in required,
                             "schema": _not_null(prop)}  # fmt: skip
            if "description" in prop:
                param["description"] = prop["description"]
            params.append(param)
    return params


def _operation(op: Operation, refs: dict[int, Schema], components: dict[str, Schema]
               ) -> Schema:  # fmt: skip
    out: Schema = {"tags": [op.tag], "summary": op.summary, "operationId": op.operation_id}
    if op.description:
        out["description"] = op.description
    query = refs.get(id(op.query)) if op.query is not None else None
    params = _parameters(op, components, query)
    if params:
        out["parameters"] = params
    if op.body is not None:
        content: Schema = {"application/json": {"schema": refs[id(op.body)]}}
        if op.form:
            content["application/x-www-form-urlencoded"] = {"schema": refs[id(op.body)]}
        out["requestBody"] = {"required": False, "content": content}
    responses: Schema = {}
    for status, model in sorted(op.responses.items()):
        item: Schema = {"description": STATUS_TEXT.get(status, "")}
        if model is not None:
            item["content"] = {"application/json": {"schema": refs[id(model)]}}
        if status == 503:
            item["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
        responses[str(status)] = item
    for status, (media, text) in sorted(op.raw.items()):
        responses[str(status)] = {"description": text,
                                  "content": {media: {"schema": {"type": "string"}}}}  # fmt: skip
    if responses:
        out["responses"] = responses
    if op.security:
        out["security"] = [{name: [] for name in alt} for alt in op.security]
    out.update(op.extra)
    return out


@cache
def spec() -> dict[str, Any]:
    """The whole document (built once per process)."""
    ops = operations()
    models = _models(ops)
    schemas, components = msgspec.json.schema_components(models, ref_template=REF)
    refs = {id(model): schema for model, schema in zip(models, schemas, strict=True)}
    paths: dict[str, Schema] = {}
    for op in ops:
        paths.setdefault(op.path, {})[op.method] = _operation(op, refs, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Presence Hub",
            "version": __version__,
            "summary": "Who is online right now, and what changed since I last looked.",
            "description": "Realtime presence over a websocket, REST for backends (native and "
            "vendor-compatible paths), and Redis pub/sub for other services. Deltas are "
            "states, not events: per user, keep the entry with the larger `at`.",
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "servers": [{"url": "/"}],
        "tags": TAGS,
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": components, "securitySchemes": SECURITY_SCHEMES},
    }


async def openapi_json(request: Request) -> Response:
    """The OpenAPI 3.1 document of every route."""
    return reply(spec(), headers={"Cache-Control": "no-cache"})


async def docs(request: Request) -> Response:
    """The API page: renders /openapi.json in the browser, no CDN."""
    return FileResponse(DOCS_PAGE, media_type="text/html", headers={"Cache-Control": "no-cache"})


routes = [
    Route("/openapi.json", openapi_json, methods=["GET"]),
    Route("/docs", docs, methods=["GET"]),
]
