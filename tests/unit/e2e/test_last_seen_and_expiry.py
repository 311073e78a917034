"""Last seen and status expiry against a real hub process (memory store), over websockets:
offline entries carry ``lastSeen`` unless hidden, a status with ``until`` comes back to
automatic as an ordinary delta within a second of its time."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support.hubproc import rc_headers, user_token
from tests.support.inproc import InProcessHub, inproc_hub_fixture
from tests.support.wsclient import WsClient, connect_user

hub = inproc_hub_fixture({"HUB_OFFLINE_GRACE_S": "0"})


def uid(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


def clock_ms() -> int:
    """The memory store's clock: this machine's wall clock in ms."""
    return time.time_ns() // 1_000_000


@pytest.fixture
async def watcher(hub: InProcessHub) -> AsyncIterator[WsClient]:
    client = await connect_user(hub.ws_url, user_token(uid("watcher")), subscribe=True)
    try:
        yield client
    finally:
        await client.close()


async def test_status_with_until_expires_to_online_as_a_delta_within_a_second(hub, watcher):
    """Entries carry ``until`` while the status has it; at that time the status returns
    to online and the text clears, stamped within a second of ``until``, as a delta."""
    user = uid("busy")
    begin = watcher.mark()
    async with await connect_user(hub.ws_url, user_token(user)) as client:
        await watcher.wait_status(user, "online", after=begin)  # the connect, seen
        start = watcher.mark()
        until = clock_ms() + 1_500
        await client.request({"op": "status", "status": "busy", "text": "In a meeting",
                              "until": until})  # fmt: skip
        busy = await watcher.wait_status(user, "busy", after=start)
        assert (busy["text"], busy["until"]) == ("In a meeting", until)
        back = await watcher.wait_status(user, "online", after=start, timeout=15)
        assert (back["text"], "until" in back) == ("", False)
        assert until <= back["at"] < until + 1_000, back
        frame = next(f for f in watcher.frames[start:] if back in f.get("users", ()))
        assert frame["op"] == "delta"


async def test_a_status_without_until_clears_the_expiry(hub, watcher):
    """A later status without ``until`` replaces the expiry: nothing comes back later. A
    sentinel user expiring just after shows the sweep went past the old ``until``."""
    user, sentinel = uid("stays"), uid("sentinel")
    async with (
        await connect_user(hub.ws_url, user_token(user)) as client,
        await connect_user(hub.ws_url, user_token(sentinel)) as other,
    ):
        begin = watcher.mark()
        until = clock_ms() + 1_500
        await client.request({"op": "status", "status": "busy", "until": until})
        await other.request({"op": "status", "status": "busy", "until": until + 100})
        await watcher.wait_status(sentinel, "busy", after=begin)  # its next online: expiry
        start = watcher.mark()
        await client.request({"op": "status", "status": "away"})
        away = await watcher.wait_status(user, "away", after=start)
        assert "until" not in away
        await watcher.wait_status(sentinel, "online", after=start, timeout=15)
        assert [u["status"] for u in watcher.entries(user, after=start)] == ["away"]


@pytest.mark.parametrize(
    ("until", "needle"),
    [(-5_000, "until must be in the future"), (400 * 86_400_000, "at most a year ahead"),
     ("soon", "until must be a time in ms")],
    ids=["past", "too-far", "not-a-number"],
)  # fmt: skip
async def test_bad_until_is_bad_field_and_changes_nothing(hub, watcher, until, needle):
    """``until`` in the past, more than a year ahead or not a number: bad_field naming it,
    the socket stays open and the status is as before."""
    user = uid("bad")
    async with await connect_user(hub.ws_url, user_token(user)) as client:
        value = clock_ms() + until if isinstance(until, int) else until
        start = watcher.mark()
        error = await client.request({"op": "status", "status": "busy", "until": value},
                                     expect="error")  # fmt: skip
        assert error["code"] == "bad_field" and needle in error["message"]
        await client.request({"op": "status", "text": "still here"})
        entry = await watcher.wait_for(
            lambda f: any(u["id"] == user and u["text"] == "still here"
                          for u in f.get("users", ())),
            after=start,
        )  # fmt: skip
        assert [u["status"] for u in entry["users"] if u["id"] == user] == ["online"]


async def test_offline_entries_carry_last_seen(hub, watcher):
    """Going offline: the offline entry's ``lastSeen`` is its ``at``; online ones have none."""
    user = uid("leaver")
    start = watcher.mark()
    client = await connect_user(hub.ws_url, user_token(user))
    online = await watcher.wait_status(user, "online", after=start)
    await client.close()
    offline = await watcher.wait_status(user, "offline", after=start)
    assert "lastSeen" not in online and offline["lastSeen"] == offline["at"]


async def test_a_user_who_hides_its_last_seen_goes_offline_without_it(hub, watcher):
    """``{"op": "status", "lastSeen": "nobody"}``: the user's offline entries leave it out."""
    user = uid("private")
    start = watcher.mark()
    client = await connect_user(hub.ws_url, user_token(user))
    await client.request({"op": "status", "lastSeen": "nobody"})
    await client.close()
    offline = await watcher.wait_status(user, "offline", after=start)
    assert "lastSeen" not in offline


async def test_invisible_last_seen_stays_at_the_moment_it_went_invisible(hub, watcher):
    """Invisible is offline at that moment; staying connected and leaving later change
    nothing anyone sees."""
    user = uid("ghost")
    start = watcher.mark()
    client = await connect_user(hub.ws_url, user_token(user))
    second = await connect_user(hub.ws_url, user_token(user))
    await client.request({"op": "status", "status": "offline"})
    invisible = await watcher.wait_status(user, "offline", after=start)
    assert invisible["lastSeen"] == invisible["at"]
    await client.request({"op": "activity", "state": "away"})
    await second.close()
    await client.close()
    async with await connect_user(hub.ws_url, user_token(uid("observer"))) as late:
        await late.subscribe({"users": [user]}, since=invisible["at"])  # a delta from then
        assert list(late.entries(user)) == [invisible]
    assert [e["at"] for e in watcher.entries(user, after=start) if e["status"] == "offline"] == [
        invisible["at"]
    ]


async def test_hub_wide_nobody_leaves_last_seen_out():
    """``HUB_LAST_SEEN=nobody``: no offline entry, nor ``users.getPresence``, carries it."""
    other = InProcessHub({"HUB_OFFLINE_GRACE_S": "0", "HUB_LAST_SEEN": "nobody"}).start()
    try:
        async with await connect_user(other.ws_url, user_token(uid("w")), subscribe=True) as w:
            user = uid("anyone")
            start = w.mark()
            client = await connect_user(other.ws_url, user_token(user))
            await w.wait_status(user, "online", after=start)
            await client.close()
            offline = await w.wait_status(user, "offline", after=start)
            assert "lastSeen" not in offline
        async with httpx.AsyncClient(base_url=other.url, trust_env=False) as http:
            response = await http.get("/api/v1/users.getPresence", params={"userId": user},
                                      headers=rc_headers(uid("caller")))  # fmt: skip
        assert response.status_code == 200 and response.json()["presence"] == "offline"
        assert "lastSeen" not in response.json()
    finally:
        await other.astop()
    other.assert_no_tracebacks()
