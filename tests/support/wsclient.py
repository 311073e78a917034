"""A small real websocket client for end-to-end tests (the ``websockets`` library).

A :class:`WsClient` keeps every frame the hub sent, in order, decoded (JSON text frames
or msgpack binary frames), and a :class:`PresenceMap`: the client-side state a browser
keeps, built from snapshots and deltas by ``at`` (the larger ``at`` wins). Tests wait on
frames with :meth:`WsClient.wait_for`, a predicate and a deadline, never with a sleep:
the reader task wakes every waiter when a frame arrives or the socket closes.

``request`` sends a frame with a ``ref`` and waits for the ``ack`` (or ``error``) that
answers it; ``mark()`` / ``after=`` let a test look only at frames that arrived after a
point it chose.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgpack
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

JSON = "hub.v1.json"
MSGPACK = "hub.v1.msgpack"
#: Default deadline for anything a test waits on (generous for a loaded 2-core machine).
TIMEOUT_S = 10.0

Frame = dict[str, Any]


def encode(frame: Frame, subprotocol: str | None) -> str | bytes:
    """A client frame in the codec of ``subprotocol`` (JSON when none was asked)."""
    if subprotocol == MSGPACK:
        packed: bytes = msgpack.packb(frame, use_bin_type=True)
        return packed
    return json.dumps(frame)


def decode(data: str | bytes) -> Frame:
    value = json.loads(data) if isinstance(data, str) else msgpack.unpackb(data, raw=False)
    assert isinstance(value, dict), f"the hub sent a frame that is not a map: {value!r}"
    return value


class PresenceMap:
    """Per user, the entry with the larger ``at``: what a well-behaved consumer keeps."""

    def __init__(self) -> None:
        self.users: dict[str, Frame] = {}
        self.cursor = 0

    def merge(self, entries: Iterable[Frame]) -> None:
        for entry in entries:
            current = self.users.get(entry["id"])
            if current is None or entry["at"] >= current["at"]:
                self.users[entry["id"]] = entry

    def apply(self, frame: Frame) -> None:
        """Apply a ``snapshot`` or ``delta`` frame (other frames are ignored)."""
        op = frame.get("op")
        if op not in ("snapshot", "delta"):
            return
        users = [u for u in frame["users"] if u.get("member", True)]
        if op == "snapshot" and frame["full"]:
            # A full snapshot lists everyone not offline: whoever it leaves out is offline.
            scope = frame["scope"]
            covered = set(self.users) if scope.get("all") else set(scope.get("users", ()))
            listed = {u["id"] for u in users}
            for uid in covered - listed:
                self.users.pop(uid, None)
        self.merge(users)
        self.cursor = max(self.cursor, int(frame.get("cursor") or 0))

    def status(self, user: str) -> str:
        entry = self.users.get(user)
        return "offline" if entry is None else str(entry["status"])

    def get(self, user: str) -> Frame | None:
        return self.users.get(user)


class WsClient:
    """One websocket connection to a hub, with every received frame kept in order."""

    def __init__(self, connection: ClientConnection, subprotocol: str | None) -> None:
        self.connection = connection
        self.subprotocol = subprotocol
        self.frames: list[Frame] = []
        self.raw: list[str | bytes] = []
        self.state = PresenceMap()
        self.ready: Frame | None = None
        self.closed = False
        self.close_code: int | None = None
        self.close_reason = ""
        self._refs = itertools.count(1)
        self._arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read(), name="wsclient-reader")

    @classmethod
    async def open(
        cls, url: str, *, subprotocol: str | None = None, max_size: int | None = 4 * 2**20
    ) -> WsClient:
        connection = await connect(
            url,
            subprotocols=[Subprotocol(subprotocol)] if subprotocol else None,
            proxy=None,
            max_size=max_size,
            open_timeout=TIMEOUT_S,
            close_timeout=5,
            compression=None,
        )
        return cls(connection, subprotocol)

    # -- receiving -----------------------------------------------------------------------

    async def _read(self) -> None:
        try:
            async for data in self.connection:
                frame = decode(data)
                self.raw.append(data)
                self.frames.append(frame)
                self.state.apply(frame)
                self._wake()
        except ConnectionClosed:
            pass
        finally:
            self.closed = True
            self.close_code = self.connection.close_code
            self.close_reason = self.connection.close_reason or ""
            self._wake()

    def _wake(self) -> None:
        # Waiters hold the old event; a fresh one is armed for the next frame.
        event, self._arrived = self._arrived, asyncio.Event()
        event.set()

    def mark(self) -> int:
        """A position in :attr:`frames`; ``after=mark`` looks only at later frames."""
        return len(self.frames)

    async def wait_for(
        self,
        predicate: Callable[[Frame], bool],
        timeout: float = TIMEOUT_S,
        *,
        after: int = 0,
        what: str = "a matching frame",
    ) -> Frame:
        """The first frame from ``after`` on that satisfies ``predicate``, within ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        index = after
        while True:
            while index < len(self.frames):
                frame = self.frames[index]
                index += 1
                if predicate(frame):
                    return frame
            if self.closed:
                raise AssertionError(
                    f"socket closed ({self.close_code} {self.close_reason!r}) before {what}; "
                    f"frames: {self.frames[after:][-10:]!r}"
                )
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"no {what} within {timeout} s; last frames: {self.frames[after:][-10:]!r}"
                )
            event = self._arrived
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    async def wait_closed(self, timeout: float = TIMEOUT_S) -> int | None:
        """Wait until the hub closed the socket; returns the close code it sent."""
        try:
            await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        except TimeoutError:
            raise AssertionError(
                f"socket still open after {timeout} s; last frames: {self.frames[-10:]!r}"
            ) from None
        return self.close_code

    def entries(self, user: str, *, after: int = 0) -> Iterator[Frame]:
        """Every entry about ``user`` in snapshots and deltas from ``after`` on."""
        for frame in self.frames[after:]:
            if frame.get("op") in ("snapshot", "delta"):
                for entry in frame["users"]:
                    if entry["id"] == user:
                        yield entry

    async def wait_status(
        self, user: str, status: str, timeout: float = TIMEOUT_S, *, after: int = 0
    ) -> Frame:
        """The first snapshot/delta entry from ``after`` on showing ``user`` as ``status``."""
        frame = await self.wait_for(
            lambda f: (
                f.get("op") in ("snapshot", "delta")
                and any(u["id"] == user and u["status"] == status for u in f["users"])
            ),
            timeout,
            after=after,
            what=f"an entry with {user} {status}",
        )
        return next(u for u in frame["users"] if u["id"] == user and u["status"] == status)

    # -- sending -------------------------------------------------------------------------

    async def send(self, frame: Frame) -> None:
        await self.connection.send(encode(frame, self.subprotocol))

    async def send_raw(self, data: str | bytes) -> None:
        await self.connection.send(data)

    def next_ref(self) -> str:
        return f"r{next(self._refs)}"

    async def request(
        self, frame: Frame, *, expect: str = "ack", timeout: float = TIMEOUT_S
    ) -> Frame:
        """Send ``frame`` with a ``ref``; the ``ack`` (or, with ``expect="error"``, the
        ``error``) that answers it."""
        frame = dict(frame)
        ref = frame.setdefault("ref", self.next_ref())
        start = self.mark()
        await self.send(frame)
        answer = await self.wait_for(
            lambda f: f.get("op") in ("ack", "error") and f.get("ref") == ref,
            timeout,
            after=start,
            what=f"the answer to {frame!r}",
        )
        assert answer["op"] == expect, f"{frame!r} got {answer!r}, expected {expect}"
        return answer

    async def hello(self, token: str, timeout: float = TIMEOUT_S) -> Frame:
        """Authenticate; the ``ready`` frame."""
        start = self.mark()
        await self.send({"op": "hello", "token": token})
        self.ready = await self.wait_for(
            lambda f: f.get("op") == "ready", timeout, after=start, what="ready"
        )
        return self.ready

    async def subscribe(
        self, scope: Frame | None = None, *, since: int | None = None, timeout: float = TIMEOUT_S
    ) -> Frame:
        """``sub`` (``{all: true}`` by default); the ``snapshot`` that answers it."""
        scope = {"all": True} if scope is None else scope
        frame: Frame = {"op": "sub", **scope}
        if since is not None:
            frame["since"] = since
        start = self.mark()
        ack = await self.request(frame, timeout=timeout)
        # The hub queues the snapshot before the ack, on the same ordered socket.
        return await self.wait_for(
            lambda f: f.get("op") == "snapshot" and f.get("scope") == scope,
            timeout,
            after=start,
            what=f"the snapshot answering {ack!r}",
        )

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.connection.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._reader, TIMEOUT_S)

    async def __aenter__(self) -> WsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def connect_user(
    url: str, token: str, *, subprotocol: str | None = None, subscribe: bool = False
) -> WsClient:
    """A client that said hello (and, with ``subscribe``, subscribed to everyone)."""
    client = await WsClient.open(url, subprotocol=subprotocol)
    try:
        await client.hello(token)
        if subscribe:
            await client.subscribe()
    except BaseException:
        await client.close()
        raise
    return client
