"""Helpers for the fault tests: watching a hub from outside while something breaks.

- :class:`ChannelWatcher`: a plain redis-py ``SUBSCRIBE`` on the presence channel, every
  message msgpack-decoded and merged into a :class:`~tests.support.wsclient.PresenceMap`,
  as another service would keep it.
- :class:`RawWsClient`: a websocket client on a bare socket with a small receive buffer that
  reads only when told to, for a subscriber that stops reading.
- :func:`open_clients`: many authenticated websocket clients at once, with bounded
  concurrency.
- :func:`rest_presence`, :func:`truth`, :func:`rss_bytes`, :func:`metric`: what the hub and
  the store say, for comparing a subscriber's state with the truth.

Everything waits on observable conditions with deadlines, never on fixed sleeps.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import struct
import time
from collections.abc import Iterable, Sequence
from typing import Any

import httpx
import msgpack
from redis.asyncio import Redis

from hub.stores.presence.base import UserView
from tests.support.hubproc import ADMIN_HEADERS
from tests.support.wsclient import TIMEOUT_S, Frame, PresenceMap, WsClient, connect_user


class ChannelWatcher:
    """A raw Redis subscriber on the presence channel, keeping every decoded message."""

    def __init__(self, url: str, channel: str) -> None:
        self.url = url
        self.channel = channel
        self.messages: list[dict[str, Any]] = []
        self.state = PresenceMap()
        self._redis: Redis | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> ChannelWatcher:
        self._redis = Redis.from_url(self.url)
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(self.channel)
        confirmation = await pubsub.get_message(timeout=TIMEOUT_S)
        assert confirmation is not None and confirmation["type"] == "subscribe", confirmation
        self._task = asyncio.create_task(self._read(pubsub), name="channel-watcher")
        return self

    async def _read(self, pubsub: Any) -> None:
        try:
            while True:
                raw = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if raw is None:
                    continue
                message = msgpack.unpackb(raw["data"], raw=False)
                self.messages.append(message)
                self.state.merge(message["users"])
        finally:
            await pubsub.aclose()

    def entries(self, user: str, *, after: int = 0) -> list[Frame]:
        return [e for m in self.messages[after:] for e in m["users"] if e["id"] == user]

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._redis is not None:
            await self._redis.aclose()


async def open_clients(
    url: str, tokens: Sequence[str], *, concurrency: int = 32, subprotocol: str | None = None
) -> list[WsClient]:
    """One authenticated client per token (in the tokens' order); all or none."""
    gate = asyncio.Semaphore(concurrency)

    async def one(token: str) -> WsClient:
        async with gate:
            return await connect_user(url, token, subprotocol=subprotocol)

    results = await asyncio.gather(*(one(t) for t in tokens), return_exceptions=True)
    clients = [r for r in results if isinstance(r, WsClient)]
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        await close_all(clients)
        raise failures[0]
    return clients


async def close_all(clients: Iterable[WsClient | None]) -> None:
    await asyncio.gather(*(c.close() for c in clients if c is not None), return_exceptions=True)


async def rest_presence(http: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    """``GET /api/v1/users.presence`` as admin; fails on anything but 200."""
    response = await http.get("/api/v1/users.presence", params=params, headers=ADMIN_HEADERS)
    assert response.status_code == 200, (response.status_code, response.text[:300])
    body: dict[str, Any] = response.json()
    return body


def visible(views: Iterable[UserView]) -> dict[str, tuple[str, str, int]]:
    """The store's truth about users: id -> (status, text, at)."""
    return {v.id: (v.status, v.text, v.at) for v in views}


def seen(state: PresenceMap, ids: Iterable[str]) -> dict[str, tuple[str, str, int] | None]:
    """What a subscriber believes about ``ids``: (status, text, at), None for absent."""
    out: dict[str, tuple[str, str, int] | None] = {}
    for uid in ids:
        entry = state.get(uid)
        out[uid] = None if entry is None else (entry["status"], entry["text"], entry["at"])
    return out


def agrees(state: PresenceMap, truth: dict[str, tuple[str, str, int]]) -> list[str]:
    """The users on which a subscriber's state differs from the truth (an absent entry is
    right for an offline user, since a full snapshot leaves offline users out)."""
    wrong = []
    for uid, (status, text, at) in truth.items():
        entry = state.get(uid)
        if entry is None:
            if status != "offline":
                wrong.append(uid)
        elif (entry["status"], entry["text"], entry["at"]) != (status, text, at):
            wrong.append(uid)
    return wrong


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc/<pid>/status."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


async def metric(http: httpx.AsyncClient, name: str) -> float:
    """One unlabelled value from the hub's ``/metrics``."""
    response = await http.get("/metrics")
    assert response.status_code == 200, response.status_code
    for line in response.text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def elapsed_since(start: float) -> float:
    return time.monotonic() - start


class RawWsClient:
    """A websocket client that reads only when :meth:`read_frames` is called.

    Its socket has a small receive buffer and its stream reader a small limit, so once
    the test stops reading, the hub's writes soon block: a slow consumer, for real."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.frames: list[Frame] = []
        self.state = PresenceMap()
        self.bytes_read = 0
        self.closed = False
        self._reading: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, host: str, port: int, *, rcvbuf: int = 4096) -> RawWsClient:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, (host, port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=8192)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT_S)
        assert head.startswith(b"HTTP/1.1 101"), head[:200]
        return cls(reader, writer)

    async def send(self, frame: Frame) -> None:
        payload = json.dumps(frame).encode()
        mask = os.urandom(4)
        size = len(payload)
        if size < 126:
            head = struct.pack("!BB", 0x81, 0x80 | size)
        elif size < 65536:
            head = struct.pack("!BBH", 0x81, 0x80 | 126, size)
        else:
            head = struct.pack("!BBQ", 0x81, 0x80 | 127, size)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(head + mask + masked)
        await self.writer.drain()

    async def _frame(self) -> tuple[int, bytes]:
        first, second = await self.reader.readexactly(2)
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
        payload = await self.reader.readexactly(size)
        self.bytes_read += size
        return first, payload

    async def read_frame(self) -> Frame | None:
        """The next data frame, decoded; None when the hub closed the socket."""
        parts: list[bytes] = []
        while True:
            first, payload = await self._frame()
            opcode = first & 0x0F
            if opcode == 0x8:
                self.closed = True
                return None
            if opcode == 0x9:  # ping: answer, as every websocket client must
                await self._control(0xA, payload)
                continue
            if opcode == 0xA:
                continue
            parts.append(payload)
            if first & 0x80:
                data = b"".join(parts)
                frame: Frame = json.loads(data)
                self.frames.append(frame)
                self.state.apply(frame)
                return frame

    async def _control(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload)) + mask + masked)
        await self.writer.drain()

    async def wait_for(
        self, predicate: Any, timeout: float = TIMEOUT_S, *, what: str = "a matching frame"
    ) -> Frame:
        """Read frames until one satisfies ``predicate`` (reading is what unblocks the hub)."""

        async def read() -> Frame:
            while True:
                frame = await self.read_frame()
                if frame is None:
                    raise AssertionError(f"the hub closed the socket before {what}")
                if predicate(frame):
                    return frame

        try:
            return await asyncio.wait_for(read(), timeout)
        except TimeoutError:
            raise AssertionError(f"no {what} within {timeout} s") from None

    def read_on(self) -> None:
        """From now on, read every frame in the background (into frames and state)."""

        async def read() -> None:
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                while await self.read_frame() is not None:
                    pass

        self._reading = asyncio.create_task(read(), name="raw-ws-reader")

    async def close(self) -> None:
        reading = self._reading
        if reading is not None:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reading
        with contextlib.suppress(Exception):
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 2)
