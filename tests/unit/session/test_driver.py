"""The driver through an in-process transport: order of answers, throttling, overflow
policies and a handler's bug, with the real session rules of both wires."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hub.model.auth import Claims, issue_token
from hub.ops.apps import App
from hub.session.core import Limits, Session
from hub.session.driver import MAX_HELD, Driver, Drivers
from hub.session.rules_hub import HubRules
from hub.session.rules_pusher import PusherRules
from hub.wire import hub as p

SECRET = "driver-test-secret-0123456789abcdef-xyz"


class Recorder:
    """A transport that keeps what it was asked to do."""

    def __init__(self) -> None:
        self.peer = "test"
        self.paused = False
        self.written: list[str | bytes] = []
        self.closed: tuple[int, str] | None = None
        self.reading = True

    def write(self, data: str | bytes) -> bool:
        self.written.append(data)
        return True

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def keepalive(self) -> None:
        return None

    def frames(self) -> list[Any]:
        return [json.loads(d) for d in self.written]


class SlowHandler:
    """Admits at once; each run takes a loop turn or two, so frames queue behind it."""

    def __init__(self) -> None:
        self.ran: list[Any] = []
        self.resyncs = 0

    async def admit(self, driver: Driver, claims: Claims | None) -> Any:
        driver.admitted = True
        if claims is None:
            return "1.1"
        return ("n.1", {"id": claims.user}, 1)

    async def run(self, driver: Driver, work: Any) -> None:
        await asyncio.sleep(0)
        if isinstance(work, p.SetStatus) and work.text == "boom":
            raise RuntimeError("a bug")
        self.ran.append(work)

    async def resync(self, driver: Driver) -> None:
        self.resyncs += 1

    async def detach(self, driver: Driver) -> None:
        return None


async def _until(check: Any) -> None:
    async with asyncio.timeout(5):
        while not check():
            await asyncio.sleep(0.001)


def _hub(limits: Limits | None = None) -> tuple[Driver, Recorder, SlowHandler]:
    limits = limits or Limits(secret=SECRET)
    now = asyncio.get_running_loop().time()
    session = Session(HubRules(p.JSON_CODEC, limits), limits, now)
    transport, handler = Recorder(), SlowHandler()
    driver = Driver(Drivers(0), session, handler, transport, outbox_frames=4)
    driver.opened()
    return driver, transport, handler


async def test_answers_keep_the_order_of_the_frames_behind_pending_work():
    """hello, status (ref), ping and a bad frame in one burst: ready, ack, pong, error."""
    driver, transport, _ = _hub()
    now = asyncio.get_running_loop().time()
    for frame in (
        {"op": "hello", "token": issue_token(SECRET, "ann", ttl_s=60)},
        {"op": "status", "status": "busy", "ref": 1},
        {"op": "ping", "ref": 2},
        {"op": "dance", "ref": 3},
    ):
        driver.received(json.dumps(frame), now)
    await _until(lambda: len(transport.written) == 4)
    assert [f["op"] for f in transport.frames()] == ["ready", "ack", "pong", "error"]


async def test_a_bug_in_a_handler_closes_only_that_connection_1011():
    """A handler that raises: this connection closes 1011; another one goes on."""
    driver, transport, _ = _hub()
    other, other_transport, _ = _hub()
    now = asyncio.get_running_loop().time()
    for d in (driver, other):
        d.received(json.dumps({"op": "hello", "token": issue_token(SECRET, "ann")}), now)
    driver.received(json.dumps({"op": "status", "text": "boom"}), now)
    other.received(json.dumps({"op": "status", "text": "fine", "ref": "ok"}), now)
    await _until(lambda: transport.closed is not None and len(other_transport.written) == 2)
    assert transport.closed == (1011, "internal error")
    assert other_transport.frames()[-1] == {"op": "ack", "ref": "ok"}
    assert other_transport.closed is None


async def test_a_full_outbox_resyncs_on_ws_and_closes_4100_on_pusher():
    """A paused transport fills the bounded outbox: /ws drops deltas for a resync, Pusher
    closes 4100 (the client backs off)."""
    driver, transport, handler = _hub()
    transport.paused = True
    for n in range(10):
        driver.deliver(f"delta {n}")
    assert transport.closed is None and driver.outbox.resync_pending
    transport.paused = False
    driver.resume_writing()
    await _until(lambda: handler.resyncs == 1)

    limits = Limits(secret="", rate_per_s=100, burst=1000)
    app = App("1", "key", "secret-0123456789")
    session = Session(PusherRules(app, "1.1", 120), limits, 0.0)
    ptransport = Recorder()
    pdriver = Driver(Drivers(0), session, SlowHandler(), ptransport, outbox_frames=4)
    pdriver.opened()
    await _until(lambda: len(ptransport.written) == 1)  # connection_established
    ptransport.paused = True
    for n in range(10):
        pdriver.deliver(f"event {n}")
    assert ptransport.closed is not None and ptransport.closed[0] == 4100


async def test_a_pusher_flood_is_throttled_in_order_then_closed_past_the_bound():
    """Past the burst, frames are held (reading paused) and fed again as the rate allows,
    in order; more than MAX_HELD held frames close the socket 4100."""
    limits = Limits(secret="", rate_per_s=200, burst=5)
    app = App("1", "key", "secret-0123456789")
    loop = asyncio.get_running_loop()
    session = Session(PusherRules(app, "1.1", 120), limits, loop.time())
    transport = Recorder()
    driver = Driver(Drivers(0), session, SlowHandler(), transport)
    driver.opened()
    await _until(lambda: len(transport.written) == 1)
    for n in range(20):
        ping = {"event": "pusher:ping", "data": {"n": n}}
        driver.received(json.dumps(ping), loop.time())
    assert not transport.reading, "past the burst, the socket is not read"
    await _until(lambda: len(transport.written) == 21)
    assert all(f["event"] == "pusher:pong" for f in transport.frames()[1:])
    assert transport.reading and transport.closed is None
    for _ in range(MAX_HELD + 10):
        driver.received(json.dumps({"event": "pusher:ping", "data": {}}), loop.time())
    assert transport.closed is not None and transport.closed[0] == 4100


async def test_ended_waits_for_the_transport_not_for_the_close_it_asked():
    """A drain closes a socket, then waits for its end: ``close`` only starts the closing
    handshake, ``ended`` returns once the transport is gone (at once if it already is)."""
    driver, transport, _ = _hub()
    driver.close(1012, "node restarting")
    assert transport.closed == (1012, "node restarting")
    waiter = asyncio.ensure_future(driver.ended())
    done, _ = await asyncio.wait([waiter], timeout=0.05)
    assert not done, "ended() returned before the transport closed"
    driver.gone(1012)
    await asyncio.wait_for(waiter, 5)
    await asyncio.wait_for(driver.ended(), 5)


class GatedHandler(SlowHandler):
    """A subscription's store work that waits for the test; its detach records what the
    socket's end has to leave."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.left: list[str] | None = None
        self.pending: list[str] | None = None

    async def run(self, driver: Driver, work: Any) -> None:
        await self.gate.wait()

    async def detach(self, driver: Driver) -> None:
        assert isinstance(driver.session.rules, PusherRules)
        # The node's end of a Pusher socket leaves the rules' channels.
        self.left = list(driver.session.rules.channels)
        self.pending = list(driver.session.rules.pending)


async def test_a_subscription_that_lands_after_its_socket_went_is_left_by_its_end():
    """The socket goes while its subscription's store work is in flight; the work then
    takes effect: the connection's end still knows the channel (no ghost subscriber)."""
    limits = Limits(secret="", rate_per_s=100, burst=1000)
    app = App("1", "key", "secret-0123456789")
    loop = asyncio.get_running_loop()
    session = Session(PusherRules(app, "1.1", 120), limits, loop.time())
    transport, handler = Recorder(), GatedHandler()
    driver = Driver(Drivers(0), session, handler, transport)
    driver.opened()
    await _until(lambda: len(transport.written) == 1)  # connection_established
    subscribe = {"event": "pusher:subscribe", "data": {"channel": "news"}}
    driver.received(json.dumps(subscribe), loop.time())
    driver.gone(1000)
    handler.gate.set()
    await _until(lambda: handler.left is not None)
    assert handler.left == ["news"] and handler.pending == []
