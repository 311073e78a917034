"""A TCP proxy that can cut the link between one hub and Redis: a network partition, for real.

:class:`TcpProxy` listens on a free port of 127.0.0.1 and forwards every connection to one
target (a Redis, or one master of a cluster). :meth:`TcpProxy.cut` partitions it in one of
two ways, :meth:`TcpProxy.heal` ends the partition:

- :attr:`Cut.RESET`: every connection is reset at once (RST, not FIN) and new ones are
  refused while the cut lasts, as when a peer's host reboots or a firewall rejects: the hub
  sees the failure at once.
- :attr:`Cut.BLACKHOLE`: connections stay open and new ones are accepted, but nothing is
  forwarded (what arrives is dropped), as when a link goes dark: the hub only learns from
  its own timeouts. At the heal every connection that lived through the cut is reset, as a
  middlebox that dropped their state would: bytes sent into the hole are never delivered
  late, so a command the hub gave up on cannot run after it answered ``unavailable``.

A cut may be limited to the connections of some processes (``only=[pid]``): the proxy then
stands in front of a server every client reaches through it (a cluster master announcing
the proxy's port), and cuts one hub's link to it while the others go on. The owner of a
connection is read from ``/proc`` (the client socket's inode in ``/proc/net/tcp``, found
among the process's file descriptors), so the hub runs unchanged. While such a cut lasts,
new connections of those processes are accepted and reset at once (the port stays open for
everyone else).

The proxy runs its own event loop in a thread of its own: the test's loop may block (a hub
process starting, a synchronous Redis command) without stalling the link it stands for.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import threading
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

T = TypeVar("T")

#: Bytes read from one side at a time.
CHUNK = 65536


class Cut(StrEnum):
    RESET = "reset"
    BLACKHOLE = "blackhole"


@dataclass(eq=False)
class _Flow:
    """One client connection and, unless it was held from the start, its upstream one."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    #: The flow saw a black hole: reset at the heal.
    held: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def _reset(writer: asyncio.StreamWriter | None) -> None:
    """Close with RST: SO_LINGER on with a zero timeout, then an abortive close."""
    if writer is None:
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _hex_address(host: str, port: int) -> str:
    """An IPv4 address as ``/proc/net/tcp`` writes it: little-endian hex, then the port."""
    packed = socket.inet_aton(host)
    return f"{int.from_bytes(packed, 'little'):08X}:{port:04X}"


def _socket_inodes() -> dict[tuple[str, str], int]:
    """Every TCP socket of this host as ``(local, remote) -> inode``, in the hex notation
    of ``/proc/net/tcp``: read once per decision, since the table may hold thousands."""
    found: dict[tuple[str, str], int] = {}
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            found[(fields[1], fields[2])] = int(fields[9])
    return found


def _owned_inodes(pids: Iterable[int]) -> set[int]:
    """The inodes of every socket the processes hold open."""
    found: set[int] = set()
    for pid in pids:
        folder = f"/proc/{pid}/fd"
        with contextlib.suppress(OSError):
            for fd in os.listdir(folder):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"{folder}/{fd}")
                    if target.startswith("socket:["):
                        found.add(int(target[8:-1]))
    return found


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target``; :meth:`cut` and :meth:`heal` it."""

    def __init__(self, target: tuple[str, int], *, port: int = 0) -> None:
        self.target = target
        self.host = "127.0.0.1"
        self.port = port
        self.mode: Cut | None = None
        self._only: frozenset[int] | None = None
        self._server: asyncio.Server | None = None
        self._flows: set[_Flow] = set()
        #: Set by :meth:`close`: a connection accepted from then on is reset at once.
        self._closing = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy")

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def _in_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the proxy's own loop and wait for it from the caller's."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    async def start(self) -> TcpProxy:
        self._thread.start()
        await self._in_loop(self._listen())
        return self

    async def cut(self, mode: Cut, *, only: Iterable[int] | None = None) -> None:
        """Partition the link (only the connections of the ``only`` processes, if given)."""
        await self._in_loop(self._cut(Cut(mode), None if only is None else frozenset(only)))

    async def heal(self) -> None:
        """End the partition: connections that were held are reset, new ones forwarded."""
        await self._in_loop(self._heal())

    async def close(self) -> None:
        if self._thread.is_alive():
            await self._in_loop(self._close_all())
            self._loop.call_soon_threadsafe(self._loop.stop)
            await asyncio.to_thread(self._thread.join)
        self._loop.close()

    async def __aenter__(self) -> TcpProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- on the proxy's loop -----------------------------------------------------------

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    # -- the fault -------------------------------------------------------------------

    async def _cut(self, mode: Cut, only: frozenset[int] | None) -> None:
        if self.mode is not None:
            raise RuntimeError(f"the proxy is already cut ({self.mode})")
        self.mode = mode
        self._only = only
        if self.mode is Cut.RESET and self._only is None:
            # Refused for real: nobody listens on the port until the heal.
            await self._stop_listening()
        for flow in self._affected(self._flows):
            if self.mode is Cut.RESET:
                self._drop(flow)
            else:
                flow.held = True

    async def _heal(self) -> None:
        if self.mode is None:
            return
        self.mode = None
        self._only = None
        for flow in [f for f in self._flows if f.held]:
            self._drop(flow)
        if self._server is None:
            await self._listen()

    def _affected(self, flows: Iterable[_Flow]) -> list[_Flow]:
        """The flows the current cut applies to (their client's process is in ``only``)."""
        if self._only is None:
            return list(flows)
        inodes, owned = _socket_inodes(), _owned_inodes(self._only)
        here = _hex_address(self.host, self.port)
        out = []
        for flow in flows:
            peer = flow.client.get_extra_info("peername")
            if peer is not None and inodes.get((_hex_address(*peer[:2]), here)) in owned:
                out.append(flow)
        return out

    # -- forwarding ------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        flow = _Flow(client=writer)
        self._flows.add(flow)
        try:
            if self._closing:
                _reset(writer)
                return
            if self.mode is not None and self._affected([flow]):
                if self.mode is Cut.RESET:
                    _reset(writer)
                    return
                # A black hole accepts and then swallows everything until the heal.
                flow.held = True
                await self._swallow(reader)
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                _reset(writer)
                return
            flow.upstream = up_writer
            flow.tasks = [
                asyncio.create_task(self._pump(reader, up_writer, flow)),
                asyncio.create_task(self._pump(up_reader, writer, flow)),
            ]
            await asyncio.gather(*flow.tasks, return_exceptions=True)
        finally:
            self._flows.discard(flow)
            self._close(flow)

    async def _swallow(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while await reader.read(CHUNK):
                pass

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, flow: _Flow
    ) -> None:
        try:
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    break
                if flow.held:
                    continue  # into the hole: dropped, never delivered late
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            # One side ended: so does the flow (a half-closed Redis connection is useless).
            for task in flow.tasks:
                if task is not asyncio.current_task():
                    task.cancel()

    def _drop(self, flow: _Flow) -> None:
        _reset(flow.client)
        _reset(flow.upstream)
        for task in flow.tasks:
            task.cancel()

    def _close(self, flow: _Flow) -> None:
        for writer in (flow.client, flow.upstream):
            if writer is not None and not writer.transport.is_closing():
                writer.transport.close()

    async def _close_all(self) -> None:
        self._closing = True
        await self._stop_listening()
        # Reset flows end their handlers. A connection the listener accepted just before it
        # closed may still be on its way to a handler (a task not yet run): wait for every
        # task of this loop, so each one's transport is closed before the loop stops.
        me = asyncio.current_task()
        while True:
            for flow in list(self._flows):
                self._drop(flow)
            rest = {t for t in asyncio.all_tasks() if t is not me}
            if not rest:
                break
            _, pending = await asyncio.wait(rest, timeout=5)
            if pending:
                break
        self._flows.clear()
