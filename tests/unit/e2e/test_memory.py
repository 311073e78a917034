"""End to end on the memory store: a real hub process, real websocket clients.

One hub serves the module (2 s window so "older than the window" is quick to reach);
every test uses its own user ids, so tests share the hub without seeing each other's
users as their own.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from tests.support import eventually
from tests.support.hubproc import user_token
from tests.support.inproc import InProcessHub, inproc_hub_fixture
from tests.support.wsclient import JSON, MSGPACK, WsClient, connect_user

WINDOW_S = 2
hub = inproc_hub_fixture({"HUB_WINDOW_S": str(WINDOW_S), "HUB_OFFLINE_GRACE_S": "1"})
ENTRY_KEYS = {"id", "username", "name", "status", "text", "at"}


def uid(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


async def test_subscriber_sees_a_new_user_online_via_delta(hub: InProcessHub):
    """A subscribes everyone; B connects; A receives B online in a delta with a full entry."""
    a_id, b_id = uid("a"), uid("b")
    a = await connect_user(hub.ws_url, user_token(a_id, name="Ann"), subscribe=True)
    start = a.mark()
    b = await connect_user(hub.ws_url, user_token(b_id, name="Bob", username="bob" + b_id))
    try:
        frame = await a.wait_for(
            lambda f: f["op"] == "delta" and any(u["id"] == b_id for u in f["users"]),
            after=start,
            what="a delta with B",
        )
        entry = next(u for u in frame["users"] if u["id"] == b_id)
        assert set(entry) == ENTRY_KEYS
        assert (entry["status"], entry["name"]) == ("online", "Bob")
        assert entry["username"] == "bob" + b_id
        assert frame["scope"] == {"all": True} and frame["cursor"] >= entry["at"]
        assert a.state.status(b_id) == "online"
        assert b.ready is not None and b.ready["user"]["status"] == "online"
        assert b.ready["window"] == WINDOW_S and b.ready["cursor"] >= b.ready["user"]["at"]
    finally:
        await a.close()
        await b.close()


async def test_status_change_is_acked_then_seen_by_subscribers(hub: InProcessHub):
    """B sets busy with a text: the hub acks B's ref, then A sees busy and the text."""
    a_id, b_id = uid("a"), uid("b")
    a = await connect_user(hub.ws_url, user_token(a_id), subscribe=True)
    b = await connect_user(hub.ws_url, user_token(b_id))
    try:
        online = await a.wait_status(b_id, "online")
        start = a.mark()
        ack = await b.request(
            {"op": "status", "status": "busy", "text": "in a call", "ref": "set-1"}
        )
        assert ack == {"op": "ack", "ref": "set-1"}
        busy = await a.wait_status(b_id, "busy", after=start)
        assert busy["text"] == "in a call" and busy["at"] > online["at"]
        assert a.state.get(b_id) == busy
        # Only the text now: the status stays, the text changes.
        await b.request({"op": "status", "text": "back at 3"})
        again = await a.wait_for(
            lambda f: any(u["id"] == b_id and u["text"] == "back at 3" for u in f.get("users", ())),
            what="B's new text",
        )
        assert next(u for u in again["users"] if u["id"] == b_id)["status"] == "busy"
    finally:
        await a.close()
        await b.close()


async def test_activity_makes_a_connection_away_and_back(hub: InProcessHub):
    """B's only connection reporting away makes B away; reporting online makes B online."""
    a_id, b_id = uid("a"), uid("b")
    a = await connect_user(hub.ws_url, user_token(a_id), subscribe=True)
    b = await connect_user(hub.ws_url, user_token(b_id))
    try:
        await a.wait_status(b_id, "online")
        await b.request({"op": "activity", "state": "away"})
        away = await a.wait_status(b_id, "away")
        start = a.mark()
        await b.request({"op": "activity", "state": "online"})
        back = await a.wait_status(b_id, "online", after=start)
        assert back["at"] > away["at"]
    finally:
        await a.close()
        await b.close()


async def test_msgpack_subprotocol_uses_binary_frames(hub: InProcessHub):
    """With hub.v1.msgpack every server frame is binary msgpack, and the session works."""
    m_id, j_id = uid("m"), uid("j")
    m = await WsClient.open(hub.ws_url, subprotocol=MSGPACK)
    try:
        assert m.connection.subprotocol == MSGPACK
        ready = await m.hello(user_token(m_id))
        assert ready["user"]["id"] == m_id
        snapshot = await m.subscribe()
        assert snapshot["full"] is True and isinstance(snapshot["cursor"], int)
        start = m.mark()
        j = await connect_user(hub.ws_url, user_token(j_id), subprotocol=JSON)
        try:
            assert j.connection.subprotocol == JSON
            await m.wait_status(j_id, "online", after=start)
            await j.request({"op": "status", "status": "away"})
            await m.wait_status(j_id, "away", after=start)
            ping_at = m.mark()
            await m.send({"op": "ping", "ref": 5})
            pong = await m.wait_for(lambda f: f["op"] == "pong", after=ping_at, what="pong")
            assert pong == {"op": "pong", "ref": 5}
            assert all(isinstance(raw, bytes) for raw in m.raw), "msgpack sessions get binary"
            assert all(isinstance(raw, str) for raw in j.raw), "JSON sessions get text"
        finally:
            await j.close()
    finally:
        await m.close()


async def test_no_subprotocol_means_json(hub: InProcessHub):
    """A client that asks for no subprotocol gets JSON text frames and a pong for its ping."""
    client = await WsClient.open(hub.ws_url)
    try:
        assert client.connection.subprotocol is None
        await client.hello(user_token(uid("p")))
        start = client.mark()
        await client.send({"op": "ping", "ref": "p1"})
        pong = await client.wait_for(lambda f: f["op"] == "pong", after=start, what="pong")
        assert pong == {"op": "pong", "ref": "p1"}
        assert all(isinstance(raw, str) for raw in client.raw)
    finally:
        await client.close()


async def test_resume_inside_window_gets_only_changes_since(hub: InProcessHub):
    """sub with a recent cursor answers full:false with exactly the users changed since."""
    window_ms = WINDOW_S * 1000
    a_id = uid("a")
    a = await connect_user(hub.ws_url, user_token(a_id), subscribe=True)
    try:
        for _attempt in range(3):
            x_id, b_id = uid("x"), uid("b")
            x = await connect_user(hub.ws_url, user_token(x_id))
            x_entry = await a.wait_status(x_id, "online")
            cursor = a.state.cursor  # covers X's change
            b = await connect_user(hub.ws_url, user_token(b_id))
            await b.request({"op": "status", "status": "busy"})
            b_entry = await a.wait_status(b_id, "busy")
            resumed = await connect_user(hub.ws_url, user_token(uid("r")))
            try:
                snap = await resumed.subscribe(since=cursor)
            finally:
                await resumed.close()
                await x.close()
                await b.close()
            # The rule, exactly: the snapshot's cursor is the clock the hub decided with.
            assert snap["full"] is (cursor < snap["cursor"] - window_ms)
            if snap["full"]:
                continue  # this machine stalled for a whole window; try again
            ids = {u["id"] for u in snap["users"]}
            assert b_id in ids
            assert next(u for u in snap["users"] if u["id"] == b_id) == b_entry
            assert (x_id in ids) is (x_entry["at"] >= cursor), "at or after since, no older"
            assert all(u["at"] >= cursor for u in snap["users"])
            assert snap["cursor"] >= b_entry["at"]
            return
        raise AssertionError("three resumes in a row took longer than the window")
    finally:
        await a.close()


async def test_resume_older_than_window_gets_a_full_snapshot(hub: InProcessHub):
    """sub with a cursor well before the window answers full:true with everyone not offline."""
    a_id, b_id = uid("a"), uid("b")
    a = await connect_user(hub.ws_url, user_token(a_id), subscribe=True)
    b = await connect_user(hub.ws_url, user_token(b_id))
    try:
        await b.request({"op": "status", "status": "away"})
        await a.wait_status(b_id, "away")
        old = a.state.cursor - 60_000
        snap = await b.subscribe(since=old)
        assert snap["full"] is True
        users = {u["id"]: u for u in snap["users"]}
        assert users[b_id]["status"] == "away" and users[a_id]["status"] == "online"
        assert all(u["status"] != "offline" for u in snap["users"])
    finally:
        await a.close()
        await b.close()


async def test_full_flag_follows_the_window_as_a_cursor_ages(hub: InProcessHub):
    """Re-subscribing with one real cursor: full:false until it is a window old, then full:true,
    each answer obeying full == (since < cursor - window)."""
    window_ms = WINDOW_S * 1000
    client = await connect_user(hub.ws_url, user_token(uid("c")), subscribe=True)
    try:
        since = client.state.cursor
        answers = []
        deadline = time.monotonic() + WINDOW_S + 10
        while time.monotonic() < deadline:
            snap = await client.subscribe(since=since)
            answers.append((snap["cursor"], snap["full"]))
            assert snap["full"] is (since < snap["cursor"] - window_ms), answers
            if snap["full"]:
                break
            await asyncio.sleep(0.1)  # poll interval
        assert answers[0][1] is False, "a fresh cursor is inside the window"
        assert answers[-1][1] is True, f"still a delta after {WINDOW_S + 10} s: {answers[-3:]}"
    finally:
        await client.close()


async def hub_older_than_a_window(hub: InProcessHub) -> None:
    """Wait until a cursor one window old is past the store's epoch (a cursor from before
    the store began always gets a snapshot), polling the hub itself."""
    client = await connect_user(hub.ws_url, user_token(uid("age")))
    try:
        # The store existed when /readyz answered: once this since is outside the window,
        # every since in a burst (one window before now, minus 5 ms) is past the epoch.
        since = hub.ready_ms + 50

        async def outside() -> bool:
            return bool((await client.subscribe(since=since))["full"])

        await eventually(outside, timeout=WINDOW_S + 10, interval=0.1)
    finally:
        await client.close()


async def test_cursor_exactly_one_window_old_is_inside(hub: InProcessHub):
    """A since equal to the hub clock minus the window gets full:false (the edge is inside)."""
    # Forty subs, one per millisecond guess of the hub clock, are pipelined; the hub answers
    # them in order, and because its clock never goes back while the guesses climb one per
    # frame, one answer's cursor equals its guess exactly unless the hub stalled: retry then.
    window_ms = WINDOW_S * 1000
    await hub_older_than_a_window(hub)
    bursts = 10
    for _ in range(bursts):
        client = await connect_user(hub.ws_url, user_token(uid("edge")))
        try:
            base = time.time_ns() // 1_000_000
            guesses = list(range(base - 5, base + 35))
            start = client.mark()
            for g in guesses:
                await client.send(
                    {"op": "sub", "all": True, "since": g - window_ms, "ref": f"g{g}"}
                )
            await client.wait_for(
                lambda f, last=guesses[-1]: f.get("ref") == f"g{last}",
                after=start,
                what="the last answer",
            )
            # Each sub is answered by its snapshot, then (maybe a held delta, then) its ack.
            pairs = []
            snapshot = None
            for frame in client.frames[start:]:
                if frame["op"] == "snapshot":
                    snapshot = frame
                elif frame["op"] == "ack":
                    assert snapshot is not None, "an ack without its snapshot"
                    pairs.append((int(frame["ref"][1:]) - window_ms, snapshot))
                    snapshot = None
            assert len(pairs) == len(guesses)
            for since, snapshot in pairs:
                assert snapshot["full"] is (since < snapshot["cursor"] - window_ms)
            edges = [s for since, s in pairs if since == s["cursor"] - window_ms]
            if edges:
                assert all(s["full"] is False for s in edges)
                return
        finally:
            await client.close()
    raise AssertionError(f"no answer landed exactly on the edge in {bursts} bursts")
