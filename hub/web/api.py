"""The hub's own endpoints: health, readiness, info and the development sign-in."""

from __future__ import annotations

import re
import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub import __version__
from hub.auth import issue_token
from hub.node import Node
from hub.store.base import StoreUnavailable
from hub.web.http import BadRequest, json_body

_USER_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


async def healthz(request: Request) -> Response:
    """The process is up."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """The store answers and the node is not draining."""
    node: Node = request.app.state.node
    if node.draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    started = time.monotonic()
    try:
        await node.store.now()
    except StoreUnavailable:
        return JSONResponse({"status": "store unreachable"}, status_code=503)
    latency = round((time.monotonic() - started) * 1000, 2)
    return JSONResponse({"status": "ready", "store_ms": latency, "node": node.id})


async def info(request: Request) -> Response:
    """What a client needs to know before it signs in."""
    node: Node = request.app.state.node
    s = node.settings
    return JSONResponse(
        {
            "dev": s.generated_keys,
            "window": s.window_s,
            "grace": s.offline_grace_s,
            "tick_ms": s.tick_ms,
            "version": __version__,
            "node": node.id,
        }
    )


async def dev_token(request: Request) -> Response:
    """A user token for the live page's sign-in; only when the hub generated its keys."""
    node: Node = request.app.state.node
    if not node.settings.generated_keys:
        return JSONResponse(
            {"success": False, "error": "dev sign-in is off: the hub was given its keys"},
            status_code=404,
        )
    try:
        body = await json_body(request)
        user = body.get("user")
        name = body.get("name", "")
        if not isinstance(user, str) or not _USER_ID.match(user):
            raise BadRequest("user must be 1-64 letters, digits, _ . @ or -")
        if not isinstance(name, str) or len(name) > 100:
            raise BadRequest("name must be a string of at most 100 characters")
    except BadRequest as exc:
        return JSONResponse({"success": False, "error": str(exc)}, status_code=400)
    token = issue_token(node.settings.secret, user, name=name or user, username=user)
    return JSONResponse({"token": token})


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/api/v1/hub.info", info, methods=["GET"]),
    Route("/api/v1/dev.token", dev_token, methods=["POST"]),
]
