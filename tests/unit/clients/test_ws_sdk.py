"""The Python SDK (hub.clients.ws) against a hub served in process, over real websockets;
the state-map rules and the pub/sub message format on their own, with no socket."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest

from hub.clients.pubsub import decode_message
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
    user_token,
)
from tests.support.inproc import InProcessHub, inproc_hub_fixture

TIMEOUT_S = 15.0


hub = inproc_hub_fixture({"HUB_OFFLINE_GRACE_S": "0.2"})


def uid(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:6]}"


def entry(user: str, status: str, at: int, **extra: Any) -> Entry:
    e: dict[str, Any] = {"id": user, "username": user, "name": user, "status": status,
                         "text": "", "at": at, **extra}  # fmt: skip
    return e  # type: ignore[return-value]


async def listening(changes: AsyncIterator[Entry]) -> AsyncIterator[Entry]:
    """``changes`` with its listener registered now: an SDK iterator registers on its first
    step, so one first stepped after an action could miss the change it waits for (the
    delta can arrive before the action's ack is handled)."""
    first = asyncio.ensure_future(anext(changes))
    await asyncio.sleep(0)  # one turn of the loop: the first step runs up to its wait

    async def rest() -> AsyncIterator[Entry]:
        try:
            yield await first
            async for entry in changes:
                yield entry
        finally:
            first.cancel()
            await changes.aclose()

    return rest()


async def next_matching(changes: AsyncIterator[Entry], user: str, status: str) -> Entry:
    """The next entry of ``user`` with ``status`` from an SDK iterator, within the deadline."""

    async def find() -> Entry:
        async for e in changes:
            if e["id"] == user and e["status"] == status:
                return e
        raise AssertionError(f"the iterator ended before {user} was {status}")

    return await asyncio.wait_for(find(), TIMEOUT_S)


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


@pytest.mark.parametrize("codec", ["json", "msgpack"])
async def test_set_status_is_acked_and_seen_by_a_subscriber(hub: InProcessHub, codec: str) -> None:
    """set_status returns after the ack; another client's changes() and state() show it."""
    alice, bob = uid("alice"), uid("bob")
    async with connect(hub.url, user_token(alice, name="Alice"), codec=codec) as a:  # type: ignore[arg-type]
        state = await a.subscribe("all")
        assert state[alice]["status"] == "online" and a.user["id"] == alice
        changes = await listening(a.changes("all", initial=False))
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


async def test_users_scope_and_initial_state(hub: InProcessHub) -> None:
    """A users scope only holds those users; changes() starts with the current state."""
    me, friend, stranger = uid("me"), uid("friend"), uid("stranger")
    async with connect(hub.url, user_token(friend)), connect(hub.url, user_token(stranger)), \
            connect(hub.url, user_token(me)) as c:  # fmt: skip
        scope = f"users:{friend},{me}"
        state = await c.subscribe(scope)
        assert set(state) == {friend, me}
        first = [e["id"] async for e in _take(c.changes(scope), 2)]
        assert sorted(first) == sorted([friend, me])


async def test_room_scope_follows_members(hub: InProcessHub) -> None:
    """A room scope holds its members; one who leaves comes once with member: false and
    leaves state()."""
    room, alice, bob = uid("room"), uid("alice"), uid("bob")
    async with connect(hub.url, user_token(alice)) as a, connect(hub.url, user_token(bob)) as b:
        await a.join(room)
        await b.join(room)
        assert set(await a.subscribe(f"room:{room}")) == {alice, bob}
        changes = await listening(a.changes(f"room:{room}", initial=False))
        await b.leave(room)
        left = await asyncio.wait_for(anext(changes), TIMEOUT_S)
        assert (left["id"], left.get("member")) == (bob, False)
        assert set(a.state(f"room:{room}")) == {alice}
        await changes.aclose()


async def _take(changes: AsyncIterator[Entry], n: int) -> AsyncIterator[Entry]:
    for _ in range(n):
        yield await asyncio.wait_for(anext(changes), TIMEOUT_S)
    await changes.aclose()


async def test_error_frame_raises_frame_error(hub: InProcessHub) -> None:
    """A frame the hub refuses raises FrameError with the hub's code; the session stays up."""
    async with connect(hub.url, user_token(uid("u"))) as c:
        with pytest.raises(FrameError) as caught:
            await c.join("r" * 200)
        assert caught.value.code == "bad_field" and "room" in caught.value.message
        assert await c.ping() >= 0
        with pytest.raises(ValueError, match="at most 120"):
            await c.set_status(text="x" * 121)  # refused before it is sent


async def test_bad_or_expired_token_raises_not_authenticated(hub: InProcessHub) -> None:
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


async def test_admin_disconnect_and_deactivate_are_final(hub: InProcessHub) -> None:
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


async def test_reconnects_and_resumes_after_a_rate_limit_close(hub: InProcessHub) -> None:
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


def test_decode_message() -> None:
    """A v1 message decodes to its cursor and entries; anything else is refused."""
    data = msgpack.packb({"v": 1, "cursor": 7, "users": [{"id": "a", "status": "away", "at": 6}]})
    assert decode_message(data) == (7, [{"id": "a", "status": "away", "at": 6}])
    assert decode_message(msgpack.packb({"v": 1, "cursor": 7, "users": {}})) == (7, [])
    for bad in (b"\xc1", msgpack.packb({"v": 2, "cursor": 1, "users": []}), msgpack.packb([1])):
        with pytest.raises(ValueError):
            decode_message(bad)


async def test_set_status_until_and_last_seen(hub: InProcessHub) -> None:
    """set_status(until=...) expires back to online with no text; last_seen="nobody"
    keeps lastSeen off the user's offline entry."""
    watcher, bob = uid("watcher"), uid("bob")
    async with connect(hub.url, user_token(watcher)) as a:
        await a.subscribe("all")
        changes = await listening(a.changes("all", initial=False))
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
