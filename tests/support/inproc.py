"""The hub served from inside the test process: ``create_app`` under uvicorn with the hub's
own websocket engine, exactly as ``presence-hub serve`` wires it, in a thread of its own.

A test that only talks HTTP and websockets to a memory hub gains nothing from a subprocess
but a second of interpreter start-up per hub; :class:`InProcessHub` starts in a few
milliseconds and serves real sockets on a free port, so the clients (httpx, websockets,
the SDK) are the same as against a process. The server has its own event loop, so one hub
can serve a whole module whatever loop each test runs in. ``stop()`` drains like SIGTERM
(close 1012, connections to the grace), then shuts uvicorn down. Every exception the hub
logs is kept, and :meth:`InProcessHub.assert_no_tracebacks` fails the test on one.

A hub process is still the tool for what needs one: signals, ``kill -9``, worker
processes, a hub's own stdout, or a second hub sharing Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
import traceback
from collections.abc import Callable, Coroutine, Iterator, Mapping
from typing import Literal, Protocol, TypeVar

import pytest
import uvicorn
from starlette.applications import Starlette

from hub.node.node import Node
from hub.ops.app import create_app
from hub.ops.config import Settings
from hub.ops.server import engine_for
from hub.transport.engine import protocol_class
from tests.support.hubproc import TEST_ADMIN_KEY, TEST_SECRET

T = TypeVar("T")

#: How long start-up (lifespan, listening) and shut-down may take on a loaded machine.
#: The stop waits for uvicorn's graceful shutdown (10 s) and the lifespan's (webhook
#: deliveries, store clients) on a thread that shares the test process's GIL: 20 s was
#: once too little on a shared machine at load 12.
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 60.0


class Hub(Protocol):
    """What tests use of a running hub, in process or not."""

    @property
    def url(self) -> str: ...

    @property
    def ws_url(self) -> str: ...

    def assert_no_tracebacks(self) -> None: ...


class _Exceptions(logging.Handler):
    """Keeps the records, logged on the hub's thread, that carry an exception."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.thread: int | None = None
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread or not record.exc_info:
            return
        trace = "".join(traceback.format_exception(*record.exc_info))
        self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()}\n{trace}")


class InProcessHub:
    """One hub (memory store unless ``HUB_STORE`` says otherwise) on 127.0.0.1, free port.

    ``asgi_ws`` names one of uvicorn's own websocket implementations (``websockets-sansio``)
    to serve ``/ws`` through the app's ASGI endpoint instead of the hub's engine, as a
    deployment under stock uvicorn does."""

    def __init__(self, env: Mapping[str, str] | None = None, *, asgi_ws: str | None = None
                 ) -> None:  # fmt: skip
        self.asgi_ws = asgi_ws
        values = {
            "HUB_SECRET": TEST_SECRET,
            "HUB_ADMIN_KEY": TEST_ADMIN_KEY,
            "HUB_STORE": "memory://",
            "HUB_HOST": "127.0.0.1",
            **(env or {}),
        }
        self.settings = Settings.from_env(values)
        self.app: Starlette = create_app(self.settings)
        self.node: Node = self.app.state.node
        self.port = 0
        #: Wall clock (ms) when the server started: the store existed by then.
        self.ready_ms = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failure: BaseException | None = None
        self._exceptions = _Exceptions()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self) -> InProcessHub:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Bound here, not picked then bound by the server: no other test can take the port.
        sock.bind(("127.0.0.1", 0))
        sock.listen(2048)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            ws=self.asgi_ws or protocol_class(engine_for(self.app)),
            ws_max_size=max(self.settings.max_frame_bytes, self.settings.max_watchlist_bytes),
            ws_per_message_deflate=False,
            log_config=None,
            lifespan="on",
            timeout_graceful_shutdown=10,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=self._serve, args=(server, sock), name=f"hub-{self.port}", daemon=True
        )
        self._thread.start()
        self._exceptions.thread = self._thread.ident
        logging.getLogger().addHandler(self._exceptions)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the hub did not start: {self._failure!r}\n{self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the hub did not start within {START_TIMEOUT_S} s")
            # Start-up runs on the hub's thread; joining it briefly is the poll interval.
            self._thread.join(0.005)
        self.ready_ms = time.time_ns() // 1_000_000
        return self

    def _serve(self, server: uvicorn.Server, sock: socket.socket) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(server.serve(sockets=[sock]))
        except BaseException as exc:  # SystemExit from a failed lifespan included
            self._failure = exc
        finally:
            loop.close()
            sock.close()

    def call(self, make: Callable[[], Coroutine[object, object, T]]) -> T:
        """Run the coroutine ``make()`` on the hub's loop and wait for its result."""
        assert self._loop is not None, "the hub is not running"

        async def run() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(STOP_TIMEOUT_S)

    def stop(self) -> None:
        """Drain as SIGTERM does (1012 to every socket, connections to the grace), then
        shut uvicorn down and wait for its thread."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._server = None
        if thread.is_alive():
            self.call(self.node.drain)
            server.should_exit = True
            thread.join(STOP_TIMEOUT_S)
        logging.getLogger().removeHandler(self._exceptions)
        if thread.is_alive():
            raise RuntimeError(f"the hub on port {self.port} did not stop in {STOP_TIMEOUT_S} s")

    async def astop(self) -> None:
        """:meth:`stop` from a test's event loop, which stays free to answer the drain."""
        await asyncio.to_thread(self.stop)

    def log(self) -> str:
        """Every exception the hub logged, with its traceback."""
        return "\n".join(self._exceptions.lines)

    def assert_no_tracebacks(self) -> None:
        """Fail when the hub logged an exception: a bug no client-side assertion saw."""
        assert not self._exceptions.lines, (
            f"hub on port {self.port} logged an exception:\n{self.log()[:4000]}"
        )


@contextlib.contextmanager
def running_inproc_hubs(
    env: Mapping[str, str], count: int = 2
) -> Iterator[tuple[InProcessHub, ...]]:
    """``count`` in-process hubs sharing ``env`` (one Redis: several nodes); all stopped at
    the end, then each fails the test if it logged an exception."""
    hubs: list[InProcessHub] = []
    try:
        for _ in range(count):
            hubs.append(InProcessHub(env).start())
        yield tuple(hubs)
    finally:
        for hub in hubs:
            hub.stop()
    for hub in hubs:
        hub.assert_no_tracebacks()


def inproc_hub_fixture(
    env: Mapping[str, str] | None = None,
    *,
    scope: Literal["session", "package", "module", "class", "function"] = "module",
) -> Callable[..., Iterator[InProcessHub]]:
    """A pytest fixture yielding one in-process hub with ``env`` for the whole ``scope``;
    it fails the last test of the scope when the hub logged an exception."""

    @pytest.fixture(scope=scope)
    def _hub() -> Iterator[InProcessHub]:
        hub = InProcessHub(env).start()
        try:
            yield hub
        finally:
            hub.stop()
        hub.assert_no_tracebacks()

    return _hub
