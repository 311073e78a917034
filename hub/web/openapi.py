"""The OpenAPI 3.1 document (``GET /openapi.json``) and the API page (``GET /docs``).

The document is written here by hand, next to nothing it could drift from silently: a test
walks ``app.routes`` and fails when a route is missing from it. Vendor-compatible paths
other than Rocket.Chat's (CometChat, Agora, iFlyChat) are described by their own module,
``hub.web.compat.openapi_paths``, which exports ``PATHS`` (and optionally ``SCHEMAS``,
``SECURITY_SCHEMES`` and ``TAGS``); it is merged in when present. ``/docs`` is one static
HTML page that fetches the document and renders it, with no CDN and no build step.
"""

from __future__ import annotations

import copy
import importlib
import logging
from functools import cache
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from hub import __version__

log = logging.getLogger("hub.web.openapi")

DOCS_PAGE = Path(__file__).with_name("docs.html")

#: Modules that may contribute paths; each is optional.
EXTRA_PATH_MODULES = ("hub.web.compat.openapi_paths",)

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Schema, description: str, example: Any = None) -> Schema:
    content: Schema = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {"description": description, "content": {"application/json": content}}


_RC_AUTH: list[dict[str, list[str]]] = [
    {"rcToken": [], "rcUserId": []},
    {"bearer": []},
]

_RC_ERRORS: dict[str, Schema] = {
    "400": _json(_ref("RcFailure"), "Bad input: the message names the field."),
    "401": _json(_ref("RcUnauthorized"), "Missing or wrong credentials."),
    "503": {
        "description": "The presence store is unreachable; retry after the given seconds.",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        "content": {"application/json": {"schema": _ref("RcFailure")}},
    },
}

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
| client | `sub` / `unsub` | `all: true`, `users: [...]` or `room`; `sub`: optional `since` |
| client | `join` / `leave` | `room` |
| server | `snapshot` | `scope`, `full`, `users`, `cursor` |
| server | `delta` | `scope`, `users`, `cursor` (at most one per subscriber, scope and tick) |
| both | `ping` / `pong` | |
| server | `ack` | `ref` of the client frame that took effect |
| server | `error` | `code`, `message`, `ref` |

Any client frame may carry a `ref`; the hub answers it with `ack` or `error` carrying the
same `ref`. A `sub` with a `since` inside the window gets the users changed at or after it
(`full: false`); otherwise a full snapshot of everyone not offline (`full: true`).

Close codes: 4001 not authenticated, 4003 deactivated, 4004 disconnected by an admin,
4008 rate limited, 1009 frame too large, 1012 node restarting (reconnect), 1013 store
unreachable (retry later).
"""


def _schemas() -> dict[str, Schema]:
    status = {"type": "string", "enum": ["online", "away", "busy", "offline"]}
    return {
        "Status": status,
        "Entry": {
            "type": "object",
            "description": "A user's visible presence, as the websocket and pub/sub carry it. "
            "A consumer keeps, per user, the entry with the larger `at`.",
            "required": ["id", "status", "at"],
            "properties": {
                "id": {"type": "string"},
                "username": {"type": "string"},
                "name": {"type": "string"},
                "status": _ref("Status"),
                "text": {"type": "string", "maxLength": 120},
                "at": {
                    "type": "integer",
                    "description": "Milliseconds on the store clock of the last visible change.",
                },
                "member": {
                    "type": "boolean",
                    "description": "Room scopes only: false once, when the user left the room.",
                },
            },
        },
        "RcUser": {
            "type": "object",
            "description": "A user as Rocket.Chat's users.presence shows it.",
            "required": ["_id", "status"],
            "properties": {
                "_id": {"type": "string"},
                "username": {"type": "string"},
                "name": {"type": "string"},
                "status": _ref("Status"),
                "statusText": {"type": "string"},
                "utcOffset": {"type": "number"},
                "avatarETag": {"type": "string"},
            },
        },
        "RcPresence": {
            "type": "object",
            "required": ["users", "full", "success"],
            "properties": {
                "users": {"type": "array", "items": _ref("RcUser")},
                "full": {
                    "type": "boolean",
                    "description": "true: every user not offline (whoever is absent is "
                    "offline); false: only the users changed since `from`.",
                },
                "success": {"const": True},
            },
        },
        "RcFailure": {
            "type": "object",
            "required": ["success", "error"],
            "properties": {
                "success": {"const": False},
                "error": {"type": "string"},
                "errorType": {"type": "string"},
            },
        },
        "RcUnauthorized": {
            "type": "object",
            "required": ["status", "message"],
            "properties": {"status": {"const": "error"}, "message": {"type": "string"}},
        },
        "HubInfo": {
            "type": "object",
            "properties": {
                "dev": {
                    "type": "boolean",
                    "description": "true when the hub generated its keys (development).",
                },
                "window": {"type": "number", "description": "The change window, seconds."},
                "grace": {"type": "number", "description": "The offline grace, seconds."},
                "tick_ms": {"type": "integer"},
                "version": {"type": "string"},
                "node": {"type": "string"},
            },
        },
    }


def _native_paths() -> dict[str, Schema]:
    ops = "Operations"
    return {
        "/ws": {
            "get": {
                "tags": ["Websocket"],
                "summary": "The realtime presence websocket",
                "description": WS_DESCRIPTION,
                "operationId": "websocket",
                "parameters": [
                    {
                        "name": "Sec-WebSocket-Protocol",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "enum": ["hub.v1.json", "hub.v1.msgpack"]},
                    }
                ],
                "responses": {"101": {"description": "Switching to the websocket protocol."}},
                "x-websocket": {
                    "subprotocols": ["hub.v1.json", "hub.v1.msgpack"],
                    "closeCodes": {
                        "4001": "not authenticated",
                        "4003": "deactivated",
                        "4004": "disconnected by an admin",
                        "4008": "rate limited",
                        "1009": "frame too large",
                        "1012": "node restarting",
                        "1013": "store unreachable",
                    },
                },
            }
        },
        "/healthz": {
            "get": {
                "tags": [ops],
                "summary": "Liveness: the process is up",
                "operationId": "healthz",
                "responses": {"200": _json({"type": "object"}, "Up.", {"status": "ok"})},
            }
        },
        "/readyz": {
            "get": {
                "tags": [ops],
                "summary": "Readiness: the store answers and the node is not draining",
                "operationId": "readyz",
                "responses": {
                    "200": _json(
                        {"type": "object"},
                        "Ready.",
                        {"status": "ready", "store_ms": 0.4, "node": "3f2a9c1b7e01"},
                    ),
                    "503": _json({"type": "object"}, "Draining, or the store is unreachable."),
                },
            }
        },
        "/metrics": {
            "get": {
                "tags": [ops],
                "summary": "Prometheus metrics of this node",
                "description": "Text exposition format 0.0.4. Cluster-wide figures "
                "(`hub_online_users`, `hub_nodes_alive`) are cached for a few seconds.",
                "operationId": "metrics",
                "responses": {
                    "200": {
                        "description": "The metrics.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "tags": [ops],
                "summary": "This document",
                "operationId": "openapi",
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1 document.")},
            }
        },
        "/docs": {
            "get": {
                "tags": [ops],
                "summary": "A readable page of this document",
                "operationId": "docs",
                "responses": {
                    "200": {
                        "description": "HTML page.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/": {
            "get": {
                "tags": ["Live page"],
                "summary": "The live presence page (browser client)",
                "operationId": "index",
                "responses": {
                    "200": {
                        "description": "HTML page.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/static/{path}": {
            "get": {
                "tags": ["Live page"],
                "summary": "The browser client's files (ES modules, CSS)",
                "operationId": "static",
                "parameters": [
                    {
                        "name": "path",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                        "example": "hub.js",
                    }
                ],
                "responses": {
                    "200": {"description": "The file."},
                    "404": {"description": "No such file."},
                },
            }
        },
        "/api/v1/hub.info": {
            "get": {
                "tags": ["Hub"],
                "summary": "What a client needs to know before it signs in",
                "operationId": "hubInfo",
                "responses": {"200": _json(_ref("HubInfo"), "Settings a client may use.")},
            }
        },
        "/api/v1/dev.token": {
            "post": {
                "tags": ["Hub"],
                "summary": "A user token for the live page's sign-in (development only)",
                "description": "Answers only when the hub generated its own keys "
                "(no `HUB_SECRET`/`HUB_ADMIN_KEY` given); 404 otherwise.",
                "operationId": "devToken",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["user"],
                                "properties": {
                                    "user": {
                                        "type": "string",
                                        "pattern": "^[A-Za-z0-9_.@-]{1,64}$",
                                    },
                                    "name": {"type": "string", "maxLength": 100},
                                },
                            },
                            "example": {"user": "alice", "name": "Alice"},
                        }
                    },
                },
                "responses": {
                    "200": _json(
                        {"type": "object", "properties": {"token": {"type": "string"}}},
                        "A signed user token.",
                    ),
                    "400": _json(_ref("RcFailure"), "Bad user or name."),
                    "404": _json(_ref("RcFailure"), "The hub was given its keys."),
                },
            }
        },
    }


def _rocketchat_paths() -> dict[str, Schema]:
    tags = ["Rocket.Chat"]
    return {
        "/api/v1/users.presence": {
            "get": {
                "tags": tags,
                "summary": "Presence of everyone, or of those changed since `from`",
                "description": "With `ids`: those users that are not offline (`full: false`). "
                "With `from` inside the window (10 minutes by default): the users changed "
                "at or after it, offline ones included, the caller left out (`full: false`). "
                "Otherwise, or when `from` is unparseable: every user not offline "
                "(`full: true`).",
                "operationId": "rcUsersPresence",
                "security": _RC_AUTH,
                "parameters": [
                    {
                        "name": "from",
                        "in": "query",
                        "required": False,
                        "description": "ISO 8601 time of the last change you saw; seconds, "
                        "milliseconds and zone optional.",
                        "schema": {"type": "string"},
                        "example": "2019-05-22T12:11:45.392Z",
                    },
                    {
                        "name": "ids",
                        "in": "query",
                        "required": False,
                        "description": "Comma-separated user ids (takes precedence over `from`).",
                        "schema": {"type": "string"},
                        "example": "alice,bob",
                    },
                    {
                        "name": "ids[]",
                        "in": "query",
                        "required": False,
                        "description": "Repeated user ids, as an alternative to `ids`.",
                        "schema": {"type": "array", "items": {"type": "string"}},
                        "style": "form",
                        "explode": True,
                    },
                ],
                "responses": {
                    "200": _json(
                        _ref("RcPresence"),
                        "The users.",
                        {
                            "users": [
                                {
                                    "_id": "alice",
                                    "username": "alice",
                                    "name": "Alice",
                                    "status": "online",
                                    "statusText": "",
                                    "utcOffset": 0,
                                }
                            ],
                            "full": True,
                            "success": True,
                        },
                    ),
                    "401": _RC_ERRORS["401"],
                    "503": _RC_ERRORS["503"],
                },
            }
        },
        "/api/v1/users.getPresence": {
            "get": {
                "tags": tags,
                "summary": "One user's presence",
                "operationId": "rcUsersGetPresence",
                "security": _RC_AUTH,
                "parameters": [
                    {"name": "userId", "in": "query", "schema": {"type": "string"}},
                    {"name": "username", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["presence", "success"],
                            "properties": {
                                "presence": _ref("Status"),
                                "connectionStatus": _ref("Status"),
                                "lastLogin": {"type": "string", "format": "date-time"},
                                "lastSeen": {"type": "string", "format": "date-time"},
                                "success": {"const": True},
                            },
                        },
                        "The user's presence.",
                        {
                            "presence": "busy",
                            "connectionStatus": "online",
                            "lastLogin": "2019-05-22T12:11:45.392Z",
                            "success": True,
                        },
                    ),
                    **_RC_ERRORS,
                },
            }
        },
        "/api/v1/users.setStatus": {
            "post": {
                "tags": tags,
                "summary": "Set the caller's status and status message",
                "description": "A user may set only its own status; the admin may set "
                "anyone's with `userId` or `username`.",
                "operationId": "rcUsersSetStatus",
                "security": _RC_AUTH,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "status": _ref("Status"),
                                    "message": {"type": "string", "maxLength": 120},
                                    "expiresAt": {"type": "string", "format": "date-time"},
                                    "lastSeen": {"enum": ["everyone", "nobody"]},
                                    "userId": {"type": "string"},
                                    "username": {"type": "string"},
                                },
                            },
                            "example": {"status": "busy", "message": "in a meeting"},
                        }
                    },
                },
                "responses": {
                    "200": _json(
                        {"type": "object", "properties": {"success": {"const": True}}},
                        "Applied.",
                        {"success": True},
                    ),
                    "403": _json(_ref("RcFailure"), "Not allowed to set that user's status."),
                    **_RC_ERRORS,
                },
            }
        },
    }


def _security_schemes() -> dict[str, Schema]:
    return {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "The admin key, or a user token (HS256 JWT signed with "
            "HUB_SECRET, `sub` = user id).",
        },
        "rcToken": {
            "type": "apiKey",
            "in": "header",
            "name": "X-Auth-Token",
            "description": "Rocket.Chat style: a user token whose `sub` is X-User-Id, or the "
            "admin key.",
        },
        "rcUserId": {"type": "apiKey", "in": "header", "name": "X-User-Id"},
    }


def _extras() -> list[Any]:
    found = []
    for name in EXTRA_PATH_MODULES:
        try:
            found.append(importlib.import_module(name))
        except ImportError:
            continue
        except Exception:  # a broken contribution must not take /openapi.json down
            log.exception("ignored %s: it failed to import", name)
    return found


@cache
def spec() -> dict[str, Any]:
    """The whole document (built once per process)."""
    paths = {**_native_paths(), **_rocketchat_paths()}
    schemas = _schemas()
    schemes = _security_schemes()
    tags = [
        {"name": "Websocket", "description": "Live presence: subscribe, set status, idle."},
        {"name": "Rocket.Chat", "description": "Rocket.Chat's presence REST at its own paths."},
        {"name": "Hub", "description": "The hub's own endpoints."},
        {"name": "Operations", "description": "Health, readiness, metrics and this document."},
        {"name": "Live page", "description": "The browser client served by the hub."},
    ]
    for module in _extras():
        for path, item in (getattr(module, "PATHS", None) or {}).items():
            paths.setdefault(path, {}).update(copy.deepcopy(item))
        schemas.update(copy.deepcopy(getattr(module, "SCHEMAS", None) or {}))
        schemes.update(copy.deepcopy(getattr(module, "SECURITY_SCHEMES", None) or {}))
        known = {t["name"] for t in tags}
        tags.extend(t for t in getattr(module, "TAGS", None) or () if t["name"] not in known)
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
        "tags": tags,
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": schemas, "securitySchemes": schemes},
    }


async def openapi_json(request: Request) -> Response:
    """The OpenAPI 3.1 document of every route."""
    return JSONResponse(spec(), headers={"Cache-Control": "no-cache"})


async def docs(request: Request) -> Response:
    """The API page: renders /openapi.json in the browser, no CDN."""
    return FileResponse(DOCS_PAGE, media_type="text/html", headers={"Cache-Control": "no-cache"})


routes = [
    Route("/openapi.json", openapi_json, methods=["GET"]),
    Route("/docs", docs, methods=["GET"]),
]
