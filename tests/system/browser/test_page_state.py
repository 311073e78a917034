"""The live page's honest state, keyboard, focus, layout and accessibility, in Chromium.

This module's hub has a 30 s offline grace, so "offline at once" after a sign-out can only
come from the sign-out itself skipping the grace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.support.hubproc import HubProcess
from tests.system.browser.conftest import assert_no_horizontal_overflow, axe_violations

OpenPage = Callable[..., Page]

pytestmark = pytest.mark.browser

LONG_NAME = "Maximiliana Wolfeschlegelsteinhausenbergerdorff-Featherstonehaugh"
LONG_ROOM = "quarterly-planning-and-architecture-review-for-the-platform-team-2026"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubProcess]:
    process = HubProcess(
        log_path=tmp_path / "hub.log",
        env={"HUB_OFFLINE_GRACE_S": "30", "HUB_SECRET": "", "HUB_ADMIN_KEY": "",
             "XDG_STATE_HOME": str(tmp_path / "state")},
    )  # fmt: skip
    process.start()
    try:
        yield process
    finally:
        process.stop()
    process.assert_no_tracebacks()


def person(page: Page, user_id: str) -> Locator:
    return page.locator(f'#people .person[data-user="{user_id}"]')


def join(page: Page, room: str) -> None:
    page.get_by_label("Room name").fill(room)
    page.get_by_role("button", name="Join").click()
    expect(page.locator(f'[data-room="{room}"] .room-count')).not_to_have_text("Joining…")


def test_sign_out_is_offline_at_once_and_every_page_lists_the_same(open_page: OpenPage) -> None:
    """Signing out skips the 30 s grace; a page opened afterwards lists Bob offline too,
    like the page that watched him go."""
    ann = open_page("Ann Lee")
    bob = open_page("Bob Stone")
    expect(person(ann, "bob-stone")).to_have_attribute("data-status", "online")
    bob.get_by_role("button", name="Sign out").click()
    expect(person(ann, "bob-stone")).to_have_attribute("data-status", "offline", timeout=10_000)
    expect(ann.locator("#feed")).to_contain_text("Bob Stone went offline")

    carol = open_page("Carol Diaz")
    expect(person(carol, "bob-stone")).to_have_attribute("data-status", "offline")
    expect(person(carol, "ann-lee")).to_have_attribute("data-status", "online")
    for page in (ann, carol):
        expect(page.locator('[data-count="all"]')).to_have_text("3")
        expect(page.locator('[data-count="offline"]')).to_have_text("1")


def test_focus_heading_and_keyboard_status(open_page: OpenPage) -> None:
    """After sign-in focus is on the app's h1; arrowing through the statuses sends nothing
    until Enter, which sends the one chosen."""
    ann = open_page("Ann Lee")
    bob = open_page("Bob Stone")
    expect(bob.locator("h1:visible, h1.visually-hidden")).to_have_count(1)
    assert bob.evaluate("document.activeElement.id") == "app-title"
    expect(person(ann, "bob-stone")).to_have_attribute("data-status", "online")

    bob.get_by_role("radio", name="Online").focus()
    bob.keyboard.press("ArrowRight")  # Away
    bob.keyboard.press("ArrowRight")  # Busy
    expect(bob.get_by_role("radio", name="Busy")).to_be_checked()
    expect(bob.locator("#save-state")).to_have_text("Press Enter to set busy")
    bob.keyboard.press("Enter")
    expect(bob.locator("#save-state")).to_have_text("Saved — busy")
    expect(person(ann, "bob-stone")).to_have_attribute("data-status", "busy")
    feed = ann.locator("#feed").inner_text()
    assert "Bob Stone is now away" not in feed, feed

    # Arrowing away and leaving the group without Enter puts the real status back.
    bob.keyboard.press("ArrowLeft")
    expect(bob.get_by_role("radio", name="Away")).to_be_checked()
    bob.get_by_label("Status text").focus()
    expect(bob.get_by_role("radio", name="Busy")).to_be_checked()
    assert bob.evaluate("window.presence.hub.chosen") == "busy"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_violations(
    open_page: OpenPage, scheme: str, screenshots: Path
) -> None:
    """axe-core on the signed-in page with people in every status, a room and the feed."""
    ann = open_page("Ann Lee", color_scheme=scheme)
    bob = open_page("Bob Stone")
    carol = open_page("Carol Diaz")
    bob.get_by_role("radio", name="Busy").check()
    carol.get_by_role("radio", name="Away").check()
    join(ann, "design")
    expect(person(ann, "bob-stone")).to_have_attribute("data-status", "busy")
    expect(person(ann, "carol-diaz")).to_have_attribute("data-status", "away")
    carol.get_by_role("button", name="Sign out").click()
    expect(person(ann, "carol-diaz")).to_have_attribute("data-status", "offline")
    ann.get_by_label("Status text").fill("Reviewing")
    ann.get_by_role("button", name="Save").click()
    expect(ann.locator("#save-state")).to_have_text("Status text saved")
    expect(ann.locator("#toast")).to_be_hidden()
    ann.screenshot(path=str(screenshots / f"axe-{scheme}.png"), full_page=True)
    violations = axe_violations(ann)
    assert not violations, "\n".join(violations)


def test_no_horizontal_overflow_with_long_names(
    open_page: OpenPage, browser: Browser, hub: HubProcess, screenshots: Path
) -> None:
    """A long name and a long room name fit at 1280 px and at 390 px (and /docs at 390 px)."""
    other = open_page(LONG_NAME)
    other.get_by_label("Status text").fill("Working on " + "a-very-long-unbroken-word" * 4)
    other.get_by_role("button", name="Save").click()
    join(other, LONG_ROOM)
    for width, height in ((1280, 900), (390, 844)):
        page = open_page(f"Ann {LONG_NAME}", width=width, height=height)
        join(page, LONG_ROOM)
        room = page.locator(f'[data-room="{LONG_ROOM}"]')
        expect(room.locator(".member")).to_have_count(2)
        expect(page.locator("#toast")).to_be_hidden()
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(screenshots / f"long-names-{width}.png"), full_page=True)
        assert_no_horizontal_overflow(page)
        box = room.bounding_box()
        assert box is not None and box["x"] + box["width"] <= width, box

    docs = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        page = docs.new_page()
        page.goto(f"{hub.url}/docs")
        expect(page.locator("body")).to_be_visible()
        page.screenshot(path=str(screenshots / "docs-390.png"))
        assert_no_horizontal_overflow(page)
    finally:
        docs.close()
