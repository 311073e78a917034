"""The websocket endpoint ``/app/{key}`` (transport only).

Checks the app key and protocol version, then feeds every frame to the connection's
:class:`~hub.session.pusher.PusherSession` and carries out the actions it returns through
the :class:`~hub.node.channels.PusherService`. Frames to the client go through a bounded
outbox drained by a writer task that lives only while there is something to write; a client
that falls that far behind is closed with 4100 (back off and reconnect).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from hub.node.channels import PusherService, Socket
from hub.session import pusher as s
from hub.transport.asgi import refuse_draining
from hub.wire import pusher as p

log = logging.getLogger("hub.pusher.ws")


class WsTransport:
    def __init__(self, websocket: WebSocket, limit: int) -> None:
        self.websocket = websocket
        self.limit = limit
        self.outbox: deque[str] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self.closing = False

    def send(self, text: str) -> None:
        if self.closing:
            return
        if len(self.outbox) >= self.limit:
            self.outbox.clear()
            if self._closer is None:
                self._closer = asyncio.get_running_loop().create_task(
                    self.close(p.Close.OVER_CAPACITY, "client too slow")
                )
            return
        self.outbox.append(text)
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        try:
            while self.outbox and not self.closing:
                await self.websocket.send_text(self.outbox.popleft())
        except Exception:
            self.closing = True
        finally:
            self._writer = None

    async def flush(self) -> None:
        writer = self._writer
        if writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(writer), 2.0)

    async def close(self, code: int, reason: str) -> None:
        if self.closing:
            return
        await self.flush()
        self.closing = True
        with contextlib.suppress(Exception):
            if self.websocket.application_state == WebSocketState.CONNECTED:
                await self.websocket.close(code, reason)


async def _refuse(websocket: WebSocket, code: int, message: str) -> None:
    await websocket.accept()
    await websocket.send_text(p.error(message, code))
    await websocket.close(code, message[:120])


async def endpoint(websocket: WebSocket) -> None:
    service: PusherService = websocket.app.state.pusher
    if service.node.draining:
        # Refused before the upgrade, so a proxy can send the client to a live hub.
        await refuse_draining(websocket)
        return
    key = websocket.path_params.get("key", "")
    app = service.apps.by_key.get(key)
    if app is None:
        await _refuse(websocket, p.Close.APP_UNKNOWN, "App key not known to this hub")
        return
    raw = websocket.query_params.get("protocol")
    if raw is None:
        await _refuse(websocket, p.Close.NO_PROTOCOL, "No protocol version supplied")
        return
    try:
        version = int(raw)
    except ValueError:
        version = -1
    if version not in p.PROTOCOLS:
        await _refuse(
            websocket,
            p.Close.UNSUPPORTED_PROTOCOL,
            f"Unsupported protocol version {raw[:16]!r} (5 to 7 are served)",
        )
        return
    await websocket.accept()
    settings = service.settings
    transport = WsTransport(websocket, max(1024, settings.outbox_frames * 4))
    now = time.monotonic()
    session = s.PusherSession(app, service.new_socket_id(), service.activity_timeout_s, now)
    socket = Socket(app, session, transport)
    service.opened(socket)
    try:
        for action in session.opened():
            await _run(service, socket, action)
        await _read(service, socket, websocket, settings.max_frame_bytes)
    finally:
        transport.closing = True
        await service.closed(socket)


async def _read(
    service: PusherService, socket: Socket, websocket: WebSocket, max_bytes: int
) -> None:
    session = socket.session
    transport = socket.transport
    assert isinstance(transport, WsTransport)
    while not transport.closing:
        timeout = max(0.05, session.next_deadline() - time.monotonic())
        try:
            message = await asyncio.wait_for(websocket.receive(), timeout)
        except TimeoutError:
            for action in session.tick(time.monotonic()):
                await _run(service, socket, action)
            continue
        except (WebSocketDisconnect, RuntimeError):
            return
        if message["type"] == "websocket.disconnect":
            return
        data = message.get("text")
        if data is None:
            data = message.get("bytes") or b""
        if len(data) > max_bytes:
            await transport.close(1009, "frame too large")
            return
        for action in session.receive(data, time.monotonic()):
            await _run(service, socket, action)


async def _run(service: PusherService, socket: Socket, action: s.Action) -> None:
    if isinstance(action, s.Send):
        socket.transport.send(action.text)
    elif isinstance(action, s.Subscribe):
        await service.subscribe(socket, action.channel, action.member)
    elif isinstance(action, s.Unsubscribe):
        await service.unsubscribe(socket, action.channel)
    elif isinstance(action, s.ClientEvent):
        await service.client_event(
            socket, action.channel, action.event, action.data, action.user_id
        )
    elif isinstance(action, s.Close):
        await socket.transport.close(action.code, action.reason)
