"""Subscribe storm: N ``/ws`` clients ask for the snapshot of ``all`` at about the same time.

In one run, one server at a time (``bench/servers.py``): the hub on memory and the hub on
Redis (a ``redis-server`` of its own). For each:

1. N (``-n``, default 2,000) sockets connect and send ``hello`` (a token signed with the
   hub's secret), each its own user, so N users are online (not timed).
2. The storm: every socket sends ``{"op":"sub","all":true}``, at most ``--in-flight``
   (default 100) awaiting their snapshot at a time across the generators, or, with
   ``--all-at-once``, every socket in the same instant. Each snapshot should list the N
   users (about 110 bytes each), so N snapshots are about N^2 x 110 bytes (440 MB at
   2,000); the count of users in each is checked.

Measured: the time from the first ``sub`` sent to the last snapshot received, the snapshot
bytes received in total, the per-socket time from its ``sub`` to its snapshot (p50/p99),
the server's CPU during the storm and its peak resident memory (VmHWM, and its growth over
the RSS before the storm). Prints one table and its command line; ``--json`` writes the raw
figures. Run ``python bench/subscribe_storm.py --help``; see bench/README.md.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import functools
import json
import math
import os
import shlex
import sys
import tempfile
import textwrap
import time
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadgen import (
    Handler,
    PipeWorker,
    Pool,
    WsClient,
    bounded,
    cell,
    connect,
    json_safe,
    machine_busy_s,
    percentile,
    process_cpu_s,
    raise_open_files,
    split,
)
from servers import HUB_SECRET, Servers

from hub.model.auth import issue_token

KINDS = ("hub", "hub-redis", "hub-redis-x2")
SUB = b'{"op":"sub","all":true}'
SNAPSHOT = b'{"op":"snapshot"'
#: Targets of the storm at 2,000 clients: the last snapshot within this many s.
TARGET_S = {"hub": 3.0, "hub-redis": 5.0}


@dataclass
class Wait:
    """One socket's sub and its snapshot."""

    sent_ns: int = 0
    got_ns: int = 0
    size: int = 0
    users: int = 0


class Subscribers(PipeWorker):
    """A share of the storm's sockets."""

    def __init__(self, pipe: Connection, index: int) -> None:
        super().__init__(pipe, index)
        self.clients: list[WsClient] = []
        self.closed = 0

    def handlers(self) -> dict[str, Handler]:
        return {"open": self.open, "storm": self.storm, "close": self.close}

    # the sink of every WsClient of this process
    def frame(self, client: WsClient, payload: bytes, now_ns: int) -> None:
        wait: Wait | None = client.state
        if wait is not None and not wait.got_ns and payload.startswith(SNAPSHOT):
            wait.got_ns = now_ns
            wait.size = len(payload)
            wait.users = payload.count(b'"id":')

    def lost(self, client: WsClient) -> None:
        if not client.closed_here:
            self.closed += 1

    async def open(self, a: dict[str, Any]) -> dict[str, Any]:
        host, ports = a["host"], a["ports"]

        async def one(i: int) -> WsClient:
            client = await connect(host, ports[i % len(ports)], "/ws", self)
            ready = client.expect(b'{"op":"ready"')
            token = issue_token(HUB_SECRET, f"storm-{i}", ttl_s=3600)
            client.send(json.dumps({"op": "hello", "token": token}).encode())
            await asyncio.wait_for(ready, 60)
            return client

        self.clients = await bounded(48, [functools.partial(one, i) for i in a["indices"]])
        return {"open": len(self.clients)}

    async def storm(self, a: dict[str, Any]) -> dict[str, Any]:
        cpu0 = process_cpu_s()
        waits = [Wait() for _ in self.clients]
        for client, wait in zip(self.clients, waits, strict=True):
            client.state = wait
        await asyncio.sleep(max(0.0, a["t0"] - time.time()))
        deadline = time.monotonic() + a["wait_s"]

        async def one(client: WsClient, wait: Wait, sem: asyncio.Semaphore) -> None:
            async with sem:
                snapshot = client.expect(SNAPSHOT)
                wait.sent_ns = time.time_ns()
                client.send(SUB)
                await asyncio.wait_for(snapshot, max(0.1, deadline - time.monotonic()))

        if a["all_at_once"]:
            futures = []
            for client, wait in zip(self.clients, waits, strict=True):
                futures.append(client.expect(SNAPSHOT))
                wait.sent_ns = time.time_ns()
                client.send(SUB)
            await asyncio.wait(futures, timeout=a["wait_s"])
        else:
            sem = asyncio.Semaphore(a["in_flight"])
            jobs = [one(c, w, sem) for c, w in zip(self.clients, waits, strict=True)]
            await asyncio.gather(*jobs, return_exceptions=True)
        got = [w for w in waits if w.got_ns]
        return {
            "cpu_s": process_cpu_s() - cpu0,
            "latency_us": array.array("q", [(w.got_ns - w.sent_ns) // 1000 for w in got]).tobytes(),
            "first_sent_ns": min((w.sent_ns for w in waits if w.sent_ns), default=0),
            "last_got_ns": max((w.got_ns for w in got), default=0),
            "snapshots": len(got),
            "bytes": sum(w.size for w in got),
            "short": sum(1 for w in got if w.users < a["n"]),
            "fewest_users": min((w.users for w in got), default=0),
            "closed": self.closed,
        }

    async def close(self, a: Any = None) -> dict[str, Any]:
        await self.close_all()
        return {}

    async def close_all(self) -> None:
        for client in self.clients:
            client.close()
        self.clients = []
        await asyncio.sleep(0.2)  # let the close frames go out before the server stops
        self.closed = 0


@dataclass
class Run:
    server: str
    clients: int
    mode: str
    last_snapshot_s: float
    snapshots: int
    short: int
    fewest_users: int
    megabytes: float
    p50_ms: float
    p99_ms: float
    server_cpu_s: float
    redis_cpu_s: float
    gen_cpu_pct: float
    other_cpu_pct: float
    rss_before_mib: float
    peak_rss_mib: float
    closed: int


def measure(kind: str, pool: Pool, args: argparse.Namespace, logdir: Path) -> Run:
    k = len(pool)
    n = args.clients
    with Servers(kind, logdir) as srv:
        t = time.monotonic()
        shares = split(list(range(n)), k)
        base = {"host": "127.0.0.1", "ports": srv.ports}
        pool.call("open", [{**base, "indices": s} for s in shares], timeout=600)
        print(f"  {kind}: {n} sockets hello'd in {time.monotonic() - t:.1f} s", flush=True)
        time.sleep(args.settle_s)
        rss_before = srv.rss_kb()
        t0 = time.time() + 0.5
        cpu0, redis0, busy0, wall0 = srv.cpu_s(), srv.redis_cpu_s(), machine_busy_s(), time.time()
        storm = {
            "t0": t0,
            "n": n,
            "all_at_once": args.all_at_once,
            "in_flight": max(1, args.in_flight // k),
            "wait_s": args.wait_s,
        }
        rs = pool.call("storm", [storm] * k, timeout=args.wait_s + 60)
        cpu1, redis1, busy1, wall1 = srv.cpu_s(), srv.redis_cpu_s(), machine_busy_s(), time.time()
        peak = srv.peak_rss_kb()
        pool.call("close", [None] * k, timeout=30)
    lat: array.array[int] = array.array("q")
    for r in rs:
        lat.frombytes(r["latency_us"])
    lat = array.array("q", sorted(lat))
    snapshots = sum(r["snapshots"] for r in rs)
    first = min(r["first_sent_ns"] for r in rs if r["first_sent_ns"])
    server_cpu, redis_cpu = cpu1 - cpu0, redis1 - redis0
    gen_cpu = sum(r["cpu_s"] for r in rs)
    return Run(
        server=kind,
        clients=n,
        mode="all at once" if args.all_at_once else f"{args.in_flight} in flight",
        last_snapshot_s=(max(r["last_got_ns"] for r in rs) - first) / 1e9
        if snapshots == n
        else math.nan,
        snapshots=snapshots,
        short=sum(r["short"] for r in rs),
        fewest_users=min(r["fewest_users"] for r in rs),
        megabytes=sum(r["bytes"] for r in rs) / 1e6,
        p50_ms=percentile(lat, 0.50),
        p99_ms=percentile(lat, 0.99),
        server_cpu_s=server_cpu,
        redis_cpu_s=redis_cpu if srv.redis is not None else math.nan,
        gen_cpu_pct=100.0 * gen_cpu / (wall1 - wall0),
        other_cpu_pct=max(
            0.0, 100.0 * (busy1 - busy0 - server_cpu - redis_cpu - gen_cpu) / (wall1 - wall0)
        ),
        rss_before_mib=rss_before / 1024,
        peak_rss_mib=peak / 1024,
        closed=sum(r["closed"] for r in rs),
    )


def table(servers: list[str], runs: dict[str, Run], args: argparse.Namespace) -> list[str]:
    width = 44
    out = [f"{'':<{width}}" + "".join(f"{s:>13}" for s in servers)]

    def row(label: str, value: Any, f: str = "{:,}") -> None:
        cells = "".join(f"{cell(value(runs[s]) if s in runs else None, f):>13}" for s in servers)
        out.append(f"{label:<{width}}{cells}")

    row("time to the last snapshot, s", lambda r: r.last_snapshot_s, "{:.2f}")
    row(f"snapshots received (of {args.clients})", lambda r: r.snapshots)
    row(f"  listing fewer than {args.clients} users", lambda r: r.short)
    row("snapshot bytes received in total, MB", lambda r: r.megabytes, "{:.1f}")
    row("per socket, sub -> snapshot, p50 ms", lambda r: r.p50_ms, "{:.1f}")
    row("per socket, sub -> snapshot, p99 ms", lambda r: r.p99_ms, "{:.1f}")
    row("server CPU s during the storm", lambda r: r.server_cpu_s, "{:.2f}")
    if any(s.startswith("hub-redis") for s in runs):
        row("  + Redis CPU s", lambda r: r.redis_cpu_s, "{:.2f}")
    row("server RSS before the storm, MiB", lambda r: r.rss_before_mib, "{:.1f}")
    row("server peak RSS (VmHWM), MiB", lambda r: r.peak_rss_mib, "{:.1f}")
    row("load generators' CPU, % of a core", lambda r: r.gen_cpu_pct, "{:.0f}")
    row("other CPU on the machine, % of a core", lambda r: r.other_cpu_pct, "{:.0f}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Subscribe storm: N /ws clients send sub {all: true} at about the same "
        "time, on the hub with the memory store and with Redis.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("-n", "--clients", type=int, default=2000, help="sockets (one user each)")
    ap.add_argument(
        "--in-flight", type=int, default=100, help="subs awaiting their snapshot at a time"
    )
    ap.add_argument(
        "--all-at-once", action="store_true", help="every socket sends its sub in one instant"
    )
    ap.add_argument("--servers", default="hub,hub-redis", help=f"of {', '.join(KINDS)}")
    ap.add_argument("--procs", type=int, default=2, help="load-generator processes")
    ap.add_argument("--settle-s", type=float, default=1.0, help="wait after the hellos")
    ap.add_argument("--wait-s", type=float, default=300.0, help="longest wait for the snapshots")
    ap.add_argument("--json", metavar="PATH", help="also write the raw figures as JSON")
    args = ap.parse_args(argv)
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    for s in servers:
        if s not in KINDS:
            ap.error(f"--servers takes {', '.join(KINDS)}, got {s!r}")
    raise_open_files(args.clients * 2 + 256)

    command = "python bench/subscribe_storm.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    mode = "all at once" if args.all_at_once else f"at most {args.in_flight} in flight"
    print(f"$ {command}".rstrip())
    print(
        f"subscribe storm: {args.clients} /ws sockets send sub {{all: true}}, {mode}; "
        f"{args.procs} load-generator processes; {os.cpu_count()} cores shared by everything; "
        f"load average at start {os.getloadavg()[0]:.2f}"
    )
    logdir = Path(tempfile.mkdtemp(prefix="bench-subscribe-storm-"))
    started = time.monotonic()
    pool = Pool(args.procs, Subscribers)
    runs: dict[str, Run] = {}
    try:
        for kind in servers:
            runs[kind] = r = measure(kind, pool, args, logdir)
            print(
                f"  {kind}: last snapshot after {r.last_snapshot_s:.2f} s, {r.snapshots} "
                f"snapshots, {r.megabytes:.1f} MB, p99 {r.p99_ms:.1f} ms",
                flush=True,
            )
    finally:
        pool.close()
    print(
        f"\nresults ({time.monotonic() - started:.0f} s; load average now "
        f"{os.getloadavg()[0]:.2f}; server logs in {logdir})"
    )
    print("=" * 84)
    print(f"$ {command}".rstrip())
    for line in table(servers, runs, args):
        print(line)
    print("=" * 84)
    for kind, r in runs.items():
        if r.closed:
            print(f"  {kind} closed {r.closed} sockets during the storm")
        if kind in TARGET_S:
            verdict = (
                ("met" if r.last_snapshot_s <= TARGET_S[kind] else "not met")
                if r.clients >= 2000
                else f"not judged with {r.clients} sockets"
            )
            print(
                f"target, 2,000 sockets, the last snapshot within {TARGET_S[kind]:g} s on {kind}:"
                f" {verdict} ({r.last_snapshot_s:.2f} s)"
            )
    notes = (
        "notes: time to the last snapshot = from the first sub sent to the last snapshot "
        "received, complete, by its socket (one host, one clock). A snapshot lists every "
        "online user, so the bytes grow as N^2: they are the floor of the storm's cost. "
        "CPU is the hub processes' during the storm ('+ Redis': the redis-server's). The "
        "sockets connected and said hello before the storm; only the subs are timed."
    )
    print(textwrap.fill(notes, 84, subsequent_indent="  "))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                json_safe({"command": command, "runs": {k: asdict(v) for k, v in runs.items()}}),
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
