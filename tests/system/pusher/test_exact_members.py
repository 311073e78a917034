"""Pusher member events under concurrency, floods, fragments and store stalls.

Two hubs on one Redis (and one on memory) with plain websocket clients, so each frame is
seen as sent: a client's ``subscription_succeeded`` and the member events after it must be
one consistent sequence (no member twice, none missed); a flooding socket must not slow
anybody else down; fragmented messages are reassembled within the frame limit; and a Redis
that stalls long enough for the hub's calls to time out must not leave a presence channel
and its hub room apart.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from hub.model.pusher_auth import channel_auth
from tests.support.hubproc import HubProcess, running_hubs, start_hub, user_token
from tests.support.pusher import APP_KEY, APP_SECRET, APPS_ENV, sdk
from tests.support.redis_server import RedisServer, start_server

TIMEOUT_S = 15.0
TRIALS = 30


class Member:
    """A Pusher client that keeps the member list of one presence channel, and counts every
    event that would make pusher-js's list wrong."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.socket_id = ""
        self.members: set[str] = set()
        self.duplicates: list[str] = []
        self.unknown_removals: list[str] = []
        self.succeeded = asyncio.Event()
        self.closed: int | None = None
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, port: int) -> Member:
        ws = await connect(f"ws://127.0.0.1:{port}/app/{APP_KEY}?protocol=7&client=js")
        m = cls(ws)
        hello = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S))
        assert hello["event"] == "pusher:connection_established"
        m.socket_id = json.loads(hello["data"])["socket_id"]
        m._reader = asyncio.create_task(m._read())
        return m

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                frame = json.loads(raw)
                event = frame["event"]
                data = frame.get("data")
                if event == "pusher_internal:subscription_succeeded":
                    self.members = set(json.loads(data)["presence"]["ids"])
                    self.succeeded.set()
                elif event == "pusher_internal:member_added":
                    user = json.loads(data)["user_id"]
                    if user in self.members:
                        self.duplicates.append(user)
                    self.members.add(user)
                elif event == "pusher_internal:member_removed":
                    user = json.loads(data)["user_id"]
                    if user not in self.members:
                        self.unknown_removals.append(user)
                    self.members.discard(user)
        except ConnectionClosed:
            pass
        self.closed = self.ws.close_code

    async def join(self, channel: str, user: str) -> None:
        data = json.dumps({"user_id": user, "user_info": {"name": user}})
        auth = channel_auth(APP_KEY, APP_SECRET, self.socket_id, channel, data)
        frame = {"channel": channel, "auth": auth, "channel_data": data}
        await self.ws.send(json.dumps({"event": "pusher:subscribe", "data": frame}))

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            await self._reader


async def _until(check: Any, what: str, timeout: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not true within {timeout} s: {what}"
        await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
def two_hubs(
    redis_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[HubProcess, HubProcess]]:
    prefix = f"t{uuid.uuid4().hex[:10]}:"
    env = {
        "HUB_STORE": redis_server.url,
        "HUB_KEY_PREFIX": prefix,
        "HUB_CHANNEL": f"{prefix}presence",
        "HUB_PUSHER_APPS": APPS_ENV,
    }
    with running_hubs(tmp_path_factory.mktemp("exact"), env, 2) as hubs:
        yield hubs[0], hubs[1]


@pytest.mark.redis
async def test_three_concurrent_joins_over_two_hubs_never_duplicate_or_miss_a_member(
    two_hubs: tuple[HubProcess, HubProcess],
) -> None:
    """30 trials of 3 sockets (two hubs) joining one channel at the same instant: every
    socket ends with the 3 members, with no member told twice and no removal of a stranger."""
    ports = [two_hubs[0].port, two_hubs[1].port, two_hubs[0].port]
    for trial in range(TRIALS):
        channel = f"presence-race-{uuid.uuid4().hex[:8]}"
        clients = [await Member.open(port) for port in ports]
        users = [f"u{trial}-{n}" for n in range(len(clients))]
        await asyncio.gather(*(c.join(channel, u) for c, u in zip(clients, users, strict=True)))
        try:
            want, trial_clients = set(users), list(clients)
            await _until(
                lambda: all(c.members == want for c in trial_clients),  # noqa: B023
                f"trial {trial}: every socket knows {users}",
            )
            for c in clients:
                assert c.duplicates == [] and c.unknown_removals == [], (trial, c.members)
        finally:
            for c in clients:
                await c.close()


@pytest.fixture(scope="module")
def memory_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    hub = start_hub(tmp_path_factory.mktemp("flood"), {"HUB_PUSHER_APPS": APPS_ENV})
    try:
        yield hub
    finally:
        hub.stop()


async def test_a_flooding_socket_is_throttled_then_closed_while_others_get_their_events(
    memory_hub: HubProcess,
) -> None:
    """One socket sends 20,000 frames as fast as it can; another's events, triggered through
    the HTTP API meanwhile, keep arriving, and the flooder ends closed (4100: back off)."""
    port = memory_hub.port
    watcher = await connect(f"ws://127.0.0.1:{port}/app/{APP_KEY}?protocol=7")
    await asyncio.wait_for(watcher.recv(), TIMEOUT_S)
    channel = f"news-{uuid.uuid4().hex[:6]}"
    await watcher.send(json.dumps({"event": "pusher:subscribe", "data": {"channel": channel}}))
    assert "succeeded" in json.loads(await asyncio.wait_for(watcher.recv(), TIMEOUT_S))["event"]
    flooder = await connect(f"ws://127.0.0.1:{port}/app/{APP_KEY}?protocol=7")
    await asyncio.wait_for(flooder.recv(), TIMEOUT_S)
    ping = json.dumps({"event": "pusher:ping", "data": {}})

    async def flood() -> None:
        try:
            for _ in range(20_000):
                await flooder.send(ping)
        except ConnectionClosed:
            pass

    flooding = asyncio.create_task(flood())
    client = sdk(port)
    for n in range(5):
        sent = time.monotonic()
        await asyncio.to_thread(client.trigger, channel, "tick", {"n": n})
        frame = json.loads(await asyncio.wait_for(watcher.recv(), TIMEOUT_S))
        assert frame["event"] == "tick" and json.loads(frame["data"]) == {"n": n}
        assert time.monotonic() - sent < 5.0, "the other client's event was held up"
    await flooding
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(flooder.recv(), TIMEOUT_S)
    assert flooder.close_code == 4100
    await watcher.close()


async def test_fragmented_messages_are_reassembled_on_both_wires(memory_hub: HubProcess) -> None:
    """A message in 3 fragments is one frame to the hub (on /ws and on Pusher); 70 KB in 10
    fragments is over the 64 KB limit and closes 1009."""
    port = memory_hub.port
    async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
        hello = json.dumps({"op": "hello", "token": user_token(f"frag-{uuid.uuid4().hex[:6]}")})
        third = len(hello) // 3
        await ws.send([hello[:third], hello[third : 2 * third], hello[2 * third :]])
        assert json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S))["op"] == "ready"
        await ws.send(["x" * 7000] * 10)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT_S)
        assert ws.close_code == 1009
    async with connect(f"ws://127.0.0.1:{port}/app/{APP_KEY}?protocol=7") as ps:
        await asyncio.wait_for(ps.recv(), TIMEOUT_S)
        sub = json.dumps({"event": "pusher:subscribe", "data": {"channel": "frag-news"}})
        await ps.send([sub[:10], sub[10:20], sub[20:]])
        frame = json.loads(await asyncio.wait_for(ps.recv(), TIMEOUT_S))
        assert frame["event"] == "pusher_internal:subscription_succeeded"
        await ps.send(["y" * 7000] * 10)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ps.recv(), TIMEOUT_S)
        assert ps.close_code == 1009


@pytest.fixture
def stalled_hub(tmp_path: Path) -> Iterator[tuple[HubProcess, RedisServer]]:
    """A hub on a Redis of its own (the test pauses it)."""
    redis_server = start_server()
    prefix = f"t{uuid.uuid4().hex[:10]}:"
    env = {
        "HUB_STORE": redis_server.url,
        "HUB_KEY_PREFIX": prefix,
        "HUB_CHANNEL": f"{prefix}presence",
        "HUB_PUSHER_APPS": APPS_ENV,
        "HUB_OFFLINE_GRACE_S": "0",
    }
    hub = start_hub(tmp_path, env)
    try:
        yield hub, redis_server
    finally:
        hub.stop()
        redis_server.cleanup()


@pytest.mark.redis
async def test_a_store_stall_under_load_leaves_no_channel_and_room_apart(
    stalled_hub: tuple[HubProcess, RedisServer],
) -> None:
    """Redis paused (CLIENT PAUSE) for longer than the hub's timeout while 30 sockets join a
    presence channel: joins that fail are refused, and once Redis is back the hub room holds
    exactly the channel's members."""
    hub, redis = stalled_hub
    channel = f"presence-stall-{uuid.uuid4().hex[:6]}"
    clients = [await Member.open(hub.port) for _ in range(30)]
    users = [f"s{n}" for n in range(len(clients))]
    await asyncio.gather(*(c.join(channel, u) for c, u in zip(clients[:10], users, strict=False)))
    await _until(lambda: all(c.succeeded.is_set() for c in clients[:10]), "the first 10 joined")
    assert redis.command("CLIENT", "PAUSE", "3000", "ALL").startswith(b"+OK")
    await asyncio.gather(
        *(c.join(channel, u) for c, u in zip(clients[10:], users[10:], strict=True))
    )
    async with httpx.AsyncClient(timeout=10) as http:
        rest = f"http://127.0.0.1:{hub.port}"

        async def channel_members() -> set[str]:
            response = await asyncio.to_thread(sdk(hub.port).users_info, channel)
            return {u["id"] for u in response["users"]}

        async def room_members() -> set[str]:
            async with connect(f"ws://127.0.0.1:{hub.port}/ws") as ws:
                await ws.send(json.dumps({"op": "hello", "token": user_token("stall-watch")}))
                await asyncio.wait_for(ws.recv(), TIMEOUT_S)
                await ws.send(json.dumps({"op": "sub", "room": channel}))
                snap = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S))
                assert snap["op"] == "snapshot", snap
                return {u["id"] for u in snap["users"] if u.get("member")}

        deadline = time.monotonic() + 30
        while True:
            await asyncio.sleep(0.2)
            if (await http.get(f"{rest}/readyz")).status_code != 200:
                continue
            try:
                in_channel, in_room = await channel_members(), await room_members()
            except Exception:
                if time.monotonic() > deadline:
                    raise
                continue
            if in_channel == in_room or time.monotonic() > deadline:
                break
        assert in_channel == in_room
        assert set(users[:10]) <= in_channel
    for c in clients:
        await c.close()
