"""The offline grace, end to end: offline only after it, and no flap on a quick reconnect."""

from __future__ import annotations

import time
import uuid

from tests.support.hubproc import user_token
from tests.support.inproc import InProcessHub, inproc_hub_fixture
from tests.support.wsclient import connect_user

SHORT_GRACE_S = 1.0
short_grace_hub = inproc_hub_fixture({"HUB_OFFLINE_GRACE_S": str(SHORT_GRACE_S)})
# A long grace costs nothing where the test ends on a marker event, and it leaves a loaded
# machine plenty of time to reconnect inside it.
long_grace_hub = inproc_hub_fixture({"HUB_OFFLINE_GRACE_S": "30"})


def uid(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


async def test_user_goes_offline_only_after_the_grace(short_grace_hub: InProcessHub):
    """B closes its only socket: A sees B offline, and not before the grace has passed."""
    hub = short_grace_hub
    a_id, b_id = uid("a"), uid("b")
    a = await connect_user(hub.ws_url, user_token(a_id), subscribe=True)
    try:
        b = await connect_user(hub.ws_url, user_token(b_id))
        online = await a.wait_status(b_id, "online")
        start = a.mark()
        closed_at = time.monotonic()
        await b.close()
        offline = await a.wait_status(b_id, "offline", after=start)
        waited = time.monotonic() - closed_at
        assert waited >= SHORT_GRACE_S - 0.05, f"offline after {waited:.3f} s, grace is 1 s"
        assert offline["at"] - online["at"] >= SHORT_GRACE_S * 1000
        statuses = [e["status"] for e in a.entries(b_id, after=start)]
        assert statuses == ["offline"], "nothing about B between the close and the offline"
        assert a.state.status(b_id) == "offline"
    finally:
        await a.close()


async def test_reconnect_inside_the_grace_publishes_no_flap(long_grace_hub: InProcessHub):
    """B closes and reconnects inside the grace: A gets no delta about B before a later marker
    event (C coming online), and B's presence keeps its original ``at``."""
    hub = long_grace_hub
    a_id, b_id, c_id = uid("a"), uid("b"), uid("c")
    a = await connect_user(hub.ws_url, user_token(a_id), subscribe=True)
    b2 = c = None
    try:
        b = await connect_user(hub.ws_url, user_token(b_id))
        online = await a.wait_status(b_id, "online")
        start = a.mark()
        await b.close()
        b2 = await connect_user(hub.ws_url, user_token(b_id))
        assert b2.ready is not None
        assert b2.ready["user"]["status"] == "online"
        assert b2.ready["user"]["at"] == online["at"], "the reconnect restamped B"
        # The marker: everything the hub published before C's connect reaches A before it.
        c = await connect_user(hub.ws_url, user_token(c_id))
        marker = await a.wait_status(c_id, "online", after=start)
        upto = next(i for i, f in enumerate(a.frames) if marker in f.get("users", ()))
        before_marker = [
            u for f in a.frames[start : upto + 1] for u in f.get("users", ()) if u["id"] == b_id
        ]
        assert before_marker == [], "B flapped offline/online on a reconnect inside the grace"
        assert a.state.status(b_id) == "online"
    finally:
        for client in (a, b2, c):
            if client is not None:
                await client.close()


async def test_second_tab_closing_changes_nothing(short_grace_hub: InProcessHub):
    """With two sockets, closing one publishes nothing: the user is still online."""
    hub = short_grace_hub
    a_id, b_id, c_id = uid("a"), uid("b"), uid("c")
    a = await connect_user(hub.ws_url, user_token(a_id), subscribe=True)
    tab1 = await connect_user(hub.ws_url, user_token(b_id))
    tab2 = await connect_user(hub.ws_url, user_token(b_id))
    c = None
    try:
        await a.wait_status(b_id, "online")
        start = a.mark()
        await tab1.close()
        c = await connect_user(hub.ws_url, user_token(c_id))
        await a.wait_status(c_id, "online", after=start)
        # Wait past the grace too, with C's offline as the marker this time.
        await c.close()
        await a.wait_status(c_id, "offline", after=start)
        assert list(a.entries(b_id, after=start)) == []
    finally:
        for client in (a, tab2, c):
            if client is not None:
                await client.close()


async def test_a_sign_out_close_skips_the_grace(long_grace_hub: InProcessHub) -> None:
    """A client closing with 4000 (the browser library's sign-out) is offline at once, not
    after the 30 s grace; a plain close of another user on the same hub still waits."""
    hub = long_grace_hub
    a_id, b_id, c_id = uid("a"), uid("b"), uid("c")
    a = await connect_user(hub.ws_url, user_token(a_id), subscribe=True)
    try:
        b = await connect_user(hub.ws_url, user_token(b_id))
        c = await connect_user(hub.ws_url, user_token(c_id))
        await a.wait_status(b_id, "online")
        await a.wait_status(c_id, "online")
        start = a.mark()
        await c.close()
        closed_at = time.monotonic()
        await b.connection.close(4000, "signed out")
        await a.wait_status(b_id, "offline", timeout=10, after=start)
        assert time.monotonic() - closed_at < 10, "the sign-out waited for the grace"
        assert a.state.status(c_id) == "online", "a plain close keeps the grace"
    finally:
        await a.close()
