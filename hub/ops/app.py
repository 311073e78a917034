"""``create_app(settings)``: wires the store, the node and the routes. No logic here."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from hub.api import metrics, openapi
from hub.api import rest as api
from hub.api.compat.agora import Agora
from hub.api.compat.cometchat import CometChat
from hub.api.compat.iflychat import IFlyChat
from hub.api.compat.rocketchat import RocketChat
from hub.api.rooms import RoomsApi
from hub.api.services import Services
from hub.delivery.webhooks import Webhooks
from hub.node.admin import Admin
from hub.node.commands import HubCommands
from hub.node.fanout import Fanout
from hub.node.node import Core, Node
from hub.node.queries import Queries
from hub.node.rooms import Rooms
from hub.node.views import Views
from hub.ops.config import Settings
from hub.ops.metrics import HubMetrics, Instruments
from hub.ops.pusher import create_service as create_pusher
from hub.ops.pusher import routes as pusher_routes
from hub.ops.tasks import stop_in_order
from hub.session.core import Limits
from hub.session.driver import Drivers
from hub.stores.presence import open_store
from hub.stores.registry import open_registry
from hub.transport.asgi import websocket_endpoint

STATIC = Path(__file__).parent.parent / "static"


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


class VendorMount(Mount):
    """A Mount whose prefix also claims paths holding a newline (``%0A``): Starlette's
    ``.*`` would not, and the request would get the hub's error shape, not the vendor's."""

    def __init__(self, path: str, app: ASGIApp) -> None:
        super().__init__(path, app=app)
        self.path_regex = re.compile(self.path_regex.pattern, re.DOTALL)


def vendor_mounts(services: Services, hub_api: api.HubApi,
                  rooms_api: RoomsApi | None = None) -> list[BaseRoute]:  # fmt: skip
    """Each vendor API as a sub-app with its own error mapping (the hub's own ``/api/v1``
    paths join Rocket.Chat's). Agora's ``/{org}/{app}`` comes last: it would shadow any
    two-segment prefix listed after it."""
    return [
        VendorMount(
            "/api/v1",
            RocketChat(services).app(
                [*hub_api.api_v1_routes(), *(rooms_api.routes() if rooms_api else [])]
            ),
        ),
        VendorMount("/v3", CometChat(services).app()),
        VendorMount("/api/1.1", IFlyChat(services).app()),
        Mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static"),
        VendorMount("/{org}/{app}", Agora(services).app()),
    ]


def create_app(settings: Settings) -> Starlette:
    instruments = Instruments()
    store = instruments.timed(open_store(settings))
    registry = open_registry(settings)
    core = Core(settings, store, Fanout(settings.tick_ms, Views(store)))
    rooms = Rooms(core, registry)
    admin = Admin(core, registry, rooms)
    node = Node(settings, store, fanout=core.fanout, gate=admin.gate,
                rest_gate=admin.refusal, rooms=rooms)  # fmt: skip
    commands = HubCommands(node)
    drivers = Drivers()
    queries = Queries(store)
    services = Services(settings, node, admin, queries)
    webhooks = Webhooks(settings, node)
    pusher = create_pusher(settings, node)
    collector = HubMetrics(
        node,
        queries,
        instruments,
        webhooks=webhooks,
        pusher_webhooks=pusher.webhooks if pusher is not None else None,
    )

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
            await stop_in_order([
                *([("pusher", pusher.stop)] if pusher is not None else []),
                ("webhooks", webhooks.stop),
                ("rooms", rooms.stop),
                ("admin", admin.stop),
                ("node", node.stop),
                ("registry", registry.close),
            ])  # fmt: skip

    hub_api = api.HubApi(services)
    routes = [
        WebSocketRoute("/ws", websocket_endpoint),
        *hub_api.routes(),
        *metrics.routes(collector),
        *openapi.routes,
        *(pusher_routes() if pusher is not None else []),
        Route("/", index, methods=["GET"]),
        *vendor_mounts(services, hub_api, RoomsApi(services)),
    ]
    app = HubApp(
        routes=routes, lifespan=lifespan, middleware=cors(settings), exception_handlers=api.HANDLERS
    )
    app.state.node = node
    app.state.commands = commands
    app.state.drivers = drivers
    app.state.hub_limits = hub_limits(settings)
    app.state.settings = settings
    app.state.admin = admin
    app.state.webhooks = webhooks
    app.state.pusher = pusher
    app.state.metrics = collector
    return app


def hub_limits(settings: Settings) -> Limits:
    """What every ``/ws`` session is held to (the one place they are read)."""
    return Limits(
        secret=settings.secret,
        max_frame_bytes=settings.max_frame_bytes,
        max_large_bytes=settings.max_watchlist_bytes,
        rate_per_s=settings.rate_per_s,
        burst=settings.rate_per_s * 2,
        hello_timeout_s=settings.hello_timeout_s,
        window_s=settings.window_s,
    )


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
