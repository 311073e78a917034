"""User authentication on two hubs sharing one Redis, with unmodified pusher-js and both
server SDKs: ``pusher.signin()`` (good and forged), ``sendToUser`` to every connection of
the user on every hub, ``terminate_connections`` of signed-in connections and presence
members, and the refusals of bad sign-ins (a plain websocket client: the SDKs would not
sign them)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from hub.model.pusher_auth import user_auth
from tests.support.hubproc import ADMIN_HEADERS, HubProcess, running_hubs, user_token
from tests.support.pusher import (
    APP_KEY,
    APP_SECRET,
    WAIT_S,
    Driver,
    Helper,
    apps_file,
    ev,
    node_sdk,
    sdk,
    store_env,
    wait_until,
)
from tests.support.wsclient import connect_user

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def nodes(
    redis_url: str, key_prefix: str, tmp_path: Path, hooks: Helper
) -> Iterator[tuple[HubProcess, ...]]:
    env = {
        **store_env(redis_url, key_prefix),
        "HUB_OFFLINE_GRACE_S": "10",
        "HUB_PUSHER_APPS_FILE": str(apps_file(tmp_path / "apps.json", f"{hooks.url}/webhook")),
    }
    with running_hubs(tmp_path, env) as hubs:
        yield hubs


def _signed_in(
    driver: Driver, id_: str, node: HubProcess, hooks: Helper, user: str, **extra: Any
) -> None:
    """A pusher-js client on ``node`` that signed in as ``user``."""
    driver.send(op="pusher", id=id_, key=APP_KEY, port=node.port, auth=f"{hooks.url}/auth",
                userAuth=f"{hooks.url}/user-auth", user=user, **extra)  # fmt: skip
    driver.wait(ev(id_, "connected"))
    driver.send(op="signin", id=id_)
    assert driver.wait(ev(id_, "signed_in"))["user"] == user


def _online(node: HubProcess, users: list[str]) -> list[str]:
    response = httpx.get(
        f"{node.url}/api/v1/users.presence",
        params={"ids": ",".join(users)},
        headers=ADMIN_HEADERS,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return sorted(u["_id"] for u in response.json()["users"])


async def test_a_signed_in_user_is_online_everywhere_and_gets_its_events_on_every_hub(
    nodes, driver, hooks
):
    """Two signed-in tabs of one user on two hubs: online on /ws and in users.presence, and
    both SDKs' sendToUser reaches both tabs and no other user."""
    node1, node2 = nodes
    tag = uuid.uuid4().hex[:6]
    ann, bob = f"ann-{tag}", f"bob-{tag}"
    watcher = await connect_user(node2.ws_url, user_token(f"w-{tag}"))
    try:
        await watcher.subscribe({"users": [ann]})
        await asyncio.to_thread(_signed_in, driver, "a1", node1, hooks, ann)
        await watcher.wait_status(ann, "online")
        await asyncio.to_thread(_signed_in, driver, "a2", node2, hooks, ann)
        await asyncio.to_thread(_signed_in, driver, "b", node1, hooks, bob)
        for node in nodes:
            assert await asyncio.to_thread(_online, node, [ann, bob]) == sorted([ann, bob])

        # The npm SDK through node2, then PyPI's through node1.
        sent = await asyncio.to_thread(
            node_sdk, node2.port, {"fn": "sendToUser", "args": [ann, "hello", {"n": 1}]}
        )
        assert sent[0]["status"] == 200, sent
        await asyncio.to_thread(sdk(node1.port).send_to_user, ann, "again", {"n": 2})
        for tab in ("a1", "a2"):
            for name, n in (("hello", 1), ("again", 2)):
                got = await asyncio.to_thread(driver.wait, ev(tab, "user_event", event=name))
                assert got["data"] == {"n": n}
        await asyncio.to_thread(sdk(node2.port).send_to_user, bob, "yours", {})
        await asyncio.to_thread(driver.wait, ev("b", "user_event", event="yours"))
        others = [e for e in driver.seen(ev("b", "user_event")) if e["event"] != "yours"]
        assert others == []
        assert not driver.seen(ev("a1", "user_event", event="yours"))
    finally:
        await watcher.close()


def test_a_forged_sign_in_is_refused_and_closed_4009(nodes, driver, hooks):
    """A user_data signed with the wrong secret gets pusher:error 4009 and the close 4009
    (pusher-js does not come back), and the user is not online."""
    node1, _ = nodes
    tag = uuid.uuid4().hex[:6]
    eve = f"eve-{tag}"
    driver.send(op="pusher", id="f", key=APP_KEY, port=node1.port, auth=f"{hooks.url}/auth",
                userAuth=f"{hooks.url}/user-auth", user=eve, forge=True)  # fmt: skip
    driver.wait(ev("f", "connected"))
    mark = driver.mark()
    driver.send(op="signin", id="f")
    error = driver.wait(ev("f", "pusher_error"), after=mark)
    assert error["data"]["code"] == 4009
    assert "signature" in error["data"]["message"]
    driver.wait(ev("f", "state", state="disconnected"), after=mark)
    assert not driver.seen(ev("f", "signed_in"))
    assert _online(node1, [eve]) == []


def test_terminate_closes_signed_in_connections_and_presence_members(nodes, driver, hooks):
    """terminate_connections of a user closes its signed-in tabs on both hubs and its
    presence membership (4009: pusher-js stays away), and nobody else's."""
    node1, node2 = nodes
    tag = uuid.uuid4().hex[:6]
    cy, dan = f"cy-{tag}", f"dan-{tag}"
    channel = f"presence-desk-{tag}"
    _signed_in(driver, "c1", node1, hooks, cy)
    _signed_in(driver, "c2", node2, hooks, cy)
    # cy also on a presence channel without signing in, on node2; dan watches it.
    driver.send(op="pusher", id="c3", key=APP_KEY, port=node2.port, auth=f"{hooks.url}/auth",
                user=cy)  # fmt: skip
    driver.wait(ev("c3", "connected"))
    driver.send(op="subscribe", id="c3", channel=channel)
    driver.wait(ev("c3", "here"))
    _signed_in(driver, "d", node1, hooks, dan)
    driver.send(op="subscribe", id="d", channel=channel)
    assert driver.wait(ev("d", "here"))["members"] == sorted([cy, dan])

    mark = driver.mark()
    done = node_sdk(node1.port, {"fn": "terminateUserConnections", "args": [cy]})
    assert done[0]["status"] == 200, done
    for tab in ("c1", "c2", "c3"):
        driver.wait(ev(tab, "state", state="disconnected"), after=mark)
    driver.wait(ev("d", "leaving", user=cy), after=mark)
    # A forced disconnect skips the offline grace (10 s on these hubs).
    wait_until(lambda: _online(node2, [cy, dan]) == [dan], timeout=5, what=f"{cy} offline")
    # dan's own connection is untouched: it still gets its events.
    sdk(node2.port).send_to_user(dan, "still-here", {})
    driver.wait(ev("d", "user_event", event="still-here"), after=mark)
    assert not driver.seen(ev("d", "state", state="disconnected"), after=mark)


# -- refusals, with a plain websocket client --------------------------------------------


class Raw:
    """A plain websocket on ``/app/{key}``: frames as JSON."""

    def __init__(self, ws: ClientConnection, socket_id: str) -> None:
        self.ws = ws
        self.socket_id = socket_id

    async def recv(self) -> dict[str, Any]:
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), WAIT_S))
        if isinstance(frame.get("data"), str):
            with contextlib.suppress(ValueError):
                frame["data"] = json.loads(frame["data"])
        return frame

    async def signin(self, user_data: dict[str, Any] | str, secret: str = APP_SECRET) -> None:
        raw = user_data if isinstance(user_data, str) else json.dumps(user_data)
        auth = user_auth(APP_KEY, secret, self.socket_id, raw)
        await self.ws.send(
            json.dumps({"event": "pusher:signin", "data": {"auth": auth, "user_data": raw}})
        )


@pytest.fixture
async def raw(nodes: tuple[HubProcess, ...]) -> AsyncIterator[Raw]:
    url = f"ws://127.0.0.1:{nodes[0].port}/app/{APP_KEY}?protocol=7"
    async with connect(url, proxy=None, open_timeout=WAIT_S) as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))
        yield Raw(ws, json.loads(first["data"])["socket_id"])


async def test_bad_sign_ins_get_clear_errors_and_change_nothing(nodes, raw):
    """A user_data without id, a watchlist of 101 ids and a second sign-in are each told
    what was wrong; the connection stays open and stays the first user's."""
    node1, _ = nodes
    tag = uuid.uuid4().hex[:6]
    await raw.signin({"user_info": {"name": "No One"}})
    error = await raw.recv()
    assert error["event"] == "pusher:error"
    assert "user_data has no id" in error["data"]["message"]

    await raw.signin({"id": f"wide-{tag}", "watchlist": [f"u{i}" for i in range(101)]})
    error = await raw.recv()
    assert "watchlist holds 101 ids; at most 100" in error["data"]["message"]
    assert await asyncio.to_thread(_online, node1, [f"wide-{tag}"]) == []

    await raw.signin({"id": 7})
    assert "user_data.id must be a string" in (await raw.recv())["data"]["message"]

    first = f"first-{tag}"
    await raw.signin({"id": first, "watchlist": [f"u{i}" for i in range(100)]})
    success = await raw.recv()
    assert success["event"] == "pusher:signin_success"
    assert json.loads(success["data"]["user_data"])["id"] == first
    await raw.signin({"id": f"second-{tag}"})
    error = await raw.recv()
    assert f"already signed in as {first!r}" in error["data"]["message"]
    assert await asyncio.to_thread(_online, node1, [first, f"second-{tag}"]) == [first]

    # Only its own server-to-user channel may be subscribed to.
    answers = {
        f"#server-to-user-{first}": "pusher_internal:subscription_succeeded",
        f"#server-to-user-second-{tag}": "pusher:subscription_error",
    }
    for channel, expected in answers.items():
        await raw.ws.send(json.dumps({"event": "pusher:subscribe", "data": {"channel": channel}}))
        answer = await raw.recv()
        assert (answer["event"], answer["channel"]) == (expected, channel)
