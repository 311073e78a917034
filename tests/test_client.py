"""The Python SDK (hub.clients.ws) and the pub/sub consumer (hub.clients.pubsub) against real hubs.

Every test talks to ``python -m hub serve`` processes over real websockets; the pub/sub
tests use a real redis-server. The state-map rules are also checked on their own, with no
socket. Waits are deadlines on conditions, never fixed sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
from redis.asyncio import Redis

from hub.clients.pubsub import PubSubConsumer, RecoveryRefused, decode_message
from hub.clients.ws import (
    Client,
    Deactivated,
    DisconnectedByAdmin,
    FrameError,
    HubUnreachable,
    NotAuthenticated,
    Subscription,
    closed_error,
    connect,
    scope_of,
    ws_url,
)
from hub.model.presence import Entry
from tests.support import eventually
from tests.support.hubproc import (
    ADMIN_HEADERS,
    TEST_ADMIN_KEY,
    HubProcess,
    hub_fixture,
    start_hub,
    user_token,
)
from tests.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 15.0

hub = hub_fixture({"HUB_OFFLINE_GRACE_S": "0.2"})


def uid(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:6]}"


def entry(user: str, status: str, at: int, **extra: Any) -> Entry:
    e: dict[str, Any] = {"id": user, "username": user, "name": user, "status": status,
                         "text": "", "at": at, **extra}  # fmt: skip
    return e  # type: ignore[return-value]


async def next_matching(changes: AsyncIterator[Entry], user: str, status: str) -> Entry:
    """The next entry of ``user`` with ``status`` from an SDK iterator, within the deadline."""

    async def find() -> Entry:
        async for e in changes:
            if e["id"] == user and e["status"] == status:
                return e
        raise AssertionError(f"the iterator ended before {user} was {status}")

    return await asyncio.wait_for(find(), TIMEOUT_S)


# -- the state map, no socket -----------------------------------------------------------------


def test_delta_keeps_the_larger_at() -> None:
    """A delta older than what the client holds changes nothing; a newer one replaces it."""
    sub = Subscription(scope_of("all"))
    sub.apply({"op": "snapshot", "full": True, "cursor": 10, "users": [entry("a", "online", 5)]})
    assert sub.apply({"op": "delta", "cursor": 11, "users": [entry("a", "away", 4)]}) == []
    assert sub.apply({"op": "delta", "cursor": 12, "users": [entry("a", "busy", 9)]})
    assert sub.state()["a"]["status"] == "busy" and sub.cursor == 12


def test_full_snapshot_makes_missing_users_offline() -> None:
    """Whoever a full snapshot leaves out is offline, stamped with its cursor; stale copies lose."""
    sub = Subscription(scope_of("all"))
    sub.apply({"op": "snapshot", "full": True, "cursor": 10,
               "users": [entry("a", "online", 5), entry("b", "away", 6)]})  # fmt: skip
    changed = sub.apply({"op": "snapshot", "full": True, "cursor": 20,
                         "users": [entry("a", "online", 5)]})  # fmt: skip
    assert [(e["id"], e["status"], e["at"]) for e in changed] == [("b", "offline", 20)]
    # A late copy of b's old state (it was already in flight) must not bring b back.
    assert sub.apply({"op": "delta", "cursor": 21, "users": [entry("b", "away", 6)]}) == []
    assert sub.apply({"op": "delta", "cursor": 22, "users": [entry("b", "online", 21)]})
    assert sub.state()["b"]["status"] == "online"


def test_delta_snapshot_merges_without_removing() -> None:
    """A resumed subscription's snapshot (full: false) merges; nobody is dropped."""
    sub = Subscription(scope_of("all"))
    sub.apply({"op": "snapshot", "full": True, "cursor": 10, "users": [entry("a", "online", 5)]})
    sub.apply({"op": "snapshot", "full": False, "cursor": 30, "users": [entry("b", "busy", 25)]})
    assert {u: e["status"] for u, e in sub.state().items()} == {"a": "online", "b": "busy"}
    assert (sub.full_snapshots, sub.delta_snapshots) == (1, 1)


def test_room_member_who_left_leaves_the_state() -> None:
    """member: false (same at, presence unchanged) hides the user; rejoining shows it again."""
    sub = Subscription(scope_of("room:r1"))
    sub.apply({"op": "snapshot", "full": True, "cursor": 10,
               "users": [entry("a", "online", 5, member=True)]})  # fmt: skip
    left = entry("a", "online", 5, member=False)
    assert sub.apply({"op": "delta", "cursor": 11, "users": [left]})
    assert "a" not in sub.state()
    sub.apply({"op": "delta", "cursor": 12, "users": [entry("a", "online", 5, member=True)]})
    assert "a" in sub.state()


def test_scopes_urls_and_close_codes() -> None:
    """Scopes parse from strings, base URLs become /ws URLs, final codes map to exceptions."""
    assert scope_of("all").wire() == {"all": True}
    assert scope_of("users:a,b").wire() == {"users": ["a", "b"]}
    assert scope_of({"room": "x"}).wire() == {"room": "x"}
    with pytest.raises(ValueError, match="scope must be"):
        scope_of("everyone")
    assert ws_url("http://h:8000") == "ws://h:8000/ws"
    assert ws_url("https://h/base/") == "wss://h/base/ws"
    assert ws_url("ws://h:1/ws") == "ws://h:1/ws"
    assert isinstance(closed_error(4001, "x"), NotAuthenticated)
    assert isinstance(closed_error(4003, "x"), Deactivated)
    assert isinstance(closed_error(4004, "x"), DisconnectedByAdmin)
    assert "disconnected by an admin (close code 4004): kicked" in str(closed_error(4004, "kicked"))


# -- against a hub ----------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["json", "msgpack"])
async def test_set_status_is_acked_and_seen_by_a_subscriber(hub: HubProcess, codec: str) -> None:
    """set_status returns after the ack; another client's changes() and state() show it."""
    alice, bob = uid("alice"), uid("bob")
    async with connect(hub.url, user_token(alice, name="Alice"), codec=codec) as a:  # type: ignore[arg-type]
        state = await a.subscribe("all")
        assert state[alice]["status"] == "online" and a.user["id"] == alice
        changes = a.changes("all", initial=False)
        async with connect(hub.url, user_token(bob), codec=codec) as b:  # type: ignore[arg-type]
            await b.set_status("busy", "in a meeting")
            seen = await next_matching(changes, bob, "busy")
            assert seen["text"] == "in a meeting"
            assert a.state()[bob]["status"] == "busy"
            # The REST view agrees the moment set_status returned.
            response = httpx.get(f"{hub.url}/api/v1/users.getPresence",
                                 params={"userId": bob}, headers=ADMIN_HEADERS)  # fmt: skip
            assert response.json()["presence"] == "busy"
        # Bob's last connection closed: offline once the grace ends.
        await next_matching(changes, bob, "offline")
        await changes.aclose()


async def test_users_scope_and_initial_state(hub: HubProcess) -> None:
    """A users scope only holds those users; changes() starts with the current state."""
    me, friend, stranger = uid("me"), uid("friend"), uid("stranger")
    async with connect(hub.url, user_token(friend)), connect(hub.url, user_token(stranger)), \
            connect(hub.url, user_token(me)) as c:  # fmt: skip
        scope = f"users:{friend},{me}"
        state = await c.subscribe(scope)
        assert set(state) == {friend, me}
        first = [e["id"] async for e in _take(c.changes(scope), 2)]
        assert sorted(first) == sorted([friend, me])


async def test_room_scope_follows_members(hub: HubProcess) -> None:
    """A room scope holds its members; one who leaves comes once with member: false and
    leaves state()."""
    room, alice, bob = uid("room"), uid("alice"), uid("bob")
    async with connect(hub.url, user_token(alice)) as a, connect(hub.url, user_token(bob)) as b:
        await a.join(room)
        await b.join(room)
        assert set(await a.subscribe(f"room:{room}")) == {alice, bob}
        changes = a.changes(f"room:{room}", initial=False)
        await b.leave(room)
        left = await asyncio.wait_for(anext(changes), TIMEOUT_S)
        assert (left["id"], left.get("member")) == (bob, False)
        assert set(a.state(f"room:{room}")) == {alice}
        await changes.aclose()


async def _take(changes: AsyncIterator[Entry], n: int) -> AsyncIterator[Entry]:
    for _ in range(n):
        yield await asyncio.wait_for(anext(changes), TIMEOUT_S)
    await changes.aclose()


async def test_error_frame_raises_frame_error(hub: HubProcess) -> None:
    """A frame the hub refuses raises FrameError with the hub's code; the session stays up."""
    async with connect(hub.url, user_token(uid("u"))) as c:
        with pytest.raises(FrameError) as caught:
            await c.join("r" * 200)
        assert caught.value.code == "bad_field" and "room" in caught.value.message
        assert await c.ping() >= 0
        with pytest.raises(ValueError, match="at most 120"):
            await c.set_status(text="x" * 121)  # refused before it is sent


async def test_bad_or_expired_token_raises_not_authenticated(hub: HubProcess) -> None:
    """4001 is final: a bad token fails connect(); an expiring one ends the session."""
    with pytest.raises(NotAuthenticated, match="4001"):
        async with connect(hub.url, "not-a-token"):
            pass
    user = uid("short")
    async with connect(hub.url, user_token(user, ttl_s=1)) as c:
        await c.subscribe("all")
        with pytest.raises(NotAuthenticated, match="token expired"):
            await asyncio.wait_for(c.wait_closed(), TIMEOUT_S)
        with pytest.raises(NotAuthenticated):
            await c.set_status("busy")
        assert c.reconnects == 0


async def test_admin_disconnect_and_deactivate_are_final(hub: HubProcess) -> None:
    """4004 (an admin disconnected the user) and 4003 (deactivated) end the client for good:
    iterators raise, nothing reconnects, and a deactivated user cannot connect again."""
    kicked, banned = uid("kicked"), uid("banned")
    async with connect(hub.url, user_token(kicked)) as c:
        changes = c.changes("all")
        await c.subscribe("all")
        response = httpx.get(f"{hub.url}/org/app/users/{kicked}/disconnect",
                             headers=ADMIN_HEADERS)  # fmt: skip
        assert response.status_code == 200, response.text
        with pytest.raises(DisconnectedByAdmin, match="4004"):
            async for _ in changes:
                pass
        assert c.reconnects == 0 and not c.connected
    async with connect(hub.url, user_token(banned)) as c:
        response = httpx.post(f"{hub.url}/org/app/users/{banned}/deactivate",
                              headers=ADMIN_HEADERS)  # fmt: skip
        assert response.status_code == 200, response.text
        with pytest.raises(Deactivated, match="4003"):
            await asyncio.wait_for(c.wait_closed(), TIMEOUT_S)
    with pytest.raises(Deactivated):
        await connect(hub.url, user_token(banned)).start()


async def test_unreachable_hub_fails_fast(tmp_path: Path) -> None:
    """The first connection is not retried: a wrong URL raises HubUnreachable."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(HubUnreachable, match="cannot connect"):
            await Client(f"http://127.0.0.1:{port}", "t").start()


async def test_reconnects_and_resumes_after_a_rate_limit_close(hub: HubProcess) -> None:
    """Closed with 4008, the client reconnects, resubscribes by cursor (a delta snapshot),
    and ends up with what changed meanwhile."""
    me, other = uid("flooder"), uid("other")
    # One store clock (memory): resuming exactly from the cursor is safe, and keeps the
    # resumption a delta even on a hub younger than the default slack.
    async with connect(hub.url, user_token(other)) as o, \
            connect(hub.url, user_token(me), resume_slack_ms=0) as c:  # fmt: skip
        await c.activity("away")
        await c.subscribe("all")
        sub = c.subscription("all")
        assert sub is not None and sub.delta_snapshots == 0
        # Far over the rate limit (50/s, bursts of 100): the hub closes with 4008.
        await asyncio.gather(*(c.ping() for _ in range(400)), return_exceptions=True)
        await o.set_status("busy", "while you were away")
        await eventually(_async(lambda: c.reconnects == 1 and c.connected))
        assert c.last_close is not None and c.last_close[0] == 4008
        await eventually(_async(lambda: c.state().get(other, {}).get("status") == "busy"))
        assert sub.delta_snapshots >= 1, "the resubscription should resume by cursor"
        # The idle state was restored on the new connection: still away, not online.
        await eventually(_async(lambda: c.state()[me]["status"] == "away"))


def _async(check: Any) -> Any:
    async def run() -> Any:
        return check()

    return run


# -- a hub restart, on Redis (the state survives the node) ------------------------------------


@pytest.fixture
def redis_env(redis_url: str, key_prefix: str) -> dict[str, str]:
    return {"HUB_STORE": redis_url, "HUB_KEY_PREFIX": key_prefix,
            "HUB_CHANNEL": f"{key_prefix}presence", "HUB_OFFLINE_GRACE_S": "0.2"}  # fmt: skip


@pytest.mark.redis
async def test_node_restart_1012_reconnects_and_resumes(
    redis_env: dict[str, str], tmp_path: Path
) -> None:
    """SIGTERM closes with 1012; the client reconnects when the node is back and receives,
    by cursor, the change made on another node while it was away."""
    first = start_hub(tmp_path, redis_env, name="first")
    second = start_hub(tmp_path, redis_env, name="second")
    watcher, mover = uid("watcher"), uid("mover")
    try:
        async with connect(second.url, user_token(mover)) as m:
            client = Client(first.url, user_token(watcher), backoff_max_s=0.5,
                            resume_slack_ms=0)  # one Redis, one clock  # fmt: skip
            async with client as c:
                await c.subscribe("all")
                await eventually(_async(lambda: mover in c.state()))
                first.stop()  # drains: 1012 to every socket
                await eventually(_async(lambda: not c.connected))
                assert c.last_close is not None and c.last_close[0] == 1012
                await m.set_status("busy", "while the node restarted")
                first.start()  # same port
                await eventually(_async(lambda: c.reconnects == 1 and c.connected), TIMEOUT_S)
                await eventually(_async(lambda: c.state()[mover]["status"] == "busy"))
                sub = c.subscription("all")
                assert sub is not None and sub.delta_snapshots >= 1
    finally:
        first.stop()
        second.stop()


# -- the SDK example ----------------------------------------------------------------------------


async def test_sdk_example_runs_against_a_live_hub(hub: HubProcess) -> None:
    """examples/sdk_watch.py prints who is online, then a change made by someone else."""
    me, other = uid("example"), uid("colleague")
    async with connect(hub.url, user_token(other)) as o:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "examples" / "sdk_watch.py"), hub.url,
            user_token(me), "1", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            assert process.stdout is not None
            lines: list[str] = []
            while not all(any(u in line for line in lines) for u in (me, other)):
                raw = await asyncio.wait_for(process.stdout.readline(), TIMEOUT_S)
                assert raw, f"the example ended early: {lines}"
                lines.append(raw.decode())
            assert next(line for line in lines if other in line).split()[:3] == [
                "now",
                other,
                "online",
            ]
            mine = next(line for line in lines if me in line)
            assert "watching presence" in mine
            await o.set_status("away", "coffee")
            out, err = await asyncio.wait_for(process.communicate(), TIMEOUT_S)
            assert process.returncode == 0, err.decode()
            change = out.decode().strip().splitlines()[-1].split()
            assert change[:3] == ["change", other, "away"] and change[-1] == "coffee"
        finally:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


# -- the pub/sub consumer -----------------------------------------------------------------------


class TcpRelay:
    """A real TCP relay in front of Redis that can refuse new connections: it keeps the
    consumer disconnected for as long as a test needs a change to fall into the gap."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.refusing = False
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> TcpRelay:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest.fixture
def channel(key_prefix: str) -> str:
    return f"{key_prefix}presence"


@pytest.fixture
def redis_hub(
    redis_url: str, key_prefix: str, channel: str, tmp_path: Path
) -> Iterator[HubProcess]:
    env = {
        "HUB_STORE": redis_url,
        "HUB_KEY_PREFIX": key_prefix,
        "HUB_CHANNEL": channel,
        "HUB_OFFLINE_GRACE_S": "0.2",
    }
    process = start_hub(tmp_path, env)
    try:
        yield process
    finally:
        process.stop()


def test_decode_message() -> None:
    """A v1 message decodes to its cursor and entries; anything else is refused."""
    data = msgpack.packb({"v": 1, "cursor": 7, "users": [{"id": "a", "status": "away", "at": 6}]})
    assert decode_message(data) == (7, [{"id": "a", "status": "away", "at": 6}])
    assert decode_message(msgpack.packb({"v": 1, "cursor": 7, "users": {}})) == (7, [])
    for bad in (b"\xc1", msgpack.packb({"v": 2, "cursor": 1, "users": []}), msgpack.packb([1])):
        with pytest.raises(ValueError):
            decode_message(bad)


@pytest.mark.redis
async def test_pubsub_consumer_recovers_a_gap_through_rest(
    redis_hub: HubProcess, redis_server: RedisServer, redis_url: str, channel: str
) -> None:
    """The consumer follows the channel; after CLIENT KILL TYPE pubsub, a change made while
    it was cut off comes back through GET users.presence?from=<cursor>."""
    alice = uid("alice")
    relay = await TcpRelay(redis_server.port).start()
    plain = Redis.from_url(redis_url)
    watch = plain.pubsub()
    try:
        consumer = PubSubConsumer(relay.url, channel=channel, api_url=redis_hub.url,
                                  api_key=TEST_ADMIN_KEY, backoff_max_s=0.2)  # fmt: skip
        async with consumer, connect(redis_hub.url, user_token(alice)) as a:
            assert consumer.recoveries == 1  # the first load
            await eventually(_async(lambda: alice in consumer.state))
            assert consumer.state[alice]["status"] == "online"
            assert consumer.messages >= 1  # that change came by pub/sub
            messages = consumer.messages

            relay.refusing = True
            killed = redis_server.command("CLIENT", "KILL", "TYPE", "pubsub")
            assert killed.startswith(b":") and int(killed[1:]) >= 1
            await eventually(_async(lambda: not consumer._subscribed.is_set()))
            await watch.subscribe(channel)  # after the kill, which ends every subscriber
            await a.set_status("busy", "during the gap")
            # The hub published it (a plain subscriber sees it) while the consumer was away.
            await _published(watch, alice, "busy")
            assert consumer.state[alice]["status"] == "online"

            relay.refusing = False
            await eventually(_async(lambda: consumer.gaps == 1 and consumer.recoveries == 2),
                             TIMEOUT_S)  # fmt: skip
            assert consumer.state[alice]["status"] == "busy"
            assert consumer.state[alice]["text"] == "during the gap"
            assert consumer.messages == messages, "the busy state must have come from REST"

            # Back on the channel: later changes flow by pub/sub again.
            await a.set_status("away")
            await eventually(_async(lambda: consumer.state[alice]["status"] == "away"))
            assert consumer.messages > messages
    finally:
        await watch.aclose()  # type: ignore[no-untyped-call]
        await plain.aclose()
        await relay.close()


async def _published(watch: Any, user: str, status: str) -> None:
    async def seen() -> bool:
        message = await watch.get_message(timeout=0.5)
        if message is None or message["type"] != "message":
            return False
        _, entries = decode_message(message["data"])
        return any(e["id"] == user and e["status"] == status for e in entries)

    await eventually(seen, TIMEOUT_S)


@pytest.mark.redis
async def test_pubsub_consumer_refuses_bad_credentials(
    redis_hub: HubProcess, redis_url: str, channel: str
) -> None:
    """A wrong api_key is a configuration error: start() raises instead of retrying forever."""
    consumer = PubSubConsumer(redis_url, channel=channel, api_url=redis_hub.url, api_key="wrong")
    with pytest.raises(RecoveryRefused, match="401"):
        await asyncio.wait_for(consumer.start(), TIMEOUT_S)
    await consumer.close()


@pytest.mark.redis
async def test_pubsub_example_runs(redis_hub: HubProcess, redis_url: str, channel: str) -> None:
    """examples/pubsub_consumer.py prints who is online, then each change."""
    alice = uid("alice")
    async with connect(redis_hub.url, user_token(alice)) as a:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "examples" / "pubsub_consumer.py"), redis_url,
            redis_hub.url, TEST_ADMIN_KEY, channel, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            assert process.stdout is not None

            async def line_with(*words: str) -> str:
                while True:
                    assert process.stdout is not None
                    raw = await asyncio.wait_for(process.stdout.readline(), TIMEOUT_S)
                    assert raw, "the example ended early"
                    if all(w in raw.decode().split() for w in words):
                        return raw.decode()

            await line_with(alice, "online")
            await a.set_status("busy", "example")
            assert (await line_with(alice, "busy")).split() == [alice, "busy", "example"]
        finally:
            process.kill()
            await process.wait()


async def test_set_status_until_and_last_seen(hub: HubProcess) -> None:
    """set_status(until=...) expires back to online with no text; last_seen="nobody"
    keeps lastSeen off the user's offline entry."""
    watcher, bob = uid("watcher"), uid("bob")
    async with connect(hub.url, user_token(watcher)) as a:
        await a.subscribe("all")
        changes = a.changes("all", initial=False)
        async with connect(hub.url, user_token(bob)) as b:
            until = time.time_ns() // 1_000_000 + 1_500  # the memory store's clock
            await b.set_status("busy", "in a meeting", until=until, last_seen="nobody")
            busy = await next_matching(changes, bob, "busy")
            assert busy["until"] == until
            back = await next_matching(changes, bob, "online")
            assert (back["text"], "until" in back) == ("", False)
            with pytest.raises(ValueError, match="needs a status"):
                await b.set_status(until=until)
        assert "lastSeen" not in await next_matching(changes, bob, "offline")
        await changes.aclose()
