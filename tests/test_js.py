"""Runs the browser library's node tests (tests/js, node:test) so one pytest covers them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
