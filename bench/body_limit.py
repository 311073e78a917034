"""How much a refused oversized request body costs the hub: its peak resident memory.

A benchmark, not a test: it starts ``python -m hub serve`` (memory store), sends one
``--mb`` MB body to ``POST /api/1.1/users/list`` chunked (no Content-Length, so the size is
only known while it streams), and prints the status and the growth of the hub's peak RSS
(VmHWM in /proc). A baseline request with a small body goes first, in the same process, so
the figure is the oversized body's own cost.

    python bench/body_limit.py              # 64 MB
    python bench/body_limit.py --mb 256
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.support.hubproc import TEST_ADMIN_KEY, start_hub


def peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc status (Linux only)")


def body(megabytes: int) -> Iterator[bytes]:
    yield b'{"api_key":"'
    for _ in range(megabytes):
        yield b"k" * (1 << 20)
    yield b'"}'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=64, help="body size in MB (default 64)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        hub = start_hub(Path(tmp), {"HUB_LOG_LEVEL": "warning"})
        try:
            with httpx.Client(base_url=hub.url, timeout=120, trust_env=False) as http:
                small = http.post("/api/1.1/users/list", json={"api_key": TEST_ADMIN_KEY})
                before = peak_rss_kb(hub.pid)
                started = time.perf_counter()
                big = http.post("/api/1.1/users/list", content=body(args.mb),
                                headers={"Content-Type": "application/json"})  # fmt: skip
                elapsed = time.perf_counter() - started
                after = peak_rss_kb(hub.pid)
        finally:
            hub.stop()
    print(f"baseline request: {small.status_code}; peak RSS before: {before / 1024:.1f} MB")
    print(f"{args.mb} MB chunked body: {big.status_code} in {elapsed:.2f} s; "
          f"peak RSS after: {after / 1024:.1f} MB (+{(after - before) / 1024:.1f} MB)")  # fmt: skip


if __name__ == "__main__":
    main()
