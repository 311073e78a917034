"""Fan-out benchmark: status changes to N subscribed websocket clients, hub vs plain websockets.

In one run it measures two servers under the same load, each in its own process:

- ``plain``: ``bench/plain_server.py``, a minimal ``websockets`` broadcast server (the ceiling:
  no auth, no store, no coalescing, one frame per change per subscriber);
- ``hub``: ``python -m hub serve`` (memory store unless ``--store``), subscribers authenticated
  with ``hello`` and subscribed with ``sub {all: true}``.

Load generators run in ``--procs`` separate processes (never in a server's process). Each
holds a share of the N subscribers and of a pool of publisher connections (one user each,
round-robin, so no user changes twice within a coalescing tick). Publishers send ``status``
frames at a paced rate; every change's text carries ``~<step>~<publisher>~<seq>~<time_ns>``,
and every subscriber computes the latency of every user entry it receives. A hub ``delta``
frame may carry several users (the hub's per-tick coalescing); each user entry counts as one
delivery. A change counts as delivered to a subscriber once it got that change or a newer
state of the same user (the hub's contract: states, not events).

The offered change rate is stepped up until a step fails (p99 > --p99-ms or fewer than 95%
of the expected deliveries arrived, or the generators could not send the offered rate), then
one geometric midpoint is tried (a fixed-rate row comes first). Then, on a fresh server, RSS
per idle connection: (RSS after M idle connections - RSS before) / M, from /proc/PID/status;
also for ``bench/starlette_server.py``, a do-nothing Starlette endpoint on the hub's uvicorn
settings: the floor under the hub's own per-connection cost.

Everything binds to 127.0.0.1, is bounded in count and time, and stops by itself.
Run ``python bench/fanout.py --help``; see bench/README.md.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import math
import os
import re
import shlex
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from loadgen import (
    Handler,
    PipeWorker,
    Pool,
    RedisServer,
    WsClient,
    connect,
    cpu_s,
    free_port,
    machine_busy_s,
    percentile,
    raise_open_files,
    rss_kb,
    split,
    stop_process,
    wait_listening,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SECRET = "bench-secret-" + "x" * 24
ADMIN_KEY = "bench-admin-key-" + "y" * 16
DEFAULT_RATES = "50,100,200,400,800,1600,3200,6400,12800"
#: Node peers: bench/node/<script> (installed on first use, ``npm ci`` in bench/node).
NODE_SERVERS = {
    "node-ws": "ws_server.js",
    "node-sio": "sio_server.js",
    "node-sio-redis": "sio_server.js",  # with @socket.io/redis-adapter on its own Redis
}
#: socket.io's Engine.IO v4 websocket path, and its framing of the same events.
SIO_PATH = "/socket.io/?EIO=4&transport=websocket"
#: ``hub-redis-w2``: ``serve --workers 2`` on its own Redis (two nodes on one port).
SERVERS = ("plain", "hub", "hub-redis", "hub-redis-w2", *NODE_SERVERS)


def ensure_node_peers() -> None:
    """Install the Node peers from ``bench/node/package-lock.json`` unless they are there."""
    node_dir = HERE / "node"
    if (node_dir / "node_modules" / "ws").is_dir():
        return
    print(f"installing the Node peers: npm ci --prefix {node_dir}", flush=True)
    subprocess.run(
        ["npm", "ci", "--prefix", str(node_dir), "--no-audit", "--no-fund"],
        check=True,
        stdout=subprocess.DEVNULL,
    )


# -- the load-generator process ----------------------------------------------------------


@dataclass
class Counters:
    """What this process's subscribers received during the current step."""

    step: int = -1
    token: re.Pattern[bytes] = re.compile(rb"(?!)")
    received: int = 0
    frames: int = 0
    snapshots: int = 0
    latencies_us: array.array[int] = field(default_factory=lambda: array.array("q"))
    last_rx: float = 0.0
    lost: int = 0


class Worker(PipeWorker):
    """One load-generator process: subscribers, publishers, idle connections."""

    def __init__(self, pipe: Connection, index: int) -> None:
        super().__init__(pipe, index)
        self.c = Counters()
        self.subs: list[WsClient] = []
        self.pubs: list[tuple[WsClient, str]] = []
        self.idle: list[WsClient] = []
        self.kind = "hub"
        self.host = "127.0.0.1"
        self.port = 0
        self.last_frame_ns = 0

    # sink interface for WsClient
    def frame(self, client: WsClient, payload: bytes, now_ns: int) -> None:
        self.last_frame_ns = now_ns
        if payload.startswith((b'{"op":"delta"', b'42["delta"')):
            c = self.c
            c.frames += 1
            found = c.token.findall(payload)
            if found:
                c.received += len(found)
                c.last_rx = time.monotonic()
                lat = c.latencies_us
                seen = client.seen
                for pub, seq, ts in found:
                    lat.append((now_ns - int(ts)) // 1000)
                    seen[pub] = seq
        elif payload.startswith((b'{"op":"snapshot"', b'42["snapshot"')):
            self.c.snapshots += 1

    def lost(self, client: WsClient) -> None:
        self.c.lost += 1

    async def open(self, user: str, *, subscribe: bool, since_cursor: bool = False) -> WsClient:
        sio = self.kind.startswith("node-sio")
        client = await connect(self.host, self.port, SIO_PATH if sio else "/ws", self)
        cursor = None
        if sio:
            # Engine.IO sends its open packet ("0{...}"); "40" joins the default namespace.
            joined = client.expect(b"40")
            client.send(b"40")
            await asyncio.wait_for(joined, 15)
            if subscribe:
                snap = client.expect(b'42["snapshot"')
                client.send(b'42["sub"]')
                await asyncio.wait_for(snap, 30)
            return client
        if self.kind.startswith("hub"):
            from hub.model.auth import issue_token

            token = issue_token(SECRET, user, ttl_s=3600)
            ready = client.expect(b'{"op":"ready"')
            client.send(json.dumps({"op": "hello", "token": token}).encode())
            cursor = json.loads(await asyncio.wait_for(ready, 15))["cursor"]
        if subscribe:
            sub: dict[str, Any] = {"op": "sub", "all": True}
            if since_cursor and cursor is not None:
                sub["since"] = cursor
            snap = client.expect(b'{"op":"snapshot"')
            client.send(json.dumps(sub).encode())
            await asyncio.wait_for(snap, 30)
        return client

    async def open_many(
        self, users: list[str], *, subscribe: bool, since_cursor: bool = False
    ) -> list[WsClient]:
        sem = asyncio.Semaphore(48)

        async def one(user: str) -> WsClient:
            async with sem:
                return await self.open(user, subscribe=subscribe, since_cursor=since_cursor)

        return list(await asyncio.gather(*(one(u) for u in users)))

    async def setup(self, a: dict[str, Any]) -> dict[str, Any]:
        self.kind, self.host, self.port = a["kind"], a["host"], a["port"]
        pubs = await self.open_many(a["pubs"], subscribe=False)
        self.pubs = list(zip(pubs, a["pubs"], strict=True))
        # Subscribed from the cursor of their ready: the snapshot is what changed since (not
        # everyone online), so setting up N subscribers costs N, not N squared.
        self.subs = await self.open_many(a["subs"], subscribe=True, since_cursor=True)
        return {"subs": len(self.subs), "pubs": len(self.pubs)}

    async def step(self, a: dict[str, Any]) -> dict[str, Any]:
        step, rate, t0, duration = a["step"], a["rate"], a["t0"], a["duration"]
        c = self.c
        c.step = step
        # the text of a change: ~step~publisher~sequence~send time (ns)
        c.token = re.compile(rb'"~' + str(step).encode() + rb'~(\d+)~(\d+)~(\d+)"')
        for sub in self.subs:
            sub.seen = {}
        c.received = c.frames = c.snapshots = 0
        c.latencies_us = array.array("q")
        c.last_rx = time.monotonic()
        cpu0 = os.times()
        await asyncio.sleep(max(0.0, t0 - time.time()))
        start = time.monotonic()
        sent = 0
        pubs = [(client, user, user.rsplit("-", 1)[1]) for client, user in self.pubs]
        npubs = len(pubs)
        hub = self.kind.startswith("hub")
        sio = self.kind.startswith("node-sio")
        prefix = f"~{step}~"
        statuses = ("away", "busy")
        while True:
            elapsed = time.monotonic() - start
            if elapsed >= duration:
                break
            due = int(elapsed * rate) - sent
            for _ in range(max(0, due)):
                client, user, number = pubs[sent % npubs]
                seq = sent // npubs
                status = statuses[seq & 1]
                text = f"{prefix}{number}~{seq}~{time.time_ns()}"
                if hub:
                    msg = f'{{"op":"status","status":"{status}","text":"{text}"}}'
                elif sio:
                    msg = f'42["status",{{"id":"{user}","status":"{status}","text":"{text}"}}]'
                else:
                    msg = f'{{"op":"status","id":"{user}","status":"{status}","text":"{text}"}}'
                client.send(msg.encode())
                sent += 1
            await asyncio.sleep(0.004)
        send_elapsed = time.monotonic() - start
        # drain: at least 0.5 s, then until 0.3 s without deliveries, at most 3 s
        end = time.monotonic()
        while True:
            await asyncio.sleep(0.05)
            now = time.monotonic()
            if now - end >= 3.0 or (now - end >= 0.5 and now - c.last_rx >= 0.3):
                break
        cpu1 = os.times()
        c.step = -1
        c.token = re.compile(rb"(?!)")
        return {
            "sent": sent,
            "send_s": send_elapsed,
            "received": c.received,
            # a subscriber that got sequence k of a publisher has that change's state or a
            # newer one for all of 0..k: that is what the hub promises (states, not events)
            "covered": sum(int(q) + 1 for sub in self.subs for q in sub.seen.values()),
            "frames": c.frames,
            "snapshots": c.snapshots,
            "lat": c.latencies_us.tobytes(),
            "cpu_s": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
            "lost": c.lost,
        }

    async def quiet(self, a: dict[str, Any]) -> dict[str, Any]:
        """Wait until no frame arrived for ``a["quiet_s"]`` (a backlog of the last step drained)."""
        deadline = time.monotonic() + a["max_s"]
        while time.monotonic() < deadline:
            if time.time_ns() - self.last_frame_ns >= a["quiet_s"] * 1e9:
                return {"drained": True}
            await asyncio.sleep(0.05)
        return {"drained": False}

    async def idle_open(self, a: dict[str, Any]) -> dict[str, Any]:
        self.kind, self.host, self.port = a["kind"], a["host"], a["port"]
        opened = await self.open_many(a["users"], subscribe=True, since_cursor=True)
        self.idle.extend(opened)
        return {"idle": len(self.idle), "lost": self.c.lost}

    async def close_all(self) -> None:
        for client in [*self.subs, *(p for p, _ in self.pubs), *self.idle]:
            client.close()
        self.subs, self.pubs, self.idle = [], [], []
        await asyncio.sleep(0.2)
        self.c = Counters()

    async def close_conns(self, a: None) -> dict[str, Any]:
        await self.close_all()
        return {}

    def handlers(self) -> dict[str, Handler]:
        return {
            "setup": self.setup,
            "step": self.step,
            "quiet": self.quiet,
            "idle": self.idle_open,
            "close": self.close_conns,
        }


# -- the coordinator ---------------------------------------------------------------------


class Server:
    """A server under test, in its own process."""

    def __init__(self, kind: str, args: argparse.Namespace, logdir: Path) -> None:
        self.kind = kind
        self.port = free_port()
        self.log = logdir / f"{kind}-{self.port}.log"
        env = dict(os.environ)
        # A redis-server of its own, on a free port, no persistence.
        self.redis = RedisServer() if kind.endswith("-redis") or kind == "hub-redis-w2" else None
        if kind.startswith("hub"):
            self.cmd = [sys.executable, "-m", "hub", "serve", "--port", str(self.port)]
            env.update(
                HUB_SECRET=SECRET,
                HUB_ADMIN_KEY=ADMIN_KEY,
                HUB_LOG_FORMAT="text",
                HUB_LOG_LEVEL="warning",
                HUB_RATE_PER_S="100000",
                HUB_HOST="127.0.0.1",
            )
            if args.store:
                env["HUB_STORE"] = args.store
            if kind == "hub-redis-w2":
                self.cmd += ["--workers", "2"]
            if self.redis is not None:
                env["HUB_STORE"] = self.redis.url
        elif kind in NODE_SERVERS:
            ensure_node_peers()
            self.cmd = ["node", str(HERE / "node" / NODE_SERVERS[kind]), "--port", str(self.port)]
            if self.redis is not None:
                self.cmd += ["--redis", f"redis://127.0.0.1:{self.redis.port}"]
        else:
            script = HERE / f"{kind}_server.py"  # plain_server.py, starlette_server.py
            self.cmd = [sys.executable, str(script), "--port", str(self.port)]
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        if self.redis is not None:
            self.redis.__enter__()
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.cmd, env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
            )
        wait_listening(self.port, self.proc, self.kind, self.log)
        time.sleep(0.3)  # let the lifespan / loop settle
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        stop_process(self.proc)
        if self.redis is not None:
            self.redis.__exit__()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


@dataclass
class StepResult:
    server: str
    offered: float
    sent_rate: float
    deliveries_s: float
    delivered_pct: float
    frames_s: float
    p50_ms: float
    p99_ms: float
    server_cpu_pct: float
    server_us_per_delivery: float
    gen_cpu_pct: float
    other_cpu_pct: float
    snapshots: int
    coalesced_pct: float
    passed: bool
    why: str = ""
    label: str = ""


def run_step(
    pool: Pool, server: Server, step: int, rate: float, args: argparse.Namespace
) -> StepResult:
    k = len(pool.pipes)
    # start from an idle server: the backlog of an overloaded step must not spill over
    pool.call("quiet", [{"quiet_s": 0.5, "max_s": 20.0}] * k, timeout=30)
    t0 = time.time() + 0.3
    cpu0, busy0, wall0 = cpu_s(server.pid), machine_busy_s(), time.monotonic()
    results = pool.call(
        "step",
        [{"step": step, "rate": rate / k, "t0": t0, "duration": args.step_s}] * k,
        timeout=args.step_s + 10,
    )
    cpu1, busy1, wall1 = cpu_s(server.pid), machine_busy_s(), time.monotonic()
    sent = sum(r["sent"] for r in results)
    send_s = max(r["send_s"] for r in results)
    received = sum(r["received"] for r in results)
    covered = sum(r["covered"] for r in results)
    frames = sum(r["frames"] for r in results)
    lat: array.array[int] = array.array("q")
    for r in results:
        lat.frombytes(r["lat"])
    lat = array.array("q", sorted(lat))
    expected = sent * args.subscribers
    pct = 100.0 * covered / expected if expected else 0.0
    coalesced = 100.0 * (covered - received) / expected if expected else 0.0
    p50, p99 = percentile(lat, 0.50), percentile(lat, 0.99)
    sent_rate = sent / send_s if send_s else 0.0
    why = []
    if sent < 0.95 * rate * args.step_s:
        why.append("generator could not offer the rate")
    if pct < 95.0:
        why.append(f"{pct:.1f}% delivered")
    if not p99 <= args.p99_ms:
        why.append(f"p99 {p99:.0f} ms")
    wall = wall1 - wall0
    gen_cpu = 100.0 * sum(r["cpu_s"] for r in results) / wall
    server_cpu = 100.0 * (cpu1 - cpu0) / wall
    return StepResult(
        server=server.kind,
        offered=rate,
        sent_rate=sent_rate,
        deliveries_s=received / send_s if send_s else 0.0,
        delivered_pct=pct,
        frames_s=frames / send_s if send_s else 0.0,
        p50_ms=p50,
        p99_ms=p99,
        server_cpu_pct=server_cpu,
        server_us_per_delivery=(cpu1 - cpu0) * 1e6 / received if received else math.nan,
        gen_cpu_pct=gen_cpu,
        other_cpu_pct=max(0.0, 100.0 * (busy1 - busy0) / wall - server_cpu - gen_cpu),
        snapshots=sum(r["snapshots"] for r in results),
        coalesced_pct=coalesced,
        passed=not why,
        why=", ".join(why),
    )


STEP_HEADER = (
    f"{'server':<6} {'offered/s':>9} {'sent/s':>8} {'deliv/s':>9} {'deliv%':>7} "
    f"{'frames/s':>9} {'p50 ms':>7} {'p99 ms':>8} {'srvCPU%':>7} {'genCPU%':>7} {'othCPU%':>7}"
    "  result"
)


def fmt_step(r: StepResult) -> str:
    verdict = "pass" if r.passed else f"FAIL ({r.why})"
    if r.label:
        verdict = f"{verdict}  ({r.label})"
    if r.snapshots:
        verdict += f" [{r.snapshots} resync snapshots]"
    if r.coalesced_pct >= 0.05:
        verdict += f" [{r.coalesced_pct:.1f}% superseded in a tick]"
    return (
        f"{r.server:<6} {r.offered:>9.0f} {r.sent_rate:>8.0f} {r.deliveries_s:>9.0f} "
        f"{r.delivered_pct:>6.1f}% {r.frames_s:>9.0f} {r.p50_ms:>7.1f} {r.p99_ms:>8.1f} "
        f"{r.server_cpu_pct:>7.0f} {r.gen_cpu_pct:>7.0f} {r.other_cpu_pct:>7.0f}  {verdict}"
    )


def attempt(
    pool: Pool,
    server: Server,
    step_id: list[int],
    rate: float,
    args: argparse.Namespace,
    log: list[StepResult],
    label: str = "",
) -> StepResult:
    """One step; a failed step is run again (up to --retries times) and the best attempt
    counts: the machine is shared, a stall from outside must not end the search."""
    best: StepResult | None = None
    for n in range(1 + args.retries):
        step_id[0] += 1
        r = run_step(pool, server, step_id[0], rate, args)
        r.label = label if n == 0 else f"{label + ', ' if label else ''}retry {n}"
        print("  " + fmt_step(r), flush=True)
        log.append(r)
        if best is None or (r.passed and not best.passed):
            best = r
        if r.passed:
            break
    assert best is not None
    return best


def throughput(
    kind: str, pool: Pool, args: argparse.Namespace, logdir: Path, step_id: list[int]
) -> tuple[list[StepResult], StepResult | None, dict[float, StepResult]]:
    """Rate search and the fixed-rate row for one server; returns (steps, best, fixed)."""
    k = len(pool.pipes)
    subs = [f"sub-{i}" for i in range(args.subscribers)]
    pubs = [f"pub-{i}" for i in range(args.publishers)]
    steps: list[StepResult] = []
    best: StepResult | None = None
    with Server(kind, args, logdir) as server:
        t = time.monotonic()
        pool.call(
            "setup",
            [
                {"kind": kind, "host": "127.0.0.1", "port": server.port, "subs": s, "pubs": p}
                for s, p in zip(split(subs, k), split(pubs, k), strict=True)
            ],
            timeout=120,
        )
        print(
            f"  {kind}: {args.subscribers} subscribers + {args.publishers} publishers connected "
            f"in {time.monotonic() - t:.1f} s (server pid {server.pid})",
            flush=True,
        )
        time.sleep(0.5)
        fixed = {
            rate: attempt(pool, server, step_id, rate, args, steps, "fixed rate")
            for rate in args.fixed_rates
        }
        failed_rate = None
        for rate in args.rates:
            r = attempt(pool, server, step_id, rate, args, steps)
            if not r.passed:
                failed_rate = rate
                break
            best = r
        if failed_rate is not None and best is not None and args.refine:
            mid = round(math.sqrt(best.offered * failed_rate))
            if best.offered < mid < failed_rate:
                r = attempt(pool, server, step_id, mid, args, steps, "midpoint")
                if r.passed:
                    best = r
        pool.call("close", [None] * k, timeout=30)
    return steps, best, fixed


@dataclass
class RssResult:
    server: str
    connections: int
    before_kb: int
    after_kb: int

    @property
    def per_conn_kb(self) -> float:
        return (self.after_kb - self.before_kb) / self.connections


def idle_rss(kind: str, pool: Pool, args: argparse.Namespace, logdir: Path) -> RssResult:
    """RSS growth of a fresh server per idle (authenticated, subscribed) connection."""
    k = len(pool.pipes)
    with Server(kind, args, logdir) as server:
        warm = [f"warm-{i}" for i in range(args.warmup)]
        base = {"kind": kind, "host": "127.0.0.1", "port": server.port}
        pool.call("idle", [{**base, "users": u} for u in split(warm, k)], timeout=60)
        time.sleep(args.settle_s)
        before = rss_kb(server.pid)
        users = [f"idle-{i}" for i in range(args.idle)]
        t = time.monotonic()
        pool.call("idle", [{**base, "users": u} for u in split(users, k)], timeout=180)
        took = time.monotonic() - t
        time.sleep(args.settle_s)
        after = rss_kb(server.pid)
        print(
            f"  {kind}: {args.idle} idle connections opened in {took:.1f} s; "
            f"RSS {before / 1024:.1f} -> {after / 1024:.1f} MiB",
            flush=True,
        )
        pool.call("close", [None] * k, timeout=30)
    return RssResult(kind, args.idle, before, after)


def ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "n/a"
    return f"{a / b:.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Fan-out of status changes to N websocket subscribers: "
        "Presence Hub vs a plain `websockets` broadcast server, in one run.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("-n", "--subscribers", type=int, default=200, help="subscribed clients")
    ap.add_argument(
        "--publishers",
        type=int,
        default=0,
        help="publisher connections (one user each, used round-robin); 0 = enough "
        "that no user changes more than once per 125 ms at the highest rate",
    )
    ap.add_argument(
        "--rates",
        default=DEFAULT_RATES,
        help="offered change rates to step through (changes/s, comma-separated)",
    )
    ap.add_argument("--step-s", type=float, default=3.0, help="seconds of sending per step")
    ap.add_argument("--p99-ms", type=float, default=200.0, help="p99 latency limit of a step")
    ap.add_argument(
        "--retries",
        type=int,
        default=1,
        help="run a failed step again up to this many times (the best counts)",
    )
    ap.add_argument(
        "--no-refine",
        dest="refine",
        action="store_false",
        default=argparse.SUPPRESS,
        help="skip the midpoint between the last pass and the first failure (tried by default)",
    )
    ap.add_argument(
        "--fixed-rates",
        default="400",
        help="offered rates of the fixed-rate comparison rows (changes/s, comma-separated); "
        "with 2,000 subscribers 20/s is one change per 50 ms tick, 200/s offers 400k "
        "deliveries/s",
    )
    ap.add_argument("-m", "--idle", type=int, default=2000, help="idle connections for RSS")
    ap.add_argument(
        "--warmup", type=int, default=50, help="connections opened before the RSS baseline is read"
    )
    ap.add_argument("--settle-s", type=float, default=2.0, help="wait before reading RSS")
    ap.add_argument("--procs", type=int, default=2, help="load-generator processes")
    ap.add_argument("--servers", default="plain,hub", help="which servers to measure")
    ap.add_argument(
        "--no-floor",
        dest="floor",
        action="store_false",
        default=argparse.SUPPRESS,
        help="skip the idle-memory floor (a do-nothing Starlette endpoint under uvicorn, "
        "configured as the hub's; measured by default)",
    )
    ap.add_argument(
        "--store",
        default=argparse.SUPPRESS,
        help="hub store URL, e.g. redis://127.0.0.1:6379/0 (empty: HUB_STORE, else memory://)",
    )
    ap.add_argument("--skip-rss", action="store_true", help="skip the idle RSS measurement")
    ap.add_argument("--skip-throughput", action="store_true", help="only measure idle RSS")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = ap.parse_args(argv)
    args.refine = getattr(args, "refine", True)  # SUPPRESS keeps "(default: ...)" out of --help
    args.store = getattr(args, "store", "")
    args.floor = getattr(args, "floor", True)
    args.rates = [float(x) for x in args.rates.split(",") if x.strip()]
    args.fixed_rates = [float(x) for x in args.fixed_rates.split(",") if x.strip()]
    if args.publishers <= 0:
        args.publishers = max(100, math.ceil(max(args.rates + args.fixed_rates) * 0.125))
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    for s in servers:
        if s not in SERVERS:
            ap.error(f"--servers takes {', '.join(SERVERS)}, got {s!r}")

    need_fds = (args.idle + args.warmup + args.subscribers + args.publishers) * 2 + 256
    raise_open_files(need_fds)

    command = "python bench/fanout.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    cores = os.cpu_count()
    print(f"$ {command}".rstrip())
    print(
        f"fan-out benchmark: {args.subscribers} subscribers, {args.publishers} publisher "
        f"connections, {args.procs} load-generator processes, {args.step_s:g} s per step, "
        f"pass = p99 <= {args.p99_ms:g} ms and >= 95% delivered"
    )
    print(
        f"machine: {cores} cores, shared by the server under test AND the load generators "
        "(the servers run one at a time); loopback only; "
        f"load average at start {os.getloadavg()[0]:.2f}"
    )
    logdir = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    started = time.monotonic()
    pool = Pool(args.procs, Worker)
    all_steps: list[StepResult] = []
    best: dict[str, StepResult | None] = {}
    fixed: dict[str, dict[float, StepResult]] = {}
    rss: dict[str, RssResult] = {}
    step_id = [0]
    try:
        if not args.skip_throughput:
            print("\nrate search:")
            print("  " + STEP_HEADER)
            for kind in servers:
                steps, best[kind], fixed[kind] = throughput(kind, pool, args, logdir, step_id)
                all_steps.extend(steps)
        if not args.skip_rss:
            print("\nidle connections:")
            rss_servers = list(servers)
            if args.floor and "hub" in servers:
                rss_servers.insert(rss_servers.index("hub"), "starlette")
            for kind in rss_servers:
                rss[kind] = idle_rss(kind, pool, args, logdir)
    finally:
        pool.close()

    print(
        f"\nresults ({time.monotonic() - started:.0f} s; load average now "
        f"{os.getloadavg()[0]:.2f}; server logs in {logdir})"
    )
    print("=" * 78)
    if all_steps:
        print(STEP_HEADER)
        for r in all_steps:
            print(fmt_step(r))
        print()
    cols = [s for s in SERVERS if s in servers]
    others = [c for c in cols if c != "plain"] if "plain" in cols else []
    print(
        f"{'':<44}" + "".join(f"{c:>10}" for c in cols)
        + "".join(f"{c[:6] + '/pl':>10}" for c in others)
    )  # fmt: skip

    def row(label: str, values: dict[str, float | None], f: str = "{:.0f}") -> None:
        cells = "".join(
            f"{(f.format(values[c]) if values.get(c) is not None else '-'):>10}" for c in cols
        )
        cells += "".join(f"{ratio(values.get(c), values.get('plain')):>10}" for c in others)
        print(f"{label:<44}{cells}")

    if any(best.values()):
        row(
            f"max sustained changes/s (p99<={args.p99_ms:g}ms, >=95%)",
            {k: (v.offered if v else None) for k, v in best.items()},
        )
        row(
            "  deliveries/s at that rate",
            {k: (v.deliveries_s if v else None) for k, v in best.items()},
        )
        row(
            "  p99 ms at that rate",
            {k: (v.p99_ms if v else None) for k, v in best.items()},
            "{:.1f}",
        )
    for rate in args.fixed_rates:
        at = {k: v[rate] for k, v in fixed.items() if rate in v}
        if not at:
            continue
        offered = rate * args.subscribers
        row(
            f"fixed {rate:g} changes/s ({offered / 1000:g}k offered/s): deliv/s",
            {k: v.deliveries_s for k, v in at.items()},
        )
        row("  delivered % (coalesced count as delivered)",
            {k: v.delivered_pct for k, v in at.items()}, "{:.1f}")  # fmt: skip
        row("  p50 ms", {k: v.p50_ms for k, v in at.items()}, "{:.1f}")
        row("  p99 ms", {k: v.p99_ms for k, v in at.items()}, "{:.1f}")
        row("  server CPU %", {k: v.server_cpu_pct for k, v in at.items()})
        row("  server CPU us per delivery",
            {k: v.server_us_per_delivery for k, v in at.items()}, "{:.2f}")  # fmt: skip
    if rss:
        row(
            f"RSS per idle connection, KB (M={args.idle})",
            {k: v.per_conn_kb for k, v in rss.items()},
            "{:.1f}",
        )
        if "starlette" in rss:
            print(
                f"  floor: a do-nothing Starlette endpoint on the hub's uvicorn settings: "
                f"{rss['starlette'].per_conn_kb:.1f} KB per idle connection"
            )
    print("=" * 78)
    notes = (
        "notes: a hub delta frame carries every user changed in its tick (coalescing, "
        "HUB_TICK_MS=50 by default); each user entry counts as one delivery, so the hub sends "
        "far fewer frames than the plain server, which sends one frame per change per "
        "subscriber. deliv% counts a change as delivered when the subscriber got it or a newer "
        "state of the same user (the hub's contract: states, not events). Latency = receive "
        "time - publisher send time (time.time_ns, one host). CPU per delivery = the server "
        "process's CPU time during the step / deliveries received. All processes share "
        f"{cores} cores (othCPU% = everything outside the benchmark), so no server had a core "
        "to itself; the ratios compare servers measured one after the other in this run."
    )
    print(textwrap.fill(notes, 100, subsequent_indent="  "))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "command": command,
                    "steps": [r.__dict__ for r in all_steps],
                    "best": {k: (v.__dict__ if v else None) for k, v in best.items()},
                    "fixed": {
                        k: {str(r): x.__dict__ for r, x in v.items()} for k, v in fixed.items()
                    },
                    "rss": {
                        k: {**v.__dict__, "per_conn_kb": v.per_conn_kb} for k, v in rss.items()
                    },
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
