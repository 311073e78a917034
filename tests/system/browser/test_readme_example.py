"""The integration example of hub/static/README.md, run exactly as written.

The three files are cut out of the README's fenced blocks (```python server.py,
```js server.mjs, ```html index.html), written to a directory and started as an app
developer would: the hub with its own keys and HUB_CORS_ORIGINS naming the example's
origin, the token server (Python, then Node) on another port serving the page. Two
users in Chromium then see each other join, change status and leave.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.support.hubproc import TEST_SECRET, HubProcess, free_port

pytestmark = pytest.mark.browser

README = Path(__file__).resolve().parents[3] / "hub" / "static" / "README.md"
FENCE = re.compile(r"^```(\w+) (\S+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def example_files() -> dict[str, str]:
    """``{file name: text}`` for every fenced block of the README that names a file."""
    files = {name: body for _lang, name, body in FENCE.findall(README.read_text())}
    assert {"server.py", "server.mjs", "index.html"} <= files.keys(), files.keys()
    return files


@contextlib.contextmanager
def token_server(
    command: list[str], cwd: Path, env: dict[str, str], port: int, log: Path
) -> Iterator[str]:
    """Run the example's server until it answers GET / (deadline 20 s)."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=cwd, env={**os.environ, **env},
                                   stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        with httpx.Client(timeout=2) as client:
            while True:
                try:
                    if client.get(f"{url}/").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"the example server did not start:\n{log.read_text()}")
                try:
                    code = process.wait(timeout=0.05)
                except subprocess.TimeoutExpired:
                    continue
                pytest.fail(f"the example server exited with {code}:\n{log.read_text()}")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def member(page: Page, user: str) -> Locator:
    return page.locator(f'#members li[data-user="{user}"]')


@pytest.mark.parametrize("server", ["server.py", "server.mjs"])
def test_the_readme_example_runs_as_written(browser: Browser, tmp_path: Path, server: str) -> None:
    for name, body in example_files().items():
        (tmp_path / name).write_text(body)
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    hub = HubProcess(
        log_path=tmp_path / "hub.log", env={"HUB_CORS_ORIGINS": origin, "HUB_OFFLINE_GRACE_S": "1"}
    )
    hub.start()
    command = [sys.executable, server] if server.endswith(".py") else ["node", server]
    env = {"HUB_SECRET": TEST_SECRET, "HUB_URL": hub.url, "PORT": str(port)}
    errors: list[str] = []
    contexts = []
    try:
        with token_server(command, tmp_path, env, port, tmp_path / "server.log") as site:
            assert site == origin and site != hub.url

            def open_as(user: str, name: str) -> Page:
                context = browser.new_context()
                contexts.append(context)
                page = context.new_page()
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
                page.goto(f"{site}/?user={user}&name={name}")
                expect(page.locator("#connection")).to_have_text("Live")
                return page

            ann = open_as("ann", "Ann")
            expect(member(ann, "ann")).to_have_attribute("data-status", "online")
            bob = open_as("bob", "Bob")
            expect(ann.locator("#toasts")).to_contain_text("Bob joined")
            expect(member(ann, "bob")).to_have_text("Bob: online")
            expect(member(bob, "ann")).to_have_text("Ann: online")
            expect(bob.locator("#status")).to_have_value("online")

            bob.locator("#status").select_option("busy")
            expect(member(ann, "bob")).to_have_attribute("data-status", "busy")
            expect(member(bob, "bob")).to_have_attribute("data-status", "busy")

            bob.context.close()  # the hub's 1 s grace, then Bob is offline: he left
            expect(ann.locator("#toasts")).to_contain_text("Bob left")
            expect(member(ann, "bob")).to_have_attribute("data-status", "offline")
    finally:
        for context in contexts:
            with contextlib.suppress(Exception):
                context.close()
        hub.stop()
    assert not errors, errors
    hub.assert_no_tracebacks()
