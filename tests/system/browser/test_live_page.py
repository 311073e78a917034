"""The live page in real Chromium against a real hub: presence as people see it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.support.hubproc import HubProcess
from tests.system.browser.conftest import assert_no_horizontal_overflow

OpenPage = Callable[..., Page]

pytestmark = pytest.mark.browser

HIDE = """() => {
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});
  Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
  document.dispatchEvent(new Event('visibilitychange'));
}"""
SHOW = """() => {
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'visible'});
  Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});
  document.dispatchEvent(new Event('visibilitychange'));
}"""


def person(page: Page, user_id: str) -> Locator:
    """The row for ``user_id`` in the People list."""
    return page.locator(f'#people .person[data-user="{user_id}"]')


def choose(page: Page, label: str) -> None:
    """Pick a status in the page's own selector."""
    page.get_by_role("radio", name=label).check()


def set_text(page: Page, text: str) -> None:
    page.get_by_label("Status text").fill(text)
    page.get_by_label("Status text").press("Enter")


def status_of(page: Page, user_id: str) -> str | None:
    return person(page, user_id).get_attribute("data-status")


def test_two_users_see_each_other_and_status_changes(
    open_page: OpenPage, screenshots: Path
) -> None:
    """Ann (JSON) and Bob (msgpack) see each other online, then every status and text change."""
    ann = open_page("Ann Lee")
    bob = open_page("Bob Stone", "?proto=msgpack")
    expect(person(ann, "bob-stone")).to_have_attribute("data-status", "online")
    expect(person(bob, "ann-lee")).to_have_attribute("data-status", "online")
    expect(ann.locator('[data-count="online"]')).to_have_text("2")
    expect(ann.locator("#feed")).to_contain_text("Bob Stone came online")

    choose(bob, "Busy")
    set_text(bob, "In a meeting until 3")
    expect(person(ann, "bob-stone")).to_have_attribute("data-status", "busy")
    expect(person(ann, "bob-stone").locator('[data-role="text"]')).to_have_text(
        "In a meeting until 3"
    )
    expect(bob.locator("#save-state")).to_have_text("Status text saved")
    expect(ann.locator('[data-count="busy"]')).to_have_text("1")
    expect(ann.locator("#feed")).to_contain_text("Bob Stone is now busy")
    expect(ann.locator("#feed")).to_contain_text(
        "Bob Stone set their status to “In a meeting until 3”"
    )
    expect(person(bob, "bob-stone")).to_have_attribute("data-status", "busy")
    expect(bob.locator("#appear")).to_have_attribute("data-status", "busy")

    choose(bob, "Invisible")
    expect(person(ann, "bob-stone")).to_have_attribute("data-status", "offline")
    expect(bob.locator("#appear-text")).to_contain_text("Invisible")
    expect(bob.locator("#save-state")).to_have_text("Saved — invisible")

    choose(ann, "Away")
    expect(person(bob, "ann-lee")).to_have_attribute("data-status", "away")

    choose(bob, "Online")
    expect(person(ann, "bob-stone")).to_have_attribute("data-status", "online")
    expect(person(ann, "bob-stone").locator('[data-role="text"]')).to_have_text(
        "In a meeting until 3"
    )
    set_text(bob, "")
    expect(person(ann, "bob-stone").locator('[data-role="text"]')).to_have_text("")
    ann.screenshot(path=str(screenshots / "two-users.png"), full_page=True)


def test_idle_page_goes_away_and_comes_back(open_page: OpenPage, screenshots: Path) -> None:
    """No input for ?idle seconds, or a hidden page, reports away; input brings it back."""
    ann = open_page("Ann Lee")
    bob = open_page("Bob Stone", "?idle=3")
    expect(person(ann, "bob-stone")).to_have_attribute("data-status", "away")
    expect(bob.locator("#appear-text")).to_contain_text("idle")
    expect(bob.get_by_role("radio", name="Online")).to_be_checked()
    expect(ann.locator("#feed")).to_contain_text("Bob Stone is now away")
    bob.screenshot(path=str(screenshots / "idle-away.png"), full_page=True)

    bob.mouse.move(40, 40)
    bob.mouse.move(300, 200)
    expect(person(ann, "bob-stone")).to_have_attribute("data-status", "online")

    # Ann's page has the default idle time (minutes); hidden counts after 2 s.
    ann.evaluate(HIDE)
    expect(person(bob, "ann-lee")).to_have_attribute("data-status", "away")
    ann.evaluate(SHOW)
    expect(person(bob, "ann-lee")).to_have_attribute("data-status", "online")


def test_closing_the_tab_goes_offline_after_the_grace(open_page: OpenPage) -> None:
    """Closing Bob's tab shows him offline to Ann once the 1 s grace ran out."""
    ann = open_page("Ann Lee")
    bob = open_page("Bob Stone")
    expect(person(ann, "bob-stone")).to_have_attribute("data-status", "online")
    bob.context.close()
    expect(person(ann, "bob-stone")).to_have_attribute("data-status", "offline")
    expect(ann.locator("#feed")).to_contain_text("Bob Stone went offline")
    expect(ann.locator('[data-count="offline"]')).to_have_text("1")
    # A closing tab is hidden first; that must not show up as a flash of "away".
    assert "Bob Stone is now away" not in ann.locator("#feed").inner_text()


def test_reload_inside_the_grace_keeps_the_user_online(open_page: OpenPage) -> None:
    """A page reload reconnects with the stored token inside the grace: no offline flicker."""
    ann = open_page("Ann Lee")
    bob = open_page("Bob Stone")
    expect(person(ann, "bob-stone")).to_have_attribute("data-status", "online")
    bob.reload()
    expect(bob.locator("#conn")).to_have_attribute("data-state", "ready")
    expect(bob.locator("#me-name")).to_have_text("Bob Stone")
    # A change made after the grace expired orders the feed: nothing about Bob before it.
    choose(bob, "Busy")
    expect(person(ann, "bob-stone")).to_have_attribute("data-status", "busy")
    assert "Bob Stone went offline" not in ann.locator("#feed").inner_text()


def test_page_recovers_after_the_hub_restarts(
    open_page: OpenPage, hub: HubProcess, screenshots: Path
) -> None:
    """Kill -9 and SIGTERM restarts on the same port: pages reconnect (the default backoff
    ceiling is 10 s) within 12 s and resync by cursor."""
    ann = open_page("Ann Lee")
    bob = open_page("Bob Stone", "?proto=msgpack")
    carol = open_page("Carol Diaz")
    for user in ("bob-stone", "carol-diaz"):
        expect(person(ann, user)).to_have_attribute("data-status", "online")

    hub.kill()
    expect(ann.locator("#conn")).to_have_attribute("data-state", "reconnecting")
    expect(ann.locator("#conn-text")).to_contain_text("Reconnecting")
    expect(ann.locator("#stale-note")).to_be_visible()
    ann.screenshot(path=str(screenshots / "reconnecting.png"))
    carol.context.close()  # Carol leaves while the hub is down

    # Not live: no "others see you online", no status change that cannot be saved.
    expect(ann.locator("#appear")).to_have_attribute("data-status", "offline")
    expect(ann.locator("#appear-text")).to_contain_text("Reconnecting")
    expect(ann.get_by_role("radio", name="Busy")).to_be_disabled()
    expect(person(ann, "ann-lee").locator('[data-role="status"]')).to_have_text("Reconnecting…")

    hub.start()  # same port
    for page in (ann, bob):
        expect(page.locator("#conn")).to_have_attribute("data-state", "ready", timeout=12_000)
    expect(ann.locator("#stale-note")).to_be_hidden()
    expect(ann.get_by_role("radio", name="Busy")).to_be_enabled()
    expect(person(ann, "bob-stone")).to_have_attribute("data-status", "online")
    expect(person(bob, "ann-lee")).to_have_attribute("data-status", "online")
    # No ghost: Carol never came back, so she is offline, not frozen online.
    expect(person(ann, "carol-diaz")).to_have_attribute("data-status", "offline")
    # The resumed subscriptions are live.
    choose(bob, "Busy")
    expect(person(ann, "bob-stone")).to_have_attribute("data-status", "busy")

    hub.stop()  # SIGTERM: the hub drains and closes the sockets with 1012
    expect(bob.locator("#conn")).not_to_have_attribute("data-state", "ready")
    hub.start()
    for page in (ann, bob):
        expect(page.locator("#conn")).to_have_attribute("data-state", "ready", timeout=12_000)
    choose(bob, "Away")
    expect(person(ann, "bob-stone")).to_have_attribute("data-status", "away")
    expect(person(bob, "bob-stone")).to_have_attribute("data-status", "away")
    ann.screenshot(path=str(screenshots / "after-restart.png"), full_page=True)


def test_rooms_show_their_members(open_page: OpenPage, screenshots: Path) -> None:
    """Joining a room lists its members live; leaving takes the user out."""
    ann = open_page("Ann Lee")
    bob = open_page("Bob Stone")
    for page in (ann, bob):
        page.get_by_label("Room name").fill("design")
        page.get_by_role("button", name="Join").click()
    room = ann.locator('[data-room="design"]')
    expect(room.locator('[data-user="bob-stone"]')).to_have_attribute("data-status", "online")
    expect(room.locator('[data-user="ann-lee"]')).to_be_visible()
    choose(bob, "Busy")
    expect(room.locator('[data-user="bob-stone"]')).to_have_attribute("data-status", "busy")
    ann.screenshot(path=str(screenshots / "rooms.png"), full_page=True)
    bob.locator('[data-room="design"]').get_by_role("button", name="Leave").click()
    expect(room.locator('[data-user="bob-stone"]')).to_have_count(0)
    expect(ann.locator("#feed")).to_contain_text("Bob Stone left #design")


def test_a_bad_token_returns_to_sign_in(open_page: OpenPage) -> None:
    """A token the hub refuses (close 4001) is not retried: one clear error on the sign-in
    form (no toast over the button, no banner), and the token is not kept."""
    page = open_page(None)
    page.get_by_label("User token").fill("not-a-valid-token")
    page.get_by_role("button", name="Connect with token").click()
    expect(page.locator("#signin-error")).to_contain_text("The hub refused this token")
    expect(page.locator("#signin-error")).to_contain_text("HUB_SECRET")
    expect(page.locator("#conn")).to_have_attribute("data-state", "idle")
    expect(page.locator("#toast")).to_be_hidden()
    expect(page.locator("#banner")).to_be_hidden()
    assert page.get_by_role("alert").count() == 1
    assert page.evaluate("sessionStorage.getItem('presence-hub.token')") is None


def test_a_name_of_only_spaces_says_so(open_page: OpenPage) -> None:
    page = open_page(None)
    page.get_by_label("Your name").fill("   ")
    page.get_by_role("button", name="Sign in as this name").click()
    expect(page.locator("#signin-error")).to_contain_text("cannot be empty or only spaces")
    expect(page.get_by_label("Your name")).to_be_focused()
    expect(page.locator("#conn")).to_have_attribute("data-state", "idle")


def test_screenshots_for_the_readme(open_page: OpenPage, screenshots: Path) -> None:
    """A populated page at desktop and phone widths, plus the sign-in screen."""
    signin = open_page(None)
    expect(signin.get_by_label("Your name")).to_be_visible()
    signin.screenshot(path=str(screenshots / "signin.png"))

    ann = open_page("Ann Lee", width=1280, height=900)
    bob = open_page("Bob Stone")
    carol = open_page("Carol Diaz")
    dan = open_page("Dan Okafor")
    erin = open_page("Erin Park")
    for page in (ann, bob, dan):
        page.get_by_label("Room name").fill("design")
        page.get_by_role("button", name="Join").click()
    set_text(ann, "Reviewing the Q3 roadmap")
    choose(bob, "Busy")
    set_text(bob, "In a meeting until 3pm")
    choose(carol, "Away")
    set_text(carol, "Out for lunch")
    set_text(dan, "Pairing on the mobile app")
    erin.context.close()
    expect(person(ann, "erin-park")).to_have_attribute("data-status", "offline")
    expect(person(ann, "carol-diaz").locator('[data-role="text"]')).to_have_text("Out for lunch")
    expect(person(ann, "dan-okafor").locator('[data-role="text"]')).to_have_text(
        "Pairing on the mobile app"
    )
    room = ann.locator('[data-room="design"]')
    expect(room.locator(".member")).to_have_count(3)
    expect(room.locator('[data-user="bob-stone"]')).to_have_attribute("data-status", "busy")
    ann.get_by_label("Status text").blur()
    ann.mouse.move(0, 0)
    expect(ann.locator("#toast")).to_be_hidden()
    ann.screenshot(path=str(screenshots / "desktop.png"), full_page=True)
    assert_no_horizontal_overflow(ann)
    if os.environ.get("HUB_UPDATE_README_SCREENSHOT") == "1":
        docs = Path(__file__).resolve().parents[3] / "docs"
        ann.screenshot(path=str(docs / "screenshot.png"), full_page=True)

    phone = open_page("Ann Lee", width=390, height=844)
    phone.get_by_label("Room name").fill("design")
    phone.get_by_role("button", name="Join").click()
    expect(person(phone, "bob-stone")).to_have_attribute("data-status", "busy")
    expect(phone.locator('[data-room="design"] .member')).to_have_count(3)
    expect(phone.locator("#toast")).to_be_hidden()
    phone.get_by_label("Room name").blur()
    phone.evaluate("window.scrollTo(0, 0)")
    phone.screenshot(path=str(screenshots / "phone.png"), full_page=True)
    assert_no_horizontal_overflow(phone)
