"""The HTTP API with both real server SDKs (npm ``pusher`` and PyPI ``pusher``), and client
events from pusher-js and Laravel Echo, on two hubs sharing one Redis: an event published
on one node reaches subscribers on the other."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pusher
import pytest

from hub.model.pusher_auth import body_md5, sign_request
from tests.support.hubproc import HubProcess, running_hubs
from tests.support.pusher import (
    APP_ID,
    APP_KEY,
    APP_SECRET,
    APPS_ENV,
    Driver,
    Helper,
    ev,
    helper,
    node_sdk,
    sdk,
    store_env,
)

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture(scope="module")
def nodes(
    redis_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[HubProcess, ...]]:
    prefix = f"t{uuid.uuid4().hex[:10]}:"
    env = {
        **store_env(redis_server.url, prefix),
        "HUB_PUSHER_APPS": APPS_ENV,
    }
    with running_hubs(tmp_path_factory.mktemp("api"), env) as hubs:
        yield hubs


@pytest.fixture
def auth() -> Iterator[Helper]:
    with helper(0) as server:
        yield server


def _client(driver: Driver, kind: str, id_: str, node: HubProcess, auth: Helper, user: str) -> str:
    driver.send(op=kind, id=id_, key=APP_KEY, port=node.port, auth=f"{auth.url}/auth", user=user)
    return str(driver.wait(ev(id_, "connected"))["socket_id"])


def test_events_from_both_sdks_reach_subscribers_on_every_node(nodes, driver, auth):
    node1, node2 = nodes
    tag = uuid.uuid4().hex[:6]
    public, private = f"news-{tag}", f"private-desk-{tag}"
    s1 = _client(driver, "pusher", "a", node1, auth, "u1")
    _client(driver, "pusher", "b", node2, auth, "u2")
    for who in ("a", "b"):
        for channel in (public, private):
            driver.send(op="subscribe", id=who, channel=channel)
            driver.wait(ev(who, "subscribed", channel=channel))

    # The Node SDK on node2, one event on two channels: both clients get it on both.
    results = node_sdk(node2.port, {"fn": "trigger", "args": [[public, private], "news", {"n": 1}]})
    assert results[0]["status"] == 200, results
    for who in ("a", "b"):
        for channel in (public, private):
            got = driver.wait(ev(who, "event", channel=channel, event="news"))
            assert got["data"] == {"n": 1}

    # PyPI's SDK on node2, excluding a's socket (on node1): only b gets it.
    mark = driver.mark()
    sdk(node2.port).trigger(public, "excluded", {"n": 2}, socket_id=s1)
    sdk(node1.port).trigger(public, "after", {"n": 3})
    driver.wait(ev("b", "event", event="excluded"), after=mark)
    driver.wait(ev("a", "event", event="after"), after=mark)
    assert not driver.seen(ev("a", "event", event="excluded"), after=mark)

    # Batches, from both SDKs.
    batch = [
        {"channel": public, "name": "b1", "data": "one"},
        {"channel": private, "name": "b2", "data": "two"},
    ]
    assert node_sdk(node1.port, {"fn": "triggerBatch", "args": [batch]})[0]["status"] == 200
    sdk(node2.port).trigger_batch([{"channel": public, "name": "b3", "data": "three"}])
    for name, channel, data in (
        ("b1", public, "one"),
        ("b2", private, "two"),
        ("b3", public, "three"),
    ):
        assert driver.wait(ev("b", "event", event=name, channel=channel))["data"] == data

    # Channel queries, on the node the clients are not on.
    info = sdk(node1.port).channels_info()
    assert {public, private} <= set(info["channels"])
    assert set(sdk(node1.port).channels_info(prefix_filter="private-")["channels"]) >= {private}
    assert public not in sdk(node1.port).channels_info(prefix_filter="private-")["channels"]
    assert sdk(node1.port).channel_info(public, ["subscription_count"]) == {
        "occupied": True,
        "subscription_count": 2,
    }
    result = node_sdk(node2.port, {"fn": "get", "args": [{"path": f"/channels/{public}"}]})
    assert result[0]["body"] == {"occupied": True}
    assert sdk(node2.port).channel_info(f"empty-{tag}") == {"occupied": False}


def test_presence_queries_and_terminate(nodes, driver, auth):
    node1, node2 = nodes
    tag = uuid.uuid4().hex[:6]
    channel = f"presence-team-{tag}"
    _client(driver, "pusher", "a", node1, auth, f"x-{tag}")
    _client(driver, "pusher", "b", node2, auth, f"y-{tag}")
    for who in ("a", "b"):
        driver.send(op="subscribe", id=who, channel=channel)
        driver.wait(ev(who, "here"))
    assert sdk(node2.port).channels_info("presence-", ["user_count"])["channels"][channel] == {
        "user_count": 2
    }
    assert sdk(node1.port).channel_info(channel, ["user_count"])["user_count"] == 2
    got = node_sdk(node1.port, {"fn": "get", "args": [{"path": f"/channels/{channel}/users"}]})
    assert sorted(u["id"] for u in got[0]["body"]["users"]) == [f"x-{tag}", f"y-{tag}"]
    # Terminating y's connections (on node2) through node1: a sees y leave.
    mark = driver.mark()
    sdk(node1.port).terminate_user_connections(f"y-{tag}")
    driver.wait(ev("a", "leaving", user=f"y-{tag}"), after=mark)
    assert sdk(node1.port).channel_info(channel, ["user_count"])["user_count"] == 1
    # And x's (on node1) through node2, with the Node SDK.
    mark = driver.mark()
    done = node_sdk(node2.port, {"fn": "terminateUserConnections", "args": [f"x-{tag}"]})
    assert done[0]["status"] == 200, done
    driver.wait(ev("a", "state", state="disconnected"), after=mark)
    assert sdk(node1.port).channel_info(channel, ["user_count"])["user_count"] == 0


def test_wrong_or_stale_signatures_get_401_and_change_nothing(nodes, driver, auth):
    node1, _ = nodes
    tag = uuid.uuid4().hex[:6]
    channel = f"guarded-{tag}"
    _client(driver, "pusher", "a", node1, auth, "u1")
    driver.send(op="subscribe", id="a", channel=channel)
    driver.wait(ev("a", "subscribed", channel=channel))
    mark = driver.mark()

    wrong = sdk(node1.port, "not-the-secret")
    with pytest.raises(pusher.errors.PusherBadAuth):
        wrong.trigger(channel, "forged", {})
    js = node_sdk(
        node1.port, {"fn": "trigger", "args": [channel, "forged", {}]}, secret="not-the-secret"
    )
    assert js[0]["status"] == 401

    # A correctly signed request whose timestamp is 601 s old.
    body = json.dumps({"name": "stale", "channels": [channel], "data": "{}"}).encode()
    path = f"/apps/{APP_ID}/events"
    params = {
        "auth_key": APP_KEY,
        "auth_timestamp": str(int(time.time()) - 601),
        "auth_version": "1.0",
        "body_md5": body_md5(body),
    }
    params["auth_signature"] = sign_request(APP_SECRET, "POST", path, params)
    stale = httpx.post(f"{node1.url}{path}", params=params, content=body, timeout=10)
    assert stale.status_code == 401
    assert "auth_timestamp" in stale.json()["error"]
    # The same, fresh, goes through: the signing above is Pusher's.
    params["auth_timestamp"] = str(int(time.time()))
    params["auth_signature"] = sign_request(APP_SECRET, "POST", path, params)
    fresh = httpx.post(f"{node1.url}{path}", params=params, content=body, timeout=10)
    assert fresh.status_code == 200, fresh.text
    driver.wait(ev("a", "event", event="stale"), after=mark)
    assert not driver.seen(ev("a", "event", event="forged"), after=mark)


def test_client_events_reach_the_others_with_user_id_on_presence(nodes, driver, auth):
    node1, node2 = nodes
    tag = uuid.uuid4().hex[:6]
    room = f"chat-{tag}"
    _client(driver, "echo", "a", node1, auth, f"ann-{tag}")
    _client(driver, "echo", "b", node2, auth, f"bob-{tag}")
    driver.send(op="join", id="a", channel=room)
    driver.wait(ev("a", "here"))
    driver.send(op="join", id="b", channel=room)
    driver.wait(ev("b", "here"))
    driver.wait(ev("a", "joining", user=f"bob-{tag}"))
    mark = driver.mark()
    driver.send(op="whisper", id="b", channel=room, event="typing", data={"typing": True})
    got = driver.wait(ev("a", "whisper"), after=mark)
    assert got["data"] == {"typing": True}

    # pusher-js on a private channel; the sender does not get its own event.
    private = f"private-pair-{tag}"
    _client(driver, "pusher", "p", node1, auth, "p")
    _client(driver, "pusher", "q", node2, auth, "q")
    for who in ("p", "q"):
        driver.send(op="subscribe", id=who, channel=private)
        driver.wait(ev(who, "subscribed", channel=private))
    mark = driver.mark()
    driver.send(op="trigger", id="p", channel=private, event="client-ping", data={"k": 1})
    assert driver.wait(ev("q", "event", event="client-ping"), after=mark)["data"] == {"k": 1}
    sdk(node1.port).trigger(private, "barrier", {})
    driver.wait(ev("p", "event", event="barrier"), after=mark)
    assert not driver.seen(ev("p", "event", event="client-ping"), after=mark)
    assert not driver.seen(ev("b", "whisper"))


def test_pysher_speaks_protocol_6_to_the_same_channels(nodes, driver, auth):
    import pysher

    node1, node2 = nodes
    tag = uuid.uuid4().hex[:6]
    channel = f"presence-py-{tag}"
    _client(driver, "pusher", "a", node1, auth, f"js-{tag}")
    driver.send(op="subscribe", id="a", channel=channel)
    driver.wait(ev("a", "here"))

    connected, got = threading.Event(), queue.Queue[str]()
    client = pysher.Pusher(
        APP_KEY,
        secure=False,
        custom_host="127.0.0.1",
        port=node2.port,
        secret=APP_SECRET,
        log_level=logging.WARNING,
        user_data={"user_id": f"py-{tag}", "user_info": {"name": "Py"}},
    )
    client.connection.bind("pusher:connection_established", lambda *_: connected.set())
    client.connect()
    try:
        assert connected.wait(20)
        ch = client.subscribe(channel)
        ch.bind("hello", got.put)
        driver.wait(ev("a", "joining", user=f"py-{tag}"))
        sdk(node1.port).trigger(channel, "hello", {"to": "py"})
        assert json.loads(got.get(timeout=20)) == {"to": "py"}
    finally:
        # Pysher's disconnect() joins its thread, which sleeps on its own ping timer for
        # up to its activity timeout; the close frame is sent at once, so do not wait.
        client.disconnect(timeout=1)
    driver.wait(ev("a", "leaving", user=f"py-{tag}"))
