"""/docs renders the OpenAPI document in a real browser (the system Chromium) without
fetching anything from elsewhere."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from hub.api.openapi import spec
from tests.support.hubproc import HubProcess, hub_fixture

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


CHROMIUM = "/usr/bin/chromium"


hub = hub_fixture()


def operations(document: dict[str, Any]) -> int:
    return sum(1 for item in document["paths"].values() for m in item if m in HTTP_METHODS)


@pytest.mark.browser
def test_docs_page_renders_in_chromium(hub: HubProcess, tmp_path: Path) -> None:
    """Chromium shows one entry per operation, expands one on click, and loads nothing from
    another host."""
    from playwright.sync_api import expect, sync_playwright

    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium")
    foreign: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
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
            browser.close()
    assert not foreign, f"/docs fetched from elsewhere: {foreign}"
