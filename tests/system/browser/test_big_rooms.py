"""The browser library's counts, member windows and watchlists in real Chromium, against a
hub on memory, Redis and Redis Cluster: a page on another origin imports hub.js from the
hub, opens several clients, and its ``counts()``, ``members()`` (moved while members change)
and ``subscribe({users})`` agree with REST and tell an unknown id from an offline user."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.support.hubproc import HubProcess
from tests.system.browser.conftest import DEADLINE_MS

pytestmark = pytest.mark.browser

BLANK = "<!doctype html><html lang='en'><head><title>A big room</title></head><body></body></html>"

BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
    pytest.param("redis-cluster", id="redis-cluster", marks=[pytest.mark.redis,
                                                              pytest.mark.cluster]),
]  # fmt: skip

#: Open member clients and a watcher in the page; every client joins the room.
SETUP = """async ({hub, room, members, stranger}) => {
  const lib = await import(`${hub}/static/hub.js`);
  const token = async (user) => {
    const res = await fetch(`${hub}/api/v1/dev.token`, {method: 'POST',
      headers: {'Content-Type': 'application/json'}, body: JSON.stringify({user, name: user})});
    return (await res.json()).token;
  };
  window.clients = {};
  for (const id of members) {
    const h = lib.connect({token: await token(id), trackActivity: false, idleMs: 0});
    await h.once('ready');
    await h.join(room);
    clients[id] = h;
  }
  const me = `watcher-${Math.random().toString(16).slice(2, 8)}`;
  window.readToken = await token(me);
  window.watcher = lib.connect({token: readToken, format: 'msgpack', trackActivity: false,
                               idleMs: 0});
  await watcher.once('ready');
  window.numbers = watcher.counts(room);
  window.win = watcher.members(room, [0, 3]);
  window.watch = watcher.subscribe({users: [...members.slice(0, 2), stranger]});
  await Promise.all([numbers.ready, win.ready, watch.ready]);
  return {total: numbers.value.total, window: win.users.length};
}"""


@pytest.fixture(params=BACKENDS)
def store_hub(request: pytest.FixtureRequest, tmp_path: Path, key_prefix: str
              ) -> Iterator[HubProcess]:  # fmt: skip
    """A development hub (generated keys, any origin) on the backend, no offline grace."""
    env = {"HUB_OFFLINE_GRACE_S": "0", "HUB_SECRET": "", "HUB_ADMIN_KEY": "",
           "XDG_STATE_HOME": str(tmp_path / "state")}  # fmt: skip
    if request.param != "memory":
        fixture = "redis_url" if request.param == "redis" else "cluster_url"
        env |= {"HUB_STORE": request.getfixturevalue(fixture), "HUB_KEY_PREFIX": key_prefix,
                "HUB_CHANNEL": f"{key_prefix}presence"}  # fmt: skip
    process = HubProcess(log_path=tmp_path / "hub.log", env=env)
    process.start()
    try:
        yield process
    finally:
        process.stop()
        process.assert_no_tracebacks()


@pytest.fixture
def page(browser: Browser, other_site: tuple[Path, str]) -> Iterator[Page]:
    directory, url = other_site
    (directory / "index.html").write_text(BLANK)
    context = browser.new_context()
    errors: list[str] = []
    opened = context.new_page()
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    opened.goto(url)
    try:
        yield opened
    finally:
        context.close()
    assert not errors, f"script errors: {errors}"


def rest_window(hub: HubProcess, token: str, room: str, first: int, last: int) -> list[Any]:
    params = {"room": room, "offset": first, "count": last - first + 1}
    reply = httpx.get(f"{hub.url}/api/v1/rooms.members", timeout=10, params=params,
                      headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert reply.status_code == 200, reply.text
    return [[m["id"], m["status"]] for m in reply.json()["members"]]


def window_matches_rest(page: Page, hub: HubProcess, room: str) -> list[Any]:
    """Poll, with a deadline, until the page's window equals rooms.members for its range."""
    token = page.evaluate("readToken")
    deadline = time.monotonic() + DEADLINE_MS / 1000
    while True:
        held = page.evaluate("({range: win.range, users: win.users.map((u) => [u.id, u.status])})")
        first, last = held["range"]
        want = rest_window(hub, token, room, first, last)
        if held["users"] == want:
            return want
        if time.monotonic() > deadline:
            raise AssertionError(f"window {held} never matched REST {want}")
        page.wait_for_timeout(100)  # a poll interval, not a synchronisation


def test_counts_windows_and_watchlists_in_chromium(page: Page, store_hub: HubProcess) -> None:
    """Counts and a moved window follow members changing; a watchlist's get() tells an
    offline user (with lastSeen) from an id the hub never saw."""
    room = f"webinar-{uuid.uuid4().hex[:6]}"
    members = [f"m{n}-{uuid.uuid4().hex[:4]}" for n in range(7)]
    stranger = f"never-{uuid.uuid4().hex[:6]}"
    first = page.evaluate(SETUP, {"hub": store_hub.url, "room": room, "members": members,
                                  "stranger": stranger})  # fmt: skip
    assert first == {"total": 7, "window": 4}
    window_matches_rest(page, store_hub, room)
    page.evaluate("""async ([a, b, c]) => {
      await clients[b].setStatus({status: 'busy'});
      clients[c].setActivity('away');
      clients[a].close({grace: false});
    }""", members[:3])  # fmt: skip
    page.wait_for_function(
        "() => numbers.value.online === 4 && numbers.value.busy === 1 && numbers.value.away === 1"
        " && numbers.value.total === 7", timeout=DEADLINE_MS,
    )  # fmt: skip
    window_matches_rest(page, store_hub, room)
    page.evaluate("""async ([d]) => {
      const moving = win.move([2, 5]);
      await clients[d].setStatus({status: 'offline'});
      await moving;
    }""", members[3:4])  # fmt: skip
    page.wait_for_function("() => win.range[0] === 2 && win.users.length === 4",
                           timeout=DEADLINE_MS)  # fmt: skip
    window_matches_rest(page, store_hub, room)
    page.wait_for_function(
        "([a]) => watch.get(a) && watch.get(a).status === 'offline'", arg=[members[0]],
        timeout=DEADLINE_MS,
    )  # fmt: skip
    seen = page.evaluate("""([a, b, s]) => ({
      gone: watch.get(a), busy: watch.get(b).status, stranger: watch.get(s),
      nobody: watch.get('not-watched') === undefined, unknown: watch.unknown(),
      listed: watch.list().map((u) => u.id).sort(),
    })""", [members[0], members[1], stranger])  # fmt: skip
    assert seen["gone"]["lastSeen"] > 0 and "unknown" not in seen["gone"]
    assert seen["busy"] == "busy"
    assert seen["stranger"] == {"id": stranger, "unknown": True}
    assert seen["nobody"] is True and seen["unknown"] == [stranger]
    assert seen["listed"] == sorted(members[:2])
    page.evaluate("() => { watcher.close(); for (const c of Object.values(clients)) c.close(); }")
