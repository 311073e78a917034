"""A reconnect storm in a process of its own: ``python -m tests.support.storm``.

Opens ``--conns`` websocket connections (connection ``i`` is user ``<prefix>i % users`` on
URL ``i % len(urls)``), each authenticated with ``hello``, and waits for commands on stdin:

- ``drop``: abort every connection at once (no close frame: a network drop), then
  reconnect them all, as fast as ``--concurrency`` handshakes in flight allow; with
  ``--away-on-reconnect``, every even connection comes back idle (``activity away``) right
  after its ``ready``, as a tab that was left alone would;
- ``quit``: close everything and exit.

It answers on stdout, one JSON object a line: ``{"event": "ready", ...}`` once connected,
``{"event": "dropped", "at": <monotonic>}`` and ``{"event": "reconnected", "s": ...}``.
The clients live in a separate process so that thousands of sockets never slow the test's
own event loop, which measures the hub's responsiveness meanwhile.

The websocket client is a bare RFC 6455 framer on an asyncio Protocol (cheap enough for
thousands of connections): it sends masked text frames, answers pings, and reads only the
``ready`` frame; whatever the hub sends afterwards is dropped unread.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import struct
import sys
import time
from urllib.parse import urlsplit

from hub.model.auth import issue_token


def frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame."""
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    key = int.from_bytes((mask * (size // 4 + 1))[:size], "big")
    body = (int.from_bytes(payload, "big") ^ key).to_bytes(size, "big") if size else b""
    return head + mask + body


class Client(asyncio.Protocol):
    """One connection: upgrade, hello, wait for ready; then only pings are answered."""

    def __init__(self, host: str, port: int, token: str, away: bool = False) -> None:
        self.host, self.port, self.token, self.away = host, port, token, away
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET /ws HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.buffer.startswith(b"HTTP/1.1 101"):
                self._fail(f"upgrade refused: {bytes(self.buffer[:80])!r}")
                return
            del self.buffer[: end + 4]
            self.upgraded = True
            hello = json.dumps({"op": "hello", "token": self.token}).encode()
            assert self.transport is not None
            self.transport.write(frame(0x1, hello))
        self._frames()

    def _frames(self) -> None:
        buf = self.buffer
        while len(buf) >= 2:
            opcode, size, at = buf[0] & 0x0F, buf[1] & 0x7F, 2
            if size == 126:
                if len(buf) < 4:
                    return
                (size,) = struct.unpack_from("!H", buf, 2)
                at = 4
            elif size == 127:
                if len(buf) < 10:
                    return
                (size,) = struct.unpack_from("!Q", buf, 2)
                at = 10
            if len(buf) < at + size:
                return
            payload = bytes(buf[at : at + size])
            del buf[: at + size]
            if opcode == 0x9 and self.transport is not None:
                self.transport.write(frame(0xA, payload))
            elif opcode == 0x8:
                self._fail(f"closed by the hub: {payload[2:]!r}")
            elif opcode == 0x1 and not self.ready.done() and b'"op":"ready"' in payload:
                if self.away and self.transport is not None:
                    away = json.dumps({"op": "activity", "state": "away"}).encode()
                    self.transport.write(frame(0x1, away))
                self.ready.set_result(None)

    def _fail(self, why: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(why))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(f"connection lost: {exc!r}")

    def drop(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class Storm:
    def __init__(self, urls: list[str], tokens: list[str], conns: int, concurrency: int) -> None:
        self.targets = []
        for i in range(conns):
            parts = urlsplit(urls[i % len(urls)])
            assert parts.hostname and parts.port
            self.targets.append((parts.hostname, parts.port, tokens[i % len(tokens)]))
        self.clients: list[Client | None] = [None] * conns
        self.gate = asyncio.Semaphore(concurrency)
        self.away_on_open = False

    async def _open(self, i: int) -> None:
        host, port, token = self.targets[i]
        away = self.away_on_open and i % 2 == 0
        loop = asyncio.get_running_loop()
        for attempt in range(20):
            async with self.gate:
                try:
                    _, client = await loop.create_connection(
                        lambda: Client(host, port, token, away), host, port
                    )
                    await asyncio.wait_for(client.ready, 30)
                except (OSError, ConnectionError, TimeoutError):
                    if attempt == 19:
                        raise
                    continue
            self.clients[i] = client
            return

    async def open_all(self) -> float:
        started = time.monotonic()
        await asyncio.gather(*(self._open(i) for i in range(len(self.targets))))
        return time.monotonic() - started

    def drop_all(self) -> None:
        for client in self.clients:
            if client is not None:
                client.drop()
        self.clients = [None] * len(self.targets)


def say(**event: object) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", action="append", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--conns", type=int, default=2000)
    parser.add_argument("--users", type=int, default=1600)
    parser.add_argument("--prefix", default="storm")
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--away-on-reconnect", action="store_true")
    args = parser.parse_args()
    tokens = [issue_token(args.secret, f"{args.prefix}{i}", ttl_s=3600) for i in range(args.users)]
    storm = Storm(args.url, tokens, args.conns, args.concurrency)
    say(event="ready", conns=args.conns, s=round(await storm.open_all(), 3))
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        if line == "drop":
            storm.drop_all()
            storm.away_on_open = args.away_on_reconnect
            say(event="dropped", at=time.monotonic())
            took = await storm.open_all()
            say(event="reconnected", conns=args.conns, s=round(took, 3), at=time.monotonic())
        elif line == "quit":
            break
    storm.drop_all()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
