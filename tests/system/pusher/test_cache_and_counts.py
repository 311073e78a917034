"""Cache channels, subscription counts and the ``info`` attributes of published events,
with unmodified pusher-js and both server SDKs on two hubs sharing one Redis (the app has
``subscription_count`` on, and a webhook receiver for ``cache_miss`` and
``subscription_count``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pusher
import pytest

from tests.support.hubproc import HubProcess, running_hubs
from tests.support.pusher import (
    APP_KEY,
    Driver,
    Helper,
    apps_file,
    ev,
    node_sdk,
    sdk,
    store_env,
    wait_until,
)

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def nodes(
    redis_url: str, key_prefix: str, tmp_path: Path, hooks: Helper
) -> Iterator[tuple[HubProcess, ...]]:
    apps = apps_file(
        tmp_path / "apps.json",
        f"{hooks.url}/webhook",
        ("cache_miss", "subscription_count"),
        subscription_count=True,
    )
    env = {
        **store_env(redis_url, key_prefix),
        "HUB_PUSHER_APPS_FILE": str(apps),
    }
    with running_hubs(tmp_path, env) as hubs:
        yield hubs


def _connect(driver: Driver, id_: str, node: HubProcess, hooks: Helper, user: str = "") -> None:
    driver.send(op="pusher", id=id_, key=APP_KEY, port=node.port, auth=f"{hooks.url}/auth",
                user=user or id_)  # fmt: skip
    driver.wait(ev(id_, "connected"))


def _subscribe(driver: Driver, id_: str, channel: str) -> None:
    driver.send(op="subscribe", id=id_, channel=channel)
    done = "here" if channel.startswith("presence-") else "subscribed"
    driver.wait(ev(id_, done, channel=channel))


def _hooks(hooks: Helper, name: str, channel: str) -> list[dict[str, object]]:
    return [e for e in hooks.webhook_events() if e["name"] == name and e["channel"] == channel]


def _after_subscribed(driver: Driver, id_: str, channel: str) -> list[str]:
    """What ``id_`` heard on ``channel`` from its subscription on, in order."""
    seen = driver.seen(lambda e: e.get("id") == id_ and e.get("channel") == channel)
    kinds = [e["ev"] if e["ev"] != "event" else f"event:{e['event']}" for e in seen]
    return [k for k in kinds if k != "count"]


def test_a_cache_channel_gives_new_subscribers_its_last_event_on_every_hub(nodes, driver, hooks):
    """Subscribers of an empty cache channel get pusher:cache_miss (one cache_miss webhook
    for both); after an event, new subscribers on either hub get it right after
    subscription_succeeded, on public, private and presence cache channels."""
    node1, node2 = nodes
    tag = uuid.uuid4().hex[:6]
    public = f"cache-weather-{tag}"
    _connect(driver, "a", node1, hooks)
    _subscribe(driver, "a", public)
    driver.wait(ev("a", "cache_miss", channel=public))
    _connect(driver, "b", node2, hooks)
    _subscribe(driver, "b", public)
    driver.wait(ev("b", "cache_miss", channel=public))
    wait_until(lambda: len(_hooks(hooks, "cache_miss", public)) >= 1, what="cache_miss hook")
    # A later webhook from node2 (its queue is in order) proves no second miss came.
    _subscribe(driver, "b", f"barrier-{tag}")
    wait_until(lambda: bool(_hooks(hooks, "channel_occupied", f"barrier-{tag}")), what="barrier")
    assert len(_hooks(hooks, "cache_miss", public)) == 1

    sdk(node2.port).trigger(public, "temp", {"c": 20})
    sdk(node1.port).trigger(public, "temp", {"c": 21})
    for who in ("a", "b"):
        driver.wait(ev(who, "event", channel=public, event="temp", data={"c": 21}))
    for who, node in (("c", node1), ("d", node2)):
        _connect(driver, who, node, hooks)
        _subscribe(driver, who, public)
        got = driver.wait(ev(who, "event", channel=public, event="temp"))
        assert got["data"] == {"c": 21}
        assert _after_subscribed(driver, who, public) == ["subscribed", "event:temp"]

    # Private and presence cache channels, filled by the Node SDK.
    private, presence = f"private-cache-desk-{tag}", f"presence-cache-room-{tag}"
    sent = node_sdk(
        node1.port,
        {"fn": "trigger", "args": [private, "state", {"open": True}]},
        {"fn": "trigger", "args": [presence, "topic", "lunch"]},
    )
    assert [r["status"] for r in sent] == [200, 200], sent
    _subscribe(driver, "d", private)
    _subscribe(driver, "d", presence)
    assert driver.wait(ev("d", "event", channel=private, event="state"))["data"] == {"open": True}
    assert driver.wait(ev("d", "event", channel=presence, event="topic"))["data"] == "lunch"
    assert _after_subscribed(driver, "d", presence) == ["here", "event:topic"]
    assert not driver.seen(lambda e: e.get("ev") == "cache_miss" and e["id"] in ("c", "d"))


def test_a_cache_channel_name_over_the_limit_keeps_its_clear_error(nodes, driver, hooks):
    """165 characters: the HTTP API answers 400 naming the limit, a subscription gets
    pusher:error naming it, and nothing is cached."""
    node1, _ = nodes
    long_name = "private-cache-" + "x" * 151
    with pytest.raises(pusher.errors.PusherBadRequest, match="at most 164 characters"):
        sdk(node1.port).trigger(long_name, "e", {})
    _connect(driver, "a", node1, hooks)
    driver.send(op="subscribe", id="a", channel="cache-" + "y" * 159)
    error = driver.wait(ev("a", "pusher_error"))
    assert "at most 164 characters" in error["data"]["message"]


def test_subscription_counts_are_told_across_hubs_and_reported(nodes, driver, hooks):
    """Subscribers of a public channel on two hubs hear pusher:subscription_count as the
    count changes; presence channels get none; each change is a subscription_count
    webhook."""
    node1, node2 = nodes
    tag = uuid.uuid4().hex[:6]
    news = f"news-{tag}"

    def told(who: str, n: int, after: int = 0) -> None:
        driver.wait(ev(who, "count", channel=news, count=n), after=after)

    _connect(driver, "a", node1, hooks)
    _subscribe(driver, "a", news)
    told("a", 1)
    _connect(driver, "b", node2, hooks)
    _subscribe(driver, "b", news)
    told("a", 2)
    told("b", 2)
    _connect(driver, "c", node1, hooks)
    _subscribe(driver, "c", news)
    for who in ("a", "b", "c"):
        told(who, 3)
    mark = driver.mark()
    driver.send(op="unsubscribe", id="c", channel=news)
    for who in ("a", "b"):
        told(who, 2, mark)
    assert sdk(node2.port).channel_info(news, ["subscription_count"])["subscription_count"] == 2

    presence = f"presence-quiet-{tag}"
    _subscribe(driver, "b", presence)
    sdk(node1.port).trigger(presence, "after", {})
    driver.wait(ev("b", "event", channel=presence, event="after"))
    assert not driver.seen(ev("b", "count", channel=presence))

    # One per change, from the node that made it: 1 and 3 and 2 from node1, 2 from node2.
    wait_until(
        lambda: len(_hooks(hooks, "subscription_count", news)) >= 4,
        what="subscription_count webhooks",
    )
    counts = [e["subscription_count"] for e in _hooks(hooks, "subscription_count", news)]
    assert sorted(counts) == [1, 2, 2, 3]


def test_published_events_answer_the_info_attributes_of_their_channels(nodes, driver, hooks):
    """The Node SDK's trigger and triggerBatch with info=subscription_count,user_count get
    each channel's counts across both hubs (user_count on presence channels only); an
    unknown attribute is a 400 naming it, and nothing is published."""
    node1, node2 = nodes
    tag = uuid.uuid4().hex[:6]
    news, room = f"info-news-{tag}", f"presence-info-{tag}"
    _connect(driver, "a", node1, hooks, f"ann-{tag}")
    _connect(driver, "b", node2, hooks, f"bob-{tag}")
    _connect(driver, "b2", node2, hooks, f"bob-{tag}")
    for who in ("a", "b"):
        _subscribe(driver, who, news)
    for who in ("a", "b", "b2"):
        _subscribe(driver, who, room)

    info = "subscription_count,user_count"
    one, batch, bad = node_sdk(
        node2.port,
        {"fn": "trigger", "args": [[news, room, news], "e", {}, {"info": info}]},
        {"fn": "triggerBatch", "args": [[
            {"channel": news, "name": "b1", "data": "x", "info": "subscription_count"},
            {"channel": room, "name": "b2", "data": "y", "info": info},
            {"channel": news, "name": "b3", "data": "z"},
        ]]},
        {"fn": "trigger", "args": [news, "never", {}, {"info": "user_count,members"}]},
    )  # fmt: skip
    assert one["status"] == 200, one
    assert one["body"] == {
        "channels": {
            news: {"subscription_count": 2},
            room: {"subscription_count": 3, "user_count": 2},
        }
    }
    assert batch["status"] == 200, batch
    assert batch["body"] == {
        "batch": [{"subscription_count": 2}, {"subscription_count": 3, "user_count": 2}, {}]
    }
    assert bad["status"] == 400
    assert "unknown info attributes: members" in bad["body"]
    sdk(node1.port).trigger(news, "barrier", {})
    driver.wait(ev("a", "event", channel=news, event="barrier"))
    assert not driver.seen(ev("a", "event", event="never"))
