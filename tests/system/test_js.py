"""Runs the browser library's node tests (tests/js, node:test) and type-checks its published
types (hub/static/hub.d.ts) with ``tsc --noEmit`` on an example app, so one pytest covers
them. The npm tools come from tests/js/package-lock.json (scripts/test runs ``npm ci``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "tests" / "js"


def test_js_library_node_tests_pass() -> None:
    """`node --test tests/js/` exits 0: msgpack, state maps, backoff, idle and the client."""
    node = shutil.which("node")
    assert node is not None, "node (v20+) is needed to test hub/static; install nodejs"
    result = subprocess.run(
        [node, "--test", "tests/js/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]


def test_typescript_types_check_on_the_example_app() -> None:
    """`tsc --noEmit` accepts tests/js/example/app.ts, which imports `presence-hub-client`
    through hub/static/package.json and has `@ts-expect-error` lines for misuse (an
    unused one is an error, so the types must also reject what they should)."""
    node = shutil.which("node")
    assert node is not None, "node (v20+) is needed for tsc; install nodejs"
    tsc = JS / "node_modules" / "typescript" / "bin" / "tsc"
    assert tsc.exists(), "typescript is missing: run `npm ci` in tests/js (scripts/test does)"
    result = subprocess.run(
        [node, str(tsc), "--noEmit", "-p", "tsconfig.json"],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
