"""pusher-js and Laravel Echo, unmodified, on two hubs sharing one Redis.

Clients are spread over both nodes; members must be exact on both, a second tab of a user
must add no member_added (and closing it no member_removed), kill -9 of a node must remove
its members from the other node's clients within the TTL, and a webhook receiver must get
each member event once.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.hubproc import (
    ADMIN_HEADERS,
    TEST_ADMIN_KEY,
    HubProcess,
    running_hubs,
    user_token,
)
from tests.support.pusher import (
    APP_KEY,
    WAIT_S,
    Driver,
    Helper,
    apps_file,
    ev,
    room_entry,
    sdk,
    store_env,
    wait_until,
)
from tests.support.wsclient import connect_user

pytestmark = [pytest.mark.redis, pytest.mark.slow]

TTL_S = 2.0


@pytest.fixture
def nodes(
    redis_url: str, key_prefix: str, tmp_path: Path, hooks: Helper
) -> Iterator[tuple[HubProcess, ...]]:
    env = {
        **store_env(redis_url, key_prefix),
        "HUB_NODE_TTL_S": str(TTL_S),
        "HUB_OFFLINE_GRACE_S": "0.2",
        "HUB_PUSHER_APPS_FILE": str(apps_file(tmp_path / "apps.json", f"{hooks.url}/webhook")),
    }
    with running_hubs(tmp_path, env) as hubs:
        yield hubs


def _connect(
    driver: Driver, kind: str, id_: str, node: HubProcess, hooks: Helper, user: str
) -> None:
    driver.send(op=kind, id=id_, key=APP_KEY, port=node.port, auth=f"{hooks.url}/auth", user=user)
    driver.wait(ev(id_, "connected"))


def _online(node: HubProcess, users: list[str]) -> list[str]:
    response = httpx.get(
        f"{node.url}/api/v1/users.presence",
        params={"ids": ",".join(users)},
        headers=ADMIN_HEADERS,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return sorted(u["_id"] for u in response.json()["users"])


def test_members_are_exact_across_nodes_tabs_and_a_killed_node(nodes, driver, hooks):
    node1, node2 = nodes
    tag = uuid.uuid4().hex[:6]
    u1, u2, u3 = f"ann-{tag}", f"bob-{tag}", f"cy-{tag}"
    room = f"room-{tag}"
    channel = f"presence-{room}"

    # pusher-js on node1 and Laravel Echo on node2.
    _connect(driver, "pusher", "a", node1, hooks, u1)
    driver.send(op="subscribe", id="a", channel=channel)
    assert driver.wait(ev("a", "here"))["members"] == [u1]
    _connect(driver, "echo", "b", node2, hooks, u2)
    driver.send(op="join", id="b", channel=room)
    assert driver.wait(ev("b", "here"))["members"] == sorted([u1, u2])
    joined = driver.wait(ev("a", "joining", user=u2))
    assert joined["info"] == {"id": u2, "name": f"User {u2}"}

    # A pusher connection on a presence channel is a hub connection of that user.
    for node in nodes:
        assert _online(node, [u1, u2, u3]) == sorted([u1, u2])

    # A second tab of ann, on the other node: nobody hears of it; then it closes.
    mark = driver.mark()
    _connect(driver, "pusher", "a2", node2, hooks, u1)
    driver.send(op="subscribe", id="a2", channel=channel)
    assert driver.wait(ev("a2", "here"), after=mark)["members"] == sorted([u1, u2])
    driver.send(op="close", id="a2")
    driver.wait(ev("a2", "closed"), after=mark)
    wait_until(
        lambda: (
            sdk(node1.port).channel_info(channel, ["subscription_count"])["subscription_count"] == 2
        ),
        what="the second tab's subscription ended",
    )
    # A third user joins on node1: a barrier after the tab's events.
    _connect(driver, "pusher", "c", node1, hooks, u3)
    driver.send(op="subscribe", id="c", channel=channel)
    assert driver.wait(ev("c", "here"), after=mark)["members"] == sorted([u1, u2, u3])
    driver.wait(ev("b", "joining", user=u3), after=mark)
    driver.wait(ev("a", "joining", user=u3), after=mark)
    for who in ("a", "b"):
        about_ann = driver.seen(
            lambda e, w=who: (
                e.get("id") == w and e.get("user") == u1 and e.get("ev") in ("joining", "leaving")
            ),
            after=mark,
        )
        assert about_ann == [], f"{who} heard of ann's second tab: {about_ann}"

    # Both nodes list the same members through the HTTP API.
    for node in nodes:
        users = sdk(node.port).users_info(channel)["users"]
        assert sorted(u["id"] for u in users) == sorted([u1, u2, u3])

    def member_events() -> Counter[tuple[str, str]]:
        return Counter(
            (e["name"], e["user_id"])
            for e in hooks.webhook_events()
            if e.get("channel") == channel and e["name"].startswith("member_")
        )

    # Webhooks leave a node a moment after the transition; one killed before that loses
    # them (see the README), so the kill waits for the three member_added.
    wait_until(lambda: len(member_events()) == 3, what="three member_added webhooks")

    # kill -9 of node2: bob (only there) leaves for the clients of node1 within the TTL.
    mark = driver.mark()
    killed = time.monotonic()
    node2.kill()
    for who in ("a", "c"):
        driver.wait(ev(who, "leaving", user=u2), timeout=TTL_S * 4, after=mark)
    took = time.monotonic() - killed
    assert took < TTL_S * 4, f"member_removed took {took:.1f} s"
    users = sdk(node1.port).users_info(channel)["users"]
    assert sorted(u["id"] for u in users) == sorted([u1, u3])
    wait_until(
        lambda: _online(node1, [u1, u2, u3]) == sorted([u1, u3]),
        timeout=TTL_S * 4,
        what="bob offline in users.presence",
    )
    assert not driver.seen(lambda e: e.get("ev") == "leaving" and e.get("user") == u1, after=mark)

    # Each member event reached the webhook receiver once, across both nodes.
    wait_until(lambda: member_events()[("member_removed", u2)] >= 1, what="webhook")
    assert hooks.rejected == 0
    assert member_events() == Counter(
        {
            ("member_added", u1): 1,
            ("member_added", u2): 1,
            ("member_added", u3): 1,
            ("member_removed", u2): 1,
        }
    )
    occupied = [
        e
        for e in hooks.webhook_events()
        if e["name"] == "channel_occupied" and e["channel"] == channel
    ]
    assert len(occupied) == 1


def test_a_draining_node_hands_its_members_over(nodes, driver, hooks):
    node1, node2 = nodes
    tag = uuid.uuid4().hex[:6]
    u1, u2 = f"dee-{tag}", f"eve-{tag}"
    channel = f"presence-drain-{tag}"
    _connect(driver, "pusher", "a", node1, hooks, u1)
    driver.send(op="subscribe", id="a", channel=channel)
    driver.wait(ev("a", "here"))
    _connect(driver, "echo", "b", node2, hooks, u2)
    driver.send(op="join", id="b", channel=channel.removeprefix("presence-"))
    assert driver.wait(ev("b", "here"))["members"] == sorted([u1, u2])
    mark = driver.mark()
    assert node1.stop() == 0
    driver.wait(ev("b", "leaving", user=u1), after=mark)
    # pusher-js on the stopped node tries to come back (close codes in the retry range).
    driver.wait(ev("a", "state", state="connecting"), after=mark)
    users = sdk(node2.port).users_info(channel)["users"]
    assert [u["id"] for u in users] == [u2]
    wait_until(lambda: _online(node2, [u1, u2]) == [u2], what=f"{u1} offline after the grace")


async def test_presence_channel_members_are_the_hub_room(nodes, driver, hooks):
    """A /ws room subscriber sees a presence channel's members come and go; a whisper
    becomes one client_event webhook."""
    node1, node2 = nodes
    tag = uuid.uuid4().hex[:6]
    u1, u2 = f"fay-{tag}", f"gus-{tag}"
    channel = f"presence-hall-{tag}"
    watcher = await connect_user(node2.ws_url, user_token(f"watcher-{tag}"))
    try:
        await watcher.subscribe({"room": channel})
        await asyncio.to_thread(_connect, driver, "echo", "a", node1, hooks, u1)
        driver.send(op="join", id="a", channel=channel.removeprefix("presence-"))
        await room_entry(watcher, channel, u1, member=True, status="online")
        await asyncio.to_thread(_connect, driver, "echo", "b", node2, hooks, u2)
        driver.send(op="join", id="b", channel=channel.removeprefix("presence-"))
        await room_entry(watcher, channel, u2, member=True, status="online")
        await asyncio.to_thread(driver.wait, ev("a", "joining", user=u2))

        mark = driver.mark()
        driver.send(
            op="whisper",
            id="b",
            channel=channel.removeprefix("presence-"),
            event="typing",
            data={"on": True},
        )
        await asyncio.to_thread(driver.wait, ev("a", "whisper"), WAIT_S, mark)
        await asyncio.to_thread(
            wait_until,
            lambda: any(
                e["name"] == "client_event" and e["channel"] == channel
                for e in hooks.webhook_events()
            ),
            what="client_event hook",
        )

        mark = watcher.mark()
        driver.send(op="close", id="a")
        await room_entry(watcher, channel, u1, after=mark, member=False)
    finally:
        await watcher.close()
    (hook,) = [
        e for e in hooks.webhook_events() if e["name"] == "client_event" and e["channel"] == channel
    ]
    assert hook["event"] == "client-typing" and hook["user_id"] == u2
    assert json.loads(hook["data"]) == {"on": True}


def test_an_admin_kick_closes_the_users_pusher_connections(nodes, driver, hooks):
    node1, node2 = nodes
    tag = uuid.uuid4().hex[:6]
    u1, u2 = f"hal-{tag}", f"ida-{tag}"
    channel = f"presence-kick-{tag}"
    for id_, node, user in (("a", node1, u1), ("b", node2, u2)):
        _connect(driver, "pusher", id_, node, hooks, user)
        driver.send(op="subscribe", id=id_, channel=channel)
        driver.wait(ev(id_, "here"))
    mark = driver.mark()
    response = httpx.post(
        f"{node1.url}/api/1.1/user/{u2}/kick", json={"api_key": TEST_ADMIN_KEY}, timeout=10
    )
    assert response.status_code == 200, response.text
    driver.wait(ev("a", "leaving", user=u2), after=mark)
    # 4004 is in Pusher's "do not reconnect" range: pusher-js stays away.
    driver.wait(ev("b", "state", state="disconnected"), after=mark)
    assert _online(node1, [u1, u2]) == [u1]
