"""The ASGI websocket transport, for the app served by another ASGI server.

``presence-hub serve`` serves ``/ws`` and ``/app/{key}`` with :mod:`hub.transport.engine`
(frame once, write once) and never reaches this module; it keeps the app whole under any
ASGI server (hypercorn, daphne, uvicorn without the hub's engine). The connection's life is
the same :class:`~hub.session.driver.Driver` with the same rules; only the bytes move
differently: a writer task sends the driver's frames in order, and while a send is in
flight the transport reports itself paused, so the driver's bounded outbox (and the wire's
overflow policy) applies exactly as on the engine. Websocket pings are the server's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from starlette.websockets import WebSocket, WebSocketState

from hub.node.node import DRAIN_RETRY_AFTER_S
from hub.session.core import Session
from hub.session.driver import Driver, Drivers
from hub.session.rules_hub import HubRules
from hub.wire import hub as p
from hub.wire import pusher as pw

log = logging.getLogger("hub.ws")

#: Frames the writer may hold before the transport reports itself paused.
HIGH_WATER = 16
#: How long a close waits for the frames before it to be sent.
FLUSH_S = 2.0


class AsgiTransport:
    """A Starlette websocket as a driver's transport."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        client = websocket.client
        self.peer = client.host if client is not None else ""
        self.paused = False
        self.driver: Driver | None = None
        self._queue: deque[str | bytes] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._reading = asyncio.Event()
        self._reading.set()

    def write(self, data: str | bytes) -> bool:
        if self._closing:
            return False
        self._queue.append(data)
        if len(self._queue) >= HIGH_WATER:
            self.paused = True
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write())
        return True

    async def _write(self) -> None:
        ws = self.websocket
        try:
            while self._queue:
                data = self._queue.popleft()
                if isinstance(data, str):
                    await ws.send_text(data)
                else:
                    await ws.send_bytes(data)
                if self.paused and len(self._queue) < HIGH_WATER // 2:
                    self.paused = False
                    if self.driver is not None:
                        self.driver.resume_writing()
        except Exception:
            self._closing = True
        finally:
            self._writer = None

    def close(self, code: int, reason: str) -> None:
        if self._closing:
            return
        asyncio.get_running_loop().create_task(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        writer = self._writer
        if writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(writer), FLUSH_S)
        self._closing = True
        with contextlib.suppress(Exception):
            if self.websocket.application_state == WebSocketState.CONNECTED:
                await self.websocket.close(code, reason)

    def pause_reading(self) -> None:
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    def keepalive(self) -> None:
        return None  # the ASGI server pings

    async def read(self, driver: Driver) -> int | None:
        """Feed every message to the driver until the client goes; its close code."""
        ws = self.websocket
        loop = asyncio.get_running_loop()
        while not self._closing:
            if not self._reading.is_set():
                await self._reading.wait()
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                code = message.get("code")
                return int(code) if code is not None else None
            text = message.get("text")
            data: str | bytes = (
                str(text) if text is not None else bytes(message.get("bytes") or b"")
            )
            driver.received(data, loop.time())
        return None


async def _deny(websocket: WebSocket, status: int, body: str, headers: dict[str, str]) -> None:
    """Answer the handshake with an HTTP response (the ASGI websocket denial extension), or
    close before accepting when the server has no such extension."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        raw.append((b"content-type", b"text/plain; charset=utf-8"))
        await websocket.send(
            {"type": "websocket.http.response.start", "status": status, "headers": raw}
        )
        await websocket.send({"type": "websocket.http.response.body", "body": body.encode()})
        return
    await websocket.close(p.CloseCode.RESTARTING, body.strip()[:120])


async def websocket_endpoint(websocket: WebSocket) -> None:
    """``/ws`` and ``/app/{key}``."""
    state = websocket.app.state
    node = state.node
    drivers: Drivers = state.drivers
    if node.draining:
        await _deny(websocket, 503, "node restarting, retry elsewhere\n",
                    {"Retry-After": str(DRAIN_RETRY_AFTER_S)})  # fmt: skip
        return
    loop = asyncio.get_running_loop()
    now = loop.time()
    if websocket.scope["path"] == "/ws":
        offered = list(websocket.scope.get("subprotocols") or [])
        codec = p.codec_for(offered)
        await websocket.accept(subprotocol=codec.name if codec.name in offered else None)
        limits = state.hub_limits
        session = Session(HubRules(codec, limits), limits, now)
        handler = state.commands
        outbox_frames = node.settings.outbox_frames
    else:
        service = state.pusher
        key = websocket.path_params.get("key", "")
        protocol = websocket.query_params.getlist("protocol")
        refusal, rules = service.rules_for(key, protocol, now)
        await websocket.accept()
        if refusal is not None:
            await websocket.send_text(pw.error(refusal[1], refusal[0]))
            await websocket.close(refusal[0], refusal[1][:120])
            return
        session = Session(rules, service.limits, now)
        handler, codec, outbox_frames = service, p.JSON_CODEC, service.outbox_frames
    transport = AsgiTransport(websocket)
    driver = Driver(drivers, session, handler, transport, codec=codec, outbox_frames=outbox_frames)
    transport.driver = driver
    code: int | None = None
    try:
        driver.opened()
        code = await transport.read(driver)
    except Exception:  # the client went away mid-frame: the same as a close
        pass
    finally:
        driver.gone(code)
