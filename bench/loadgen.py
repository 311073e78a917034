"""What every load-generating benchmark shares: a bare websocket client, the generator processes,
and the readings taken from ``/proc``.

The load generators must never be the bottleneck nor share a process with a server, so the
client is a bare RFC 6455 framer on an asyncio ``Protocol`` (server frames unmasked and
unfragmented, pings answered, each text or binary frame handed to a sink with its receive
time), and the clients live in ``Pool`` processes driven over pipes: the coordinator sends a
command to every process and gathers one answer from each. A server's cost is read from the
outside (CPU ticks and resident memory in ``/proc``), so every server is measured the same
way whatever it is written in. Used by ``fanout.py``, ``pusher_fanout.py``,
``pusher_join_storm.py`` and ``subscribe_storm.py``.
"""

from __future__ import annotations

import array
import asyncio
import base64
import contextlib
import math
import multiprocessing as mp
import os
import random
import resource
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol


class Sink(Protocol):
    """Where a :class:`WsClient` hands what it receives."""

    def frame(self, client: WsClient, payload: bytes, now_ns: int) -> None: ...

    def lost(self, client: WsClient) -> None: ...


class WsClient(asyncio.Protocol):
    """One websocket connection; frames go to ``sink.frame(self, payload, now_ns)``.

    ``now_ns`` is ``time.time_ns()`` when the bytes holding the frame were read (one host,
    one clock: the sender's timestamps compare with it). ``state`` is free for the owner.
    """

    def __init__(
        self, host: str, port: int, path: str, sink: Sink, first: bytes | None = None
    ) -> None:
        self.host, self.port, self.path, self.sink = host, port, path, sink
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded = False
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiter: tuple[bytes, asyncio.Future[bytes]] | None = None
        # A server that speaks first (Pusher's connection_established) may send its frame in
        # the same read as the 101: the waiter for it must exist before the upgrade.
        self.first: asyncio.Future[bytes] | None = None
        if first is not None:
            self.first = self.expect(first)
        self.seen: dict[bytes, bytes] = {}  # publisher -> newest sequence number received
        self.state: Any = None
        self.closed = False
        self.closed_here = False  # closed by this side (not the server, not the network)
        self.mask = random.getrandbits(32).to_bytes(4, "big")
        self._mask_int = int.from_bytes(self.mask * 64, "big")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(  # type: ignore[attr-defined]
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed during the handshake"))
        if self.waiter is not None and not self.waiter[1].done():
            self.waiter[1].set_exception(ConnectionError("connection closed"))
        self.sink.lost(self)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end])
            del buf[: end + 4]
            if not head.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(ConnectionError(head.split(b"\r\n", 1)[0].decode()))
                assert self.transport is not None
                self.transport.close()
                return
            self.upgraded = True
            if self.opened.done():  # the opener gave up waiting (a loaded machine)
                assert self.transport is not None
                self.transport.close()
                return
            self.opened.set_result(None)
        now = time.time_ns()
        pos, n = 0, len(buf)
        frame = self.sink.frame
        while n - pos >= 2:
            b0, ln = buf[pos], buf[pos + 1] & 0x7F
            hl = 2
            if ln == 126:
                if n - pos < 4:
                    break
                ln, hl = (buf[pos + 2] << 8) | buf[pos + 3], 4
            elif ln == 127:
                if n - pos < 10:
                    break
                ln, hl = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            end = pos + hl + ln
            if end > n:
                break
            payload = bytes(buf[pos + hl : end])
            pos = end
            op = b0 & 0x0F
            if op in (1, 2):
                w = self.waiter
                if w is not None and payload.startswith(w[0]):
                    self.waiter = None
                    if not w[1].done():
                        w[1].set_result(payload)
                frame(self, payload, now)
            elif op == 9:
                self.send(payload, 0xA)
            elif op == 8:
                self.close()
                break
        if pos:
            del buf[:pos]

    def send(self, data: bytes, opcode: int = 1) -> None:
        if self.closed or self.transport is None:
            return
        n = len(data)
        if n < 126:
            head = bytes((0x80 | opcode, 0x80 | n))
        elif n < 65536:
            head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
        else:
            head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
        if n <= 256:
            masked = (int.from_bytes(data, "big") ^ (self._mask_int >> (8 * (256 - n)))).to_bytes(
                n, "big"
            )
        else:
            mask = (self.mask * (n // 4 + 1))[:n]
            masked = (int.from_bytes(data, "big") ^ int.from_bytes(mask, "big")).to_bytes(n, "big")
        self.transport.write(head + self.mask + masked)

    def expect(self, prefix: bytes) -> asyncio.Future[bytes]:
        """A future for the next frame that starts with ``prefix`` (one waiter at a time)."""
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.waiter = (prefix, fut)
        return fut

    def close(self) -> None:
        self.closed_here = True
        if not self.closed and self.transport is not None:
            self.send(b"\x03\xe8", 0x8)
            self.transport.close()
        self.closed = True


async def connect(
    host: str, port: int, path: str, sink: Sink, timeout: float = 10, first: bytes | None = None
) -> WsClient:
    """An upgraded connection to ``ws://host:port/path``; with ``first``, ``client.first``
    is the future of the first frame starting with it."""
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(
        lambda: WsClient(host, port, path, sink, first), host, port
    )
    assert isinstance(client, WsClient)
    await asyncio.wait_for(client.opened, timeout)
    return client


async def bounded(limit: int, jobs: list[Callable[[], Awaitable[Any]]]) -> list[Any]:
    """Run ``jobs`` with at most ``limit`` in flight; their results in order."""
    sem = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[Any]]) -> Any:
        async with sem:
            return await job()

    return list(await asyncio.gather(*(one(j) for j in jobs)))


# -- the load-generator processes -------------------------------------------------------


Handler = Callable[[Any], Awaitable[Any]]


class PipeWorker:
    """One load-generator process: commands from the coordinator's pipe, answered in order.

    A subclass returns its commands from :meth:`handlers`; ``exit`` calls :meth:`close_all`
    and ends the process. An exception is answered as an error, so the coordinator reports
    it instead of waiting for an answer that never comes.
    """

    def __init__(self, pipe: Connection, index: int) -> None:
        self.pipe = pipe
        self.index = index

    def handlers(self) -> dict[str, Handler]:
        raise NotImplementedError

    async def close_all(self) -> None:
        """Close every connection this process holds."""

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        handlers = self.handlers()
        while True:
            # a blocking recv in a thread: the pipe must stay blocking for large sends
            cmd, a = await loop.run_in_executor(None, self.pipe.recv)
            if cmd == "exit":
                await self.close_all()
                return
            try:
                handler = handlers.get(cmd)
                if handler is None:
                    raise ValueError(f"unknown command {cmd!r} (known: {', '.join(handlers)})")
                self.pipe.send(("ok", await handler(a)))
            except Exception as exc:
                self.pipe.send(("err", f"{type(exc).__name__}: {exc}"))


def _worker_main(cls: type[PipeWorker], pipe: Connection, index: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    worker = cls(pipe, index)
    try:
        import uvloop

        uvloop.run(worker.serve())
    except ImportError:
        asyncio.run(worker.serve())


class Pool:
    """Load-generator processes of one kind, driven over pipes."""

    def __init__(self, procs: int, cls: type[PipeWorker]) -> None:
        ctx = mp.get_context("fork")
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        for i in range(procs):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker_main, args=(cls, child, i), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    def __len__(self) -> int:
        return len(self.pipes)

    def send(self, cmd: str, per_worker: list[Any]) -> None:
        """Start ``cmd`` in every process (one argument each) without waiting."""
        for pipe, a in zip(self.pipes, per_worker, strict=True):
            pipe.send((cmd, a))

    def gather(self, cmd: str, timeout: float) -> list[Any]:
        """The answers to the ``cmd`` last sent, one per process, within ``timeout``."""
        out = []
        deadline = time.monotonic() + timeout
        for pipe in self.pipes:
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"load generator did not answer {cmd!r} in {timeout} s")
            status, result = pipe.recv()
            if status != "ok":
                raise RuntimeError(f"load generator failed on {cmd!r}: {result}")
            out.append(result)
        return out

    def call(self, cmd: str, per_worker: list[Any], timeout: float) -> list[Any]:
        self.send(cmd, per_worker)
        return self.gather(cmd, timeout)

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(("exit", None))
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()


def split(items: list[Any], k: int) -> list[list[Any]]:
    """``items`` dealt round-robin into ``k`` shares."""
    return [items[i::k] for i in range(k)]


def percentile(sorted_values: array.array[int], q: float, scale: float = 1000.0) -> float:
    """The ``q`` quantile (nearest rank) of sorted integers, divided by ``scale``."""
    if not sorted_values:
        return math.nan
    idx = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[idx] / scale


def cell(value: float | None, f: str) -> str:
    """A table cell: ``value`` formatted with ``f``, or ``-`` where nothing was measured."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f.format(value)


def json_safe(value: Any) -> Any:
    """``value`` with every NaN (a figure that could not be measured) as ``None``: JSON has
    no NaN, and readers such as ``jq`` refuse it."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


# -- readings from /proc -------------------------------------------------------------------


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def _children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def rss_kb(pid: int) -> int:
    """VmRSS of ``pid`` plus that of its live children (``serve --workers N``)."""
    total = _status_kb(pid, "VmRSS:")
    for child in _children(pid):
        with contextlib.suppress(OSError, RuntimeError):
            total += rss_kb(child)
    return total


def peak_rss_kb(pid: int) -> int:
    """VmHWM (the peak resident set) of ``pid`` plus that of its live children."""
    total = _status_kb(pid, "VmHWM:")
    for child in _children(pid):
        with contextlib.suppress(OSError, RuntimeError):
            total += peak_rss_kb(child)
    return total


def cpu_s(pid: int) -> float:
    """CPU seconds of ``pid`` and its live children (``serve --workers N`` forks N)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    for child in _children(pid):
        with contextlib.suppress(OSError):
            total += cpu_s(child)
    return total


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all cores, every process)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def process_cpu_s() -> float:
    """CPU seconds of the calling process (a generator measures itself with it)."""
    t = os.times()
    return t.user + t.system


# -- server processes -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def raise_open_files(need: int) -> None:
    """Lift the soft open-file limit to ``need`` descriptors when the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, need), hard))


def wait_listening(
    port: int, proc: subprocess.Popen[bytes], what: str, log: Path, timeout: float = 20
) -> None:
    """Until ``port`` accepts connections; an early exit of ``proc`` is reported at once."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: see {log}")
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(0.05)
    raise RuntimeError(f"{what} did not listen on {port} in {timeout:g} s: see {log}")


def wait_http_ok(
    url: str, proc: subprocess.Popen[bytes], what: str, log: Path, timeout: float = 20
) -> None:
    """Until ``GET url`` answers 200 (a server that listens may not be ready yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: see {log}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as answer:
            if answer.status == 200:
                return
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(0.05)
    raise RuntimeError(f"{what} did not answer 200 on {url} in {timeout:g} s: see {log}")


def stop_process(proc: subprocess.Popen[bytes], grace_s: float = 12) -> None:
    """SIGTERM, then SIGKILL after ``grace_s``."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class RedisServer:
    """A ``redis-server`` of the benchmark's own: a free port, loopback, no persistence."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> RedisServer:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_listening(self.port, self.proc, "redis-server", Path("/dev/null"), timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            stop_process(self.proc, 10)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid
