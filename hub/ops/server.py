"""Running the app under uvicorn, with a drain before shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from hub.node.node import Node
from hub.ops.config import Settings
from hub.transport.engine import Engine, protocol_class

log = logging.getLogger("hub.server")


class DrainingServer(uvicorn.Server):
    """On SIGTERM/SIGINT, drain the node (close 1012, hand off to the grace), then exit."""

    def __init__(self, config: uvicorn.Config, node: Node) -> None:
        super().__init__(config)
        self.node = node
        self._draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._draining or sig not in (signal.SIGTERM, signal.SIGINT):
            super().handle_exit(sig, frame)
            return
        self._draining = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            super().handle_exit(sig, frame)
            return
        loop.call_soon_threadsafe(lambda: loop.create_task(self._drain(sig, frame)))

    async def _drain(self, sig: int, frame: FrameType | None) -> None:
        try:
            await asyncio.wait_for(self.node.drain(), 8)
        except Exception:
            log.exception("drain did not finish; the node TTL reaps what is left")
            super().handle_exit(sig, frame)
            return
        # A finished drain is a clean stop: exit 0. (uvicorn's own handler would re-raise the
        # signal after shutdown, and every rolling restart would look like a crash: 143.)
        self.should_exit = True


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening socket others may bind too (SO_REUSEPORT): with ``serve --workers N``
    every worker has its own, and the kernel spreads new connections across them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def engine_for(app: Starlette) -> Engine:
    """The websocket engine of an app made by :func:`hub.ops.app.create_app`."""
    state = app.state
    return Engine(state.node, state.commands, state.pusher, state.drivers, state.hub_limits)


def run(app: Starlette, settings: Settings, reuse_port: bool = False) -> None:
    # /ws is served by the hub's own websocket engine (hub/transport/engine.py): frame once, write
    # once, no ASGI per message. Everything else is the Starlette app.
    engine = engine_for(app)
    config = uvicorn.Config(
        app,
        ws=protocol_class(engine),
        host=settings.host,
        port=settings.port,
        ws_max_size=max(settings.max_frame_bytes, settings.max_watchlist_bytes),
        # Presence frames are small; per-message deflate would cost every browser
        # connection two zlib streams (hundreds of KB once used) for little gain.
        ws_per_message_deflate=False,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    sockets = [reuse_port_socket(settings.host, settings.port)] if reuse_port else None
    DrainingServer(config, app.state.node).run(sockets=sockets)
