"""``presence-hub serve --workers N``: N hub processes on one port, each its own node.

Each worker is a full ``presence-hub serve`` process with its own listening socket on the
same port (``SO_REUSEPORT``: the kernel spreads new connections across them) and its own
node id (``<HUB_NODE_ID>-<i>``), so the store sees N nodes and every rule that holds across
nodes (fan-out through the feed, graces, reaping) holds across workers. This needs a
shared store: the memory store lives inside one process, so it is refused.

The parent only supervises: SIGTERM/SIGINT go to every worker (each drains: 1012 to its
sockets, its connections to the grace); a worker that dies on its own is started again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import FrameType

from hub.ops.config import ConfigError, Settings

#: A worker that keeps dying this soon after its start is not restarted again.
MIN_LIFETIME_S = 5.0


def worker_command(argv: list[str]) -> list[str]:
    """``argv`` without ``--workers N`` (both spellings), plus the hidden ``--reuse-port``."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--workers":
            skip = True
            continue
        if arg.startswith("--workers="):
            continue
        out.append(arg)
    return [sys.executable, "-m", "hub", *out, "--reuse-port"]


def run_workers(settings: Settings, workers: int, argv: list[str]) -> int:
    if settings.store.startswith("memory"):
        raise ConfigError(
            f"--workers {workers} needs a shared store (HUB_STORE=redis://... or "
            "redis+cluster://...): the memory store lives inside one process, so N workers "
            "would be N separate hubs"
        )
    if settings.port == 0:
        raise ConfigError("--workers needs a fixed port (PORT or --port), not 0")
    env = {**os.environ, "HUB_SECRET": settings.secret, "HUB_ADMIN_KEY": settings.admin_key}
    command = worker_command(argv)
    stopping = False

    def start(i: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, env={**env, "HUB_NODE_ID": f"{settings.node_id}-{i}"})

    procs = [start(i) for i in range(workers)]
    started = [time.monotonic()] * workers

    def forward(sig: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(sig)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    print(f"presence-hub: {workers} workers on port {settings.port}", flush=True)
    while True:
        alive = False
        for i, proc in enumerate(procs):
            code = proc.poll()
            if code is None:
                alive = True
            elif not stopping and time.monotonic() - started[i] >= MIN_LIFETIME_S:
                print(f"presence-hub: worker {i} exited with {code}; starting it again",
                      file=sys.stderr, flush=True)  # fmt: skip
                procs[i], started[i] = start(i), time.monotonic()
                alive = True
        if not alive:
            break
        time.sleep(0.2)
    return max((proc.returncode or 0) for proc in procs)
