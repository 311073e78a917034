"""``create_app(settings)``: wires the store, the node and the routes. No logic here."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from hub.admin import Admin
from hub.config import Settings
from hub.delivery.webhooks import Webhooks
from hub.metrics import HubMetrics
from hub.node import Node
from hub.pusher.wiring import create_service as create_pusher
from hub.pusher.wiring import routes as pusher_routes
from hub.registry import open_registry
from hub.rooms import Rooms
from hub.store import open_store
from hub.web import api, metrics, openapi
from hub.web.compat import agora, cometchat, iflychat, rocketchat
from hub.web.compat.common import rest_gate
from hub.web.ws import websocket_endpoint

STATIC = Path(__file__).parent / "static"


async def index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


class HubApp(Starlette):
    """Starlette, with ``/ws`` served straight from the ASGI entry point.

    Every idle websocket holds its handler's coroutine frames for its whole life; skipping
    the middleware and router layers for the one hot path saves about 4.5 KB per
    connection (measured with bench/fanout.py). Everything else goes through Starlette."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == "/ws":
            scope["app"] = self
            await websocket_endpoint(WebSocket(scope, receive, send))
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings) -> Starlette:
    node = Node(settings, open_store(settings))
    registry = open_registry(settings)
    rooms = Rooms(node, registry)
    admin = Admin(node, registry, rooms)
    node.gate = admin.gate
    node.rest_gate = rest_gate(admin)
    node.rooms = rooms
    webhooks = Webhooks(settings, node)
    pusher = create_pusher(settings, node)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await node.start()
        await registry.start()
        await rooms.start()
        await webhooks.start()
        if pusher is not None:
            await pusher.start()
        try:
            yield
        finally:
            if pusher is not None:
                await pusher.stop()
            await webhooks.stop()
            await rooms.stop()
            await admin.stop()
            await node.stop()
            await registry.close()

    routes = [
        WebSocketRoute("/ws", websocket_endpoint),
        *api.routes,
        *rocketchat.routes,
        *cometchat.routes,
        *iflychat.routes,
        *metrics.routes,
        *openapi.routes,
        *(pusher_routes() if pusher is not None else []),
        Route("/", index, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static"),
        # Last: /{org}/{app}/users... would shadow any two-segment prefix listed after it.
        *agora.routes,
    ]
    app = HubApp(routes=routes, lifespan=lifespan, middleware=cors(settings))
    app.state.node = node
    app.state.settings = settings
    app.state.admin = admin
    app.state.webhooks = webhooks
    app.state.pusher = pusher
    app.state.metrics = HubMetrics(node, webhooks=webhooks)
    return app


def cors(settings: Settings) -> list[Middleware]:
    """Cross-origin REST and /static for the origins in ``HUB_CORS_ORIGINS`` (any origin on
    a development hub). /ws needs none: its token comes in the first frame, not a cookie."""
    origins = settings.allowed_origins
    if not origins:
        return []
    headers = ["Authorization", "X-Auth-Token", "X-User-Id", "Content-Type"]
    return [Middleware(CORSMiddleware, allow_origins=list(origins),
                       allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
                       allow_headers=headers, max_age=600)]  # fmt: skip
