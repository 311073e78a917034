"""The browser library (hub.js) used the way an app developer uses it: imported from the
hub by a page on another origin (a second HTTP server on another port), in real Chromium.

Covers CORS on the REST API and /static, the subscription API (sync, join, leave, update,
list, get, count, ready, unsubscribe), typed timeouts while the hub is down, and recovery
after a hub restart within 12 s. Every wait has a deadline; none is a sleep.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.support.hubproc import HubProcess
from tests.system.browser.conftest import DEADLINE_MS

pytestmark = pytest.mark.browser

#: A page that only loads; the tests import the library into it from the hub.
BLANK = "<!doctype html><html lang='en'><head><title>An app</title></head><body></body></html>"

#: Load hub.js from the hub, get a dev token over cross-origin REST, connect without `url`.
CONNECT = """async ({hub, user, name, timeoutMs}) => {
  const lib = await import(`${hub}/static/hub.js`);
  const res = await fetch(`${hub}/api/v1/dev.token`, {
    method: 'POST', headers: {'Content-Type': 'application/json'},
    body: JSON.stringify({user, name}),
  });
  const {token} = await res.json();
  const h = lib.connect({token, requestTimeoutMs: timeoutMs});
  window.lib = lib;
  window.h = h;
  window.events = [];
  window.states = [];
  h.on('state', (s) => states.push([s, Date.now()]));
  await h.once('ready');
  return {url: h.url, origin: location.origin};
}"""

#: Join a room and subscribe to it, logging every subscription event.
SUBSCRIBE = """async ({room}) => {
  await h.join(room);
  const sub = h.subscribe({room});
  window.sub = sub;
  const tag = (u) => `${u.id}:${u.status}`;
  sub.on('sync', (list) => events.push(['sync', list.map(tag).join(',')]));
  sub.on('join', (u) => events.push(['join', tag(u)]));
  sub.on('leave', (u) => events.push(['leave', tag(u)]));
  sub.on('update', (u, prev) => events.push(['update', `${u.id}:${prev.status}->${u.status}`]));
  const list = await sub.ready;
  return list.map(tag);
}"""


@pytest.fixture
def site(other_site: tuple[Path, str]) -> str:
    directory, url = other_site
    (directory / "index.html").write_text(BLANK)
    return url


@pytest.fixture
def pages(browser: Browser) -> Iterator[Any]:
    contexts = []
    errors: list[str] = []

    def _open(url: str) -> Page:
        context = browser.new_context()
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url)
        return page

    yield _open
    for context in contexts:
        with contextlib.suppress(Exception):  # a context the test closed itself
            context.close()
    assert not errors, f"script errors: {errors}"


def connect_page(
    page: Page, hub: HubProcess, user: str, name: str, timeout_ms: int = 10_000
) -> dict[str, str]:
    result: dict[str, str] = page.evaluate(
        CONNECT, {"hub": hub.url, "user": user, "name": name, "timeoutMs": timeout_ms}
    )
    return result


def wait_event(page: Page, kind: str, value: str) -> None:
    page.wait_for_function(
        "([k, v]) => events.some((e) => e[0] === k && e[1] === v)", arg=[kind, value],
        timeout=DEADLINE_MS,
    )  # fmt: skip


def events_after(page: Page, kind: str, value: str) -> list[list[str]]:
    events: list[list[str]] = page.evaluate("events")
    at = events.index([kind, value])
    return events[at:]


def test_cors_on_rest_and_static_for_a_development_hub(hub: HubProcess, site: str) -> None:
    """Generated keys: any origin may call the REST API (preflight included) and load hub.js;
    `serve` says so at start-up."""
    with httpx.Client(base_url=hub.url, timeout=10) as client:
        pre = client.options("/api/v1/users.presence", headers={
            "Origin": site, "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "X-Auth-Token, X-User-Id, Content-Type",
        })  # fmt: skip
        assert pre.status_code == 200, pre.text
        assert pre.headers["access-control-allow-origin"] in ("*", site)
        allowed = pre.headers["access-control-allow-headers"].lower()
        for header in ("x-auth-token", "x-user-id", "content-type", "authorization"):
            assert header in allowed
        js = client.get("/static/hub.js", headers={"Origin": site})
        assert js.status_code == 200
        assert js.headers["access-control-allow-origin"] in ("*", site)
    assert "Any origin may use the REST API" in hub.log()


def test_cors_origins_setting(tmp_path: Path) -> None:
    """With real keys only the HUB_CORS_ORIGINS origins get CORS headers; none without it."""
    allowed = "https://app.example"
    configured = HubProcess(
        log_path=tmp_path / "a.log", env={"HUB_CORS_ORIGINS": f"{allowed}, https://admin.example"}
    )
    plain = HubProcess(log_path=tmp_path / "b.log")
    for process in (configured, plain):
        process.start()
    try:
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        }
        with httpx.Client(timeout=10) as client:
            ok = client.options(
                f"{configured.url}/api/v1/users.setStatus", headers={"Origin": allowed, **preflight}
            )
            assert ok.status_code == 200
            assert ok.headers["access-control-allow-origin"] == allowed
            other = client.get(
                f"{configured.url}/static/hub.js", headers={"Origin": "https://evil.example"}
            )
            assert "access-control-allow-origin" not in other.headers
            assert (
                client.get(f"{configured.url}/static/hub.js", headers={"Origin": allowed}).headers[
                    "access-control-allow-origin"
                ]
                == allowed
            )
            none = client.get(f"{plain.url}/static/hub.js", headers={"Origin": allowed})
            assert "access-control-allow-origin" not in none.headers
        assert (
            "Cross-origin requests allowed from: https://app.example, https://admin.example"
            in configured.log()
        )
    finally:
        for process in (configured, plain):
            process.stop()


def test_subscription_api_from_another_origin(hub: HubProcess, site: str, pages: Any) -> None:
    """Ann's page (another origin) subscribes to a room: Bob's arrival is a join, his status
    change an update, his closed tab a leave; one sync per applied frame; unknown ids are
    told apart from offline ones; counts follow."""
    ann = pages(site)
    info = connect_page(ann, hub, "ann", "Ann")
    assert info["origin"] != hub.url
    assert info["url"] == f"ws://127.0.0.1:{hub.port}/ws", "the URL comes from import.meta.url"
    assert ann.evaluate(SUBSCRIBE, {"room": "design"}) == ["ann:online"]
    # The first snapshot is not news: one sync, no join for what was already there.
    assert ann.evaluate("events") == [["sync", "ann:online"]]

    bob_page = pages(site)
    connect_page(bob_page, hub, "bob", "Bob")
    bob_page.evaluate("async () => { await h.join('design'); }")
    wait_event(ann, "join", "bob:online")
    after = events_after(ann, "join", "bob:online")
    assert after[1] == ["sync", "ann:online,bob:online"], after

    bob_page.evaluate("() => h.setStatus({status: 'busy', text: 'In a review'})")
    wait_event(ann, "update", "bob:online->busy")
    after = events_after(ann, "update", "bob:online->busy")
    assert after[1] == ["sync", "ann:online,bob:busy"], after
    state = ann.evaluate("""() => ({
      text: sub.get('bob').text, unknown: sub.get('nobody') === undefined,
      has: sub.has('nobody'), count: sub.count(), busy: sub.count('busy'), counts: sub.counts(),
      list: sub.list().map((u) => u.id), syncs: events.filter((e) => e[0] === 'sync').length,
    })""")
    assert state == {"text": "In a review", "unknown": True, "has": False, "count": 2, "busy": 1,
                     "counts": {"online": 1, "away": 0, "busy": 1, "offline": 0},
                     "list": ["ann", "bob"], "syncs": 3}  # fmt: skip

    bob_page.context.close()  # the 1 s grace, then offline: present no more
    wait_event(ann, "leave", "bob:offline")
    state = ann.evaluate("""() => ({status: sub.get('bob').status, count: sub.count(),
                                    offline: sub.count('offline')})""")
    assert state == {"status": "offline", "count": 1, "offline": 1}

    # Refused subscriptions reject ready with the hub's code; unsubscribe ends events.
    refused = ann.evaluate("""async () => {
      const other = h.subscribe({room: 'x'.repeat(300)});  // longer than a room name may be
      try { await other.ready; return 'resolved'; }
      catch (err) { return [err.name, err.code, other.closed]; }
    }""")
    assert refused[0] == "HubError" and refused[2] is True, refused
    assert isinstance(refused[1], str) and refused[1]
    ann.evaluate("async () => { await sub.unsubscribe(); }")
    assert ann.evaluate("[sub.closed, h.scopes().length]") == [True, 0]


def test_timeouts_while_the_hub_is_down_then_recovery(
    hub: HubProcess, site: str, pages: Any
) -> None:
    """While the hub is unreachable, subscribe() and setStatus() reject with a typed timeout
    within requestTimeoutMs; after a restart the client is live again within 12 s and the
    subscription syncs."""
    page = pages(site)
    connect_page(page, hub, "ann", "Ann", timeout_ms=3000)
    hub.kill()
    page.wait_for_function("h.state !== 'ready'", timeout=DEADLINE_MS)
    result = page.evaluate("""async () => {
      const started = Date.now();
      const sub = h.subscribe({all: true});
      window.sub = sub;
      sub.on('sync', (list) => events.push(['sync', list.map((u) => u.id).join(',')]));
      const outcome = async (p) => {
        try { await p; return ['resolved']; }
        catch (err) {
          return [err.name, err.code, err instanceof lib.HubTimeoutError,
                  err instanceof lib.HubError, Date.now() - started];
        }
      };
      const [ready, status] = await Promise.all([
        outcome(sub.ready), outcome(h.setStatus({status: 'busy'}))]);
      return {ready, status, state: h.state};
    }""")
    for outcome in (result["ready"], result["status"]):
        assert outcome[:4] == ["HubTimeoutError", "timeout", True, True], result
        assert 2500 <= outcome[4] < 3000 + 2000, result
    assert result["state"] in ("reconnecting", "connecting"), result

    hub.start()  # same port; the dev keys are the same, so the token still holds
    up = time.monotonic()
    page.wait_for_function("h.state === 'ready'", timeout=12_000)
    assert time.monotonic() - up < 12
    # The subscription whose ready timed out goes on, and syncs now.
    page.wait_for_function("events.some((e) => e[0] === 'sync' && e[1].includes('ann'))",
                           timeout=DEADLINE_MS)  # fmt: skip
    assert page.evaluate("async () => (await h.setStatus({status: 'away'})).op") == "ack"
