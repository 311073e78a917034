"""A real HTTP webhook receiver for tests: an asyncio HTTP/1.1 server on a free port.

It records every request (headers, body, the status it answered) and can misbehave on
purpose: ``fail_every_other`` answers 500 to every second request, ``failing`` answers 500
to all, and :meth:`down` stops listening and drops open connections (connection refused)
until :meth:`up`. Waiting is by event, never by sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from dataclasses import dataclass
from typing import Any

from hub.delivery.core import verify
from hub.delivery.stream import entry_order


@dataclass
class Request:
    headers: dict[str, str]
    body: bytes
    status: int
    at: float

    @property
    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value

    @property
    def id(self) -> str:
        return str(self.json["id"])


class Receiver:
    def __init__(self, secret: str, *, fail_every_other: bool = False) -> None:
        self.secret = secret
        self.fail_every_other = fail_every_other
        self.failing = False
        self.requests: list[Request] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._changed = asyncio.Event()
        self._count = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def up(self) -> Receiver:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def down(self) -> None:
        """Stop listening and drop every open connection: the endpoint is unreachable."""
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.close()
            await self._server.wait_closed()
            self._server = None
            # The handlers see their sockets closed and finish; wait for them (a deadline
            # poll), so none is left to be cancelled with the event loop.
            deadline = time.monotonic() + 5
            while self._writers and time.monotonic() < deadline:
                await asyncio.sleep(0.01)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self._count += 1
                status = 200
                if self.failing or (self.fail_every_other and self._count % 2 == 0):
                    status = 500
                canonical = {k.title(): v for k, v in headers.items()}
                self.requests.append(Request(canonical, body, status, time.time()))
                self._changed.set()
                reason = b"OK" if status == 200 else b"Internal Server Error"
                writer.write(b"HTTP/1.1 %d %s\r\nContent-Length: 0\r\n\r\n" % (status, reason))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def close(self) -> None:
        await self.down()

    # -- what the tests check ------------------------------------------------------------

    @property
    def accepted(self) -> list[Request]:
        return [r for r in self.requests if r.status == 200]

    def users(self) -> list[dict[str, Any]]:
        """Every entry of every accepted POST, in arrival order."""
        return [u for r in self.accepted for u in r.json["users"]]

    def valid(self, request: Request) -> bool:
        return verify(self.secret, request.headers, request.body)

    async def wait(self, check: Any, timeout: float) -> None:
        """Wait (on each new request) until ``check()`` holds, or fail at the deadline."""
        deadline = time.monotonic() + timeout
        while not check():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"receiver: condition still false after {timeout} s "
                    f"({len(self.requests)} requests, {len(self.accepted)} accepted)"
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))


def in_order(requests: list[Request]) -> bool:
    """Accepted deliveries never go back: each id at or after the one before."""
    orders = [entry_order(r.id) for r in requests]
    return all(a <= b for a, b in itertools.pairwise(orders))
