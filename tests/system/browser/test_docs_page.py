"""/docs renders the OpenAPI document in a real browser (the system Chromium) without
fetching anything from elsewhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from hub.api.openapi import spec
from tests.support.hubproc import HubProcess, hub_fixture

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


hub = hub_fixture()


def operations(document: dict[str, Any]) -> int:
    return sum(1 for item in document["paths"].values() for m in item if m in HTTP_METHODS)


@pytest.mark.browser
def test_docs_page_renders_in_chromium(browser: Browser, hub: HubProcess, tmp_path: Path) -> None:
    """Chromium shows one entry per operation, expands one on click, and loads nothing from
    another host (the package's one Chromium: a second Playwright in this process would
    clash with the first)."""
    foreign: list[str] = []
    page = browser.new_page()
    try:
        page.on("request", lambda r: foreign.append(r.url)
                if not r.url.startswith(hub.url) else None)  # fmt: skip
        page.goto(f"{hub.url}/docs")
        ops = page.locator("#content .op")
        expect(ops).to_have_count(operations(spec()), timeout=15_000)
        first = page.locator("#content .op", has_text="/api/v1/users.presence").first
        first.locator("header").click()
        expect(first.locator(".body")).to_be_visible()
        expect(first.locator(".body")).to_contain_text("full")
        expect(page.locator("nav a")).to_have_count(operations(spec()))
        page.screenshot(path=str(tmp_path / "docs.png"), full_page=False)
    finally:
        page.close()
    assert not foreign, f"/docs fetched from elsewhere: {foreign}"
