"""Real Chromium against a real hub process: fixtures for the live page's browser tests.

Each test gets its own hub (``python -m hub serve`` on a free port, memory store, a 1 s
offline grace, keys generated into the test's own directory so the page's dev sign-in is
on and tokens survive a restart) and opens pages in separate browser contexts, one per
user. Chromium is the system one at /usr/bin/chromium: when it is missing the tests fail,
they never skip. Every wait is a Playwright expectation with a deadline, never a sleep.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.hubproc import HubProcess

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ROOT = Path(__file__).resolve().parents[3]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
#: Longest wait for anything a page should show (a restart included).
DEADLINE_MS = 20_000
#: axe-core, installed by `npm ci` in tests/js (scripts/test does it).
AXE = ROOT / "tests" / "js" / "node_modules" / "axe-core" / "axe.min.js"

expect.set_options(timeout=DEADLINE_MS)


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """The system Chromium, headless (package-scoped: Playwright's sync API runs an event
    loop of its own, which must be gone before the asyncio tests of other packages run)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need the system Chromium "
                    "(apt-get install chromium)")  # fmt: skip
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubProcess]:
    """A hub with a 1 s offline grace and generated (dev) keys."""
    process = HubProcess(
        log_path=tmp_path / "hub.log",
        env={
            "HUB_OFFLINE_GRACE_S": "1",
            "HUB_SECRET": "",
            "HUB_ADMIN_KEY": "",
            # Generated dev keys are saved here, not in the home directory.
            "XDG_STATE_HOME": str(tmp_path / "state"),
        },
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


OpenPage = Callable[..., Page]


@pytest.fixture
def open_page(browser: Browser, hub: HubProcess) -> Iterator[OpenPage]:
    """``open_page(name, query="", width=1280, height=860, color_scheme="light")``: a
    signed-in page for ``name``.

    Each page has its own browser context (its own session storage). Uncaught script
    errors on any page fail the test.
    """
    contexts = []
    errors: list[str] = []

    def _open(
        name: str | None,
        query: str = "",
        *,
        width: int = 1280,
        height: int = 860,
        color_scheme: Literal["light", "dark"] = "light",
    ) -> Page:
        context = browser.new_context(
            viewport={"width": width, "height": height}, color_scheme=color_scheme
        )
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(f"{name}: {exc}"))
        page.goto(f"{hub.url}/{query}")
        if name is not None:
            sign_in(page, name)
        return page

    yield _open
    for context in contexts:
        with contextlib.suppress(Exception):  # a context the test already closed
            context.close()
    assert not errors, f"script errors on the page: {errors}"


def sign_in(page: Page, name: str) -> None:
    """Use the dev sign-in form and wait until the page is live."""
    page.get_by_label("Your name").fill(name)
    page.get_by_role("button", name="Sign in as this name").click()
    expect(page.locator("#conn")).to_have_attribute("data-state", "ready")


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """A plain static HTTP server for ``directory`` on a free port: a site on another origin
    than the hub (same host, other port). Yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def other_site(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """``(directory, base_url)``: an empty site on another origin; write pages into it."""
    site = tmp_path / "site"
    site.mkdir()
    with serve_directory(site) as url:
        yield site, url


def axe_violations(page: Page, impacts: tuple[str, ...] = ("serious", "critical")) -> list[str]:
    """Run axe-core in ``page``; the violations of those impacts, one line each."""
    assert AXE.exists(), f"{AXE} is missing: run `npm ci` in tests/js (scripts/test does)"
    page.add_script_tag(content=AXE.read_text())
    result = page.evaluate("""async () => {
      const r = await axe.run(document, {resultTypes: ['violations']});
      return r.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ') + ': ' + n.failureSummary)}));
    }""")
    return [f"{v['impact']} {v['id']} ({v['help']}): {v['nodes']}" for v in result
            if v["impact"] in impacts]  # fmt: skip


def assert_no_horizontal_overflow(page: Page) -> None:
    """The page is no wider than its viewport (nothing sticks out sideways)."""
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"page is {widths[0]} px wide in a {widths[1]} px viewport"
