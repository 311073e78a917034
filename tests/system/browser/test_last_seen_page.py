"""The live page with the hub's `lastSeen` and `until` entry fields (DESIGN.md: a user entry
carries `lastSeen` on offline entries and `until` when a chosen status expires; a `status`
frame may carry `until`).

These tests need a hub that sends both fields: they fail against a hub that does not know
them yet. The page code they exercise (app.js) works either way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, WebSocket, expect

OpenPage = Callable[..., Page]

pytestmark = pytest.mark.browser


def person(page: Page, user_id: str) -> Locator:
    return page.locator(f'#people .person[data-user="{user_id}"]')


def status_frames(page: Page) -> list[dict[str, Any]]:
    """Every `status` frame the page sends from now on (JSON subprotocol), as a live list."""
    frames: list[dict[str, Any]] = []

    def on_socket(ws: WebSocket) -> None:
        def sent(payload: str | bytes) -> None:
            if isinstance(payload, str):
                frame = json.loads(payload)
                if frame.get("op") == "status":
                    frames.append(frame)

        ws.on("framesent", sent)

    page.on("websocket", on_socket)
    return frames


def test_offline_people_show_when_they_were_last_seen(open_page: OpenPage) -> None:
    """Bob signs out: Ann's row for him is offline with "last seen just now" (from the
    entry's lastSeen), and the entry itself carries lastSeen in ms near now."""
    ann = open_page("Ann Lee")
    bob = open_page("Bob Stone")
    expect(person(ann, "bob-stone")).to_have_attribute("data-status", "online")
    before = int(time.time() * 1000)
    bob.get_by_role("button", name="Sign out").click()
    expect(person(ann, "bob-stone")).to_have_attribute("data-status", "offline")
    expect(person(ann, "bob-stone").locator('[data-role="last-seen"]')).to_have_text(
        "last seen just now"
    )
    seen = ann.evaluate("window.presence.hub.presence('bob-stone').lastSeen")
    assert isinstance(seen, int | float), seen
    assert before - 60_000 <= seen <= int(time.time() * 1000) + 5_000


def test_clear_after_sends_until_and_everyone_sees_it(open_page: OpenPage) -> None:
    """ "Clear after: 30 minutes" then Busy sends until ≈ now + 30 min in the status frame;
    Bob sees "Clears at …", Ann sees Bob busy "until …"."""
    ann = open_page("Ann Lee")
    bob = open_page("Bob Stone")
    frames = status_frames(bob)
    bob.reload()  # so the socket opens with the listener attached
    expect(bob.locator("#conn")).to_have_attribute("data-state", "ready")
    bob.get_by_label("Clear after").select_option("30m")
    sent_at = int(time.time() * 1000)
    bob.get_by_role("radio", name="Busy").check()
    expect(bob.locator("#save-state")).to_have_text("Saved — busy")
    busy = [f for f in frames if f.get("status") == "busy"]
    assert busy, frames
    until = busy[-1]["until"]
    assert sent_at + 29 * 60_000 <= until <= sent_at + 31 * 60_000 + 5_000, (sent_at, until)

    expect(person(ann, "bob-stone")).to_have_attribute("data-status", "busy")
    expect(person(ann, "bob-stone").locator('[data-role="until"]')).to_contain_text("until ")
    expect(bob.locator("#status-until")).to_contain_text("Clears at")
    assert ann.evaluate("window.presence.hub.presence('bob-stone').until") == until


def test_an_expired_until_returns_to_automatic_and_clears_the_text(open_page: OpenPage) -> None:
    """A status set until two seconds from now comes back to online with no text, for
    everyone, by itself."""
    ann = open_page("Ann Lee")
    bob = open_page("Bob Stone")
    bob.evaluate("""() => window.presence.hub.setStatus(
        {status: 'busy', text: 'Quick call', until: Date.now() + 2000})""")
    expect(person(ann, "bob-stone")).to_have_attribute("data-status", "busy")
    expect(person(ann, "bob-stone").locator('[data-role="text"]')).to_have_text("Quick call")
    expect(person(ann, "bob-stone")).to_have_attribute("data-status", "online")
    expect(person(ann, "bob-stone").locator('[data-role="text"]')).to_have_text("")
    expect(bob.get_by_role("radio", name="Online")).to_be_checked()
    expect(bob.locator("#status-until")).to_be_hidden()
