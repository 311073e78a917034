"""Watchlists with unmodified pusher-js on two hubs sharing one Redis: a signed-in user's
``pusher.user.watchlist`` hears who is online right after sign-in, then every change, from
the hub's own presence, whatever wire the watched user is on (``/ws``, a Pusher sign-in, a
presence channel) and whichever hub; a reload inside the offline grace is no offline."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.hubproc import ADMIN_HEADERS, HubProcess, running_hubs, user_token
from tests.support.pusher import (
    APP_KEY,
    Driver,
    Event,
    Helper,
    apps_file,
    ev,
    store_env,
    wait_until,
)
from tests.support.wsclient import connect_user

pytestmark = [pytest.mark.redis, pytest.mark.slow]

GRACE_S = 4.0


@pytest.fixture
def nodes(
    redis_url: str, key_prefix: str, tmp_path: Path, hooks: Helper
) -> Iterator[tuple[HubProcess, ...]]:
    env = {
        **store_env(redis_url, key_prefix),
        "HUB_OFFLINE_GRACE_S": str(GRACE_S),
        "HUB_PUSHER_APPS_FILE": str(apps_file(tmp_path / "apps.json", f"{hooks.url}/webhook")),
    }
    with running_hubs(tmp_path, env) as hubs:
        yield hubs


def _pusher(
    driver: Driver, id_: str, node: HubProcess, hooks: Helper, user: str, **extra: Any
) -> None:
    driver.send(op="pusher", id=id_, key=APP_KEY, port=node.port, auth=f"{hooks.url}/auth",
                userAuth=f"{hooks.url}/user-auth", user=user, **extra)  # fmt: skip
    driver.wait(ev(id_, "connected"))


def _signed_in(
    driver: Driver, id_: str, node: HubProcess, hooks: Helper, user: str, **extra: Any
) -> None:
    _pusher(driver, id_, node, hooks, user, **extra)
    driver.send(op="signin", id=id_)
    assert driver.wait(ev(id_, "signed_in"))["user"] == user


def _told(driver: Driver, id_: str, after: int = 0) -> list[tuple[str, list[str]]]:
    return [(e["name"], e["user_ids"]) for e in driver.seen(ev(id_, "watchlist"), after)]


def _wait(driver: Driver, id_: str, name: str, users: list[str], after: int = 0) -> Event:
    return driver.wait(ev(id_, "watchlist", name=name, user_ids=sorted(users)), 30, after)


async def test_the_watchlist_tells_who_is_online_then_every_change_from_any_wire_and_hub(
    nodes, driver, hooks
):
    """ann on /ws on node2 is online at sign-in; bob signing in (pusher-js) and dee joining
    a presence channel (Laravel Echo) on node2 come online; ann closing goes offline after
    the grace; cy, never seen, is never told."""
    node1, node2 = nodes
    tag = uuid.uuid4().hex[:6]
    ann, bob, cy, dee = (f"{n}-{tag}" for n in ("ann", "bob", "cy", "dee"))
    ws = await connect_user(node2.ws_url, user_token(ann))
    try:
        await asyncio.to_thread(_signed_in, driver, "w", node1, hooks, f"w-{tag}",
                                watchlist=[ann, bob, cy, dee])  # fmt: skip
        await asyncio.to_thread(_wait, driver, "w", "online", [ann])

        await asyncio.to_thread(_signed_in, driver, "b", node2, hooks, bob)
        await asyncio.to_thread(_wait, driver, "w", "online", [bob])
        # dee joins a presence channel with Laravel Echo, without signing in.
        driver.send(op="echo", id="d", key=APP_KEY, port=node2.port, auth=f"{hooks.url}/auth",
                    user=dee)  # fmt: skip
        await asyncio.to_thread(driver.wait, ev("d", "connected"))
        driver.send(op="join", id="d", channel=f"room-{tag}")
        await asyncio.to_thread(driver.wait, ev("d", "here"))
        await asyncio.to_thread(_wait, driver, "w", "online", [dee])

        closed = time.monotonic()
        await ws.close()
        await asyncio.to_thread(_wait, driver, "w", "offline", [ann])
        assert time.monotonic() - closed >= GRACE_S * 0.9, "offline came before the grace"
    finally:
        await ws.close()
    assert _told(driver, "w") == [
        ("online", [ann]),
        ("online", [bob]),
        ("online", [dee]),
        ("offline", [ann]),
    ]


def _connected(node: HubProcess, user: str) -> bool:
    """Whether the store holds a connection of ``user`` (Rocket.Chat's connectionStatus:
    offline while the user waits out its grace)."""
    response = httpx.get(
        f"{node.url}/api/v1/users.getPresence",
        params={"userId": user},
        headers=ADMIN_HEADERS,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return bool(response.json()["connectionStatus"] != "offline")


async def test_a_reload_inside_the_grace_is_no_offline(nodes, driver, hooks):
    """ann (/ws) and bob (pusher-js) on node2 close and come back inside the grace: the
    watcher on node1 hears nothing of them. dee coming online while both are gone proves a
    tick passed (an offline would have come with or before it); cy, leaving for good
    after, is the barrier for the grace."""
    node1, node2 = nodes
    tag = uuid.uuid4().hex[:6]
    ann, bob, cy, dee = (f"{n}-{tag}" for n in ("ann", "bob", "cy", "dee"))
    ws = await connect_user(node2.ws_url, user_token(ann))
    again = None
    try:
        await asyncio.to_thread(_signed_in, driver, "b", node2, hooks, bob)
        await asyncio.to_thread(_signed_in, driver, "c", node1, hooks, cy)
        await asyncio.to_thread(_signed_in, driver, "w", node1, hooks, f"w-{tag}",
                                watchlist=[ann, bob, cy, dee])  # fmt: skip
        await asyncio.to_thread(_wait, driver, "w", "online", [ann, bob, cy])
        mark = driver.mark()

        # The reloads: each closes; once the store holds neither, dee comes online.
        started = time.monotonic()
        await ws.close()
        driver.send(op="close", id="b")
        for user in (ann, bob):
            await asyncio.to_thread(
                wait_until, lambda u=user: not _connected(node2, u), what=f"{user} gone"
            )
        await asyncio.to_thread(_signed_in, driver, "d", node2, hooks, dee)
        await asyncio.to_thread(_wait, driver, "w", "online", [dee], mark)
        again = await connect_user(node2.ws_url, user_token(ann))
        await asyncio.to_thread(_signed_in, driver, "b2", node2, hooks, bob)
        took = time.monotonic() - started
        assert took < GRACE_S, f"the reloads took {took:.1f} s, more than the grace"

        driver.send(op="close", id="c")
        await asyncio.to_thread(_wait, driver, "w", "offline", [cy], mark)
    finally:
        await ws.close()
        if again is not None:
            await again.close()
    assert _told(driver, "w", mark) == [("online", [dee]), ("offline", [cy])]
