"""The servers under test of the Pusher and storm benchmarks, each a set of processes.

A kind names one deployment: ``soketi`` (soketi 1.6 from ``bench/soketi``, installed with
``npm ci`` on first use), ``hub`` (``python -m hub serve`` on the memory store),
``hub-redis`` (the hub on a ``redis-server`` of its own) and ``hub-redis-x2`` (two hub
processes on one ``redis-server``: two nodes, two ports). Every kind serves the same
Pusher app, ``app-id``/``app-key``/``app-secret`` (soketi's default, ``HUB_PUSHER_APPS`` on
the hub), so the clients and the signed HTTP calls are the same for all of them. A kind's
CPU and resident memory are read from ``/proc`` for its server processes, and separately
for its Redis, so a table can show both. Everything binds to 127.0.0.1 on free ports.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from loadgen import (
    RedisServer,
    cpu_s,
    free_port,
    peak_rss_kb,
    rss_kb,
    stop_process,
    wait_http_ok,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SOKETI_DIR = HERE / "soketi"
SOKETI_BIN = SOKETI_DIR / "node_modules" / "@soketi" / "soketi" / "bin" / "server.js"
APP_ID, APP_KEY, APP_SECRET = "app-id", "app-key", "app-secret"
HUB_SECRET = "bench-secret-" + "x" * 24
HUB_ADMIN_KEY = "bench-admin-key-" + "y" * 16
KINDS = ("soketi", "hub", "hub-redis", "hub-redis-x2")


def ensure_soketi() -> None:
    """Install soketi from ``bench/soketi/package-lock.json`` unless it is there already."""
    if SOKETI_BIN.exists():
        return
    print(f"installing soketi: npm ci --prefix {SOKETI_DIR.relative_to(ROOT)}", flush=True)
    subprocess.run(
        ["npm", "ci", "--prefix", str(SOKETI_DIR), "--no-audit", "--no-fund"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    if not SOKETI_BIN.exists():
        raise RuntimeError(f"npm ci finished but {SOKETI_BIN} is missing")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Servers:
    """One kind's processes, started on ``__enter__`` and stopped on ``__exit__``.

    ``members`` raises soketi's presence-channel cap (100 by default) for large channels;
    ``hub_env`` adds ``HUB_*`` settings to every hub process.
    """

    def __init__(
        self, kind: str, logdir: Path, *, members: int = 100, hub_env: dict[str, str] | None = None
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"server kind must be one of {', '.join(KINDS)}, got {kind!r}")
        self.kind = kind
        self.logdir = logdir
        self.members = members
        self.hub_env = hub_env or {}
        self.redis = RedisServer() if kind.startswith("hub-redis") else None
        self.ports: list[int] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def _spawn(self, cmd: list[str], env: dict[str, str], port: int, ready_url: str) -> None:
        log = self.logdir / f"{self.kind}-{port}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        self.ports.append(port)
        self.logs.append(log)
        wait_http_ok(ready_url, proc, self.kind, log, timeout=30)

    def __enter__(self) -> Servers:
        try:
            if self.redis is not None:
                self.redis.__enter__()
            if self.kind == "soketi":
                self._start_soketi()
            else:
                for _ in range(2 if self.kind.endswith("-x2") else 1):
                    self._start_hub()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start_soketi(self) -> None:
        ensure_soketi()
        port = free_port()
        env = dict(os.environ)
        env.update(
            SOKETI_HOST="127.0.0.1",
            SOKETI_PORT=str(port),
            # soketi also opens a metrics/usage server and a UDP discovery socket: both on
            # free ports, the discovery sent to loopback only (not broadcast on the LAN)
            SOKETI_METRICS_HOST="127.0.0.1",
            SOKETI_METRICS_SERVER_PORT=str(free_port()),
            SOKETI_CLUSTER_PORT=str(free_udp_port()),
            SOKETI_CLUSTER_HOST="127.0.0.1",
            SOKETI_CLUSTER_UNICAST_ADDRESSES="127.0.0.1",
            SOKETI_DEFAULT_APP_ID=APP_ID,
            SOKETI_DEFAULT_APP_KEY=APP_KEY,
            SOKETI_DEFAULT_APP_SECRET=APP_SECRET,
            SOKETI_PRESENCE_MAX_MEMBERS=str(max(100, self.members)),
        )
        self._spawn(["node", str(SOKETI_BIN), "start"], env, port, f"http://127.0.0.1:{port}/")

    def _start_hub(self) -> None:
        port = free_port()
        env = dict(os.environ)
        env.update(
            HUB_SECRET=HUB_SECRET,
            HUB_ADMIN_KEY=HUB_ADMIN_KEY,
            HUB_LOG_FORMAT="text",
            HUB_LOG_LEVEL="warning",
            HUB_RATE_PER_S="100000",
            HUB_HOST="127.0.0.1",
            HUB_PUSHER_APPS=f"{APP_ID}:{APP_KEY}:{APP_SECRET}",
            HUB_STORE=self.redis.url if self.redis is not None else "memory://",
        )
        env.update(self.hub_env)
        cmd = [sys.executable, "-m", "hub", "serve", "--port", str(port)]
        self._spawn(cmd, env, port, f"http://127.0.0.1:{port}/readyz")

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            stop_process(proc)
        if self.redis is not None:
            self.redis.__exit__()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def cpu_s(self) -> float:
        """CPU seconds of the server processes so far (Redis not included)."""
        return sum(cpu_s(pid) for pid in self.pids)

    def redis_cpu_s(self) -> float:
        """CPU seconds of this kind's redis-server so far (0 without one)."""
        return cpu_s(self.redis.pid) if self.redis is not None else 0.0

    def rss_kb(self) -> int:
        return sum(rss_kb(pid) for pid in self.pids)

    def peak_rss_kb(self) -> int:
        return sum(peak_rss_kb(pid) for pid in self.pids)

    def logs_text(self) -> str:
        return ", ".join(str(p) for p in self.logs)
