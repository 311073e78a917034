"""Presence join storm: N clients join one Pusher presence channel at a paced rate.

In one run, one server at a time (``bench/servers.py``): soketi 1.6 (the baseline), the hub
on memory, the hub on Redis, and two hubs on one Redis (``hub-redis-x2``: client i on hub
i mod 2). For each server:

1. N (``-n``, default 1,000) sockets connect and get their ``socket_id`` (not timed).
2. The storm: socket i sends ``pusher:subscribe`` for ``presence-bench`` (channel auth
   signed as an app's auth endpoint signs it, ``channel_data`` ``{"user_id": "u<i>"}``) at
   t0 + i / ``--rate`` (default 200 joins/s). Every socket keeps its own view of the
   channel: the ids of its ``subscription_succeeded`` plus the ``member_added`` and minus the
   ``member_removed`` it receives after it. The storm ends when every socket knows all N
   members and nothing arrived for ``--quiet-s``, or nothing arrived for ``--stall-s``, or
   ``--wait-s`` after the last join.
3. The 2-socket race (``--trials``, default 20): two fresh sockets (on the two hubs for
   ``hub-redis-x2``) subscribe to a fresh presence channel in the same instant.

Counted: **duplicates** (a ``member_added`` for a member the socket already knows, from its
own ``subscription_succeeded`` or an earlier ``member_added``, and a listed member the socket
had already been told of), **missing** (over the sockets that subscribed, the members they
never learned of by the end), **refusals** (``pusher:subscription_error``), and the
``subscription_succeeded`` latency (subscribe sent -> list received) p50/p99. The check:
every socket ends knowing every member. Prints one table and its command line; ``--json``
writes the raw figures. Run ``python bench/pusher_join_storm.py --help``; see bench/README.md.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import collections
import functools
import json
import math
import os
import re
import shlex
import sys
import tempfile
import textwrap
import time
from dataclasses import asdict, dataclass, field
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
    json_safe,
    machine_busy_s,
    percentile,
    process_cpu_s,
    raise_open_files,
    split,
)
from pusher_load import PONG, is_ping, open_socket, subscribe_presence
from servers import KINDS, Servers

CHANNEL = "presence-bench"
# The member's id inside ``data``, which is a JSON string (quotes escaped) in protocol 7.
USER_ID = re.compile(rb'user_id\\*"\s*:\s*\\*"([^"\\]+)')


@dataclass
class View:
    """One socket's view of its presence channel."""

    user: str
    expected: int
    sent_ns: int = 0
    succeeded_ns: int = 0
    complete_ns: int = 0
    members: set[str] = field(default_factory=set)
    duplicates: int = 0
    removed: int = 0
    refused: str = ""
    errors: int = 0

    def check_complete(self, now_ns: int) -> None:
        if not self.complete_ns and self.succeeded_ns and len(self.members) >= self.expected:
            self.complete_ns = now_ns


class Joiners(PipeWorker):
    """A share of the storm's sockets (and, in process 0, the 2-socket race)."""

    def __init__(self, pipe: Connection, index: int) -> None:
        super().__init__(pipe, index)
        self.clients: list[tuple[int, WsClient, str]] = []  # (index, socket, socket_id)
        self.last_frame_ns = 0
        self.closed = 0

    def handlers(self) -> dict[str, Handler]:
        return {"open": self.open, "storm": self.storm, "race": self.race, "close": self.close}

    # the sink of every WsClient of this process
    def frame(self, client: WsClient, payload: bytes, now_ns: int) -> None:
        self.last_frame_ns = now_ns
        view: View | None = client.state
        head = payload[:100]
        if view is None:
            if is_ping(payload):
                client.send(PONG)
            return
        if b"member_added" in head:
            m = USER_ID.search(payload)
            if m is None:
                view.errors += 1
                return
            uid = m[1].decode()
            if uid in view.members:
                view.duplicates += 1
            else:
                view.members.add(uid)
                view.check_complete(now_ns)
        elif b"member_removed" in head:
            m = USER_ID.search(payload)
            view.removed += 1
            if m is not None:
                view.members.discard(m[1].decode())
        elif b"subscription_succeeded" in head:
            ids = json.loads(json.loads(payload)["data"])["presence"]["ids"]
            view.succeeded_ns = now_ns
            for uid in map(str, ids):
                # told of already by a member_added that came before the list
                if uid in view.members:
                    view.duplicates += 1
                view.members.add(uid)
            view.check_complete(now_ns)
        elif b"subscription_error" in head:
            view.refused = payload[:300].decode("utf-8", "replace")
        elif is_ping(payload):
            client.send(PONG)
        elif b'"pusher:error"' in head:
            view.errors += 1

    def lost(self, client: WsClient) -> None:
        if not client.closed_here:
            self.closed += 1

    async def open(self, a: dict[str, Any]) -> dict[str, Any]:
        host, ports = a["host"], a["ports"]

        async def one(i: int) -> tuple[int, WsClient, str]:
            client, socket_id = await open_socket(host, ports[i % len(ports)], self)
            return i, client, socket_id

        self.clients = await bounded(48, [functools.partial(one, i) for i in a["indices"]])
        return {"open": len(self.clients)}

    async def storm(self, a: dict[str, Any]) -> dict[str, Any]:
        cpu0 = process_cpu_s()
        t0, rate, n = a["t0"], a["rate"], a["n"]
        for _, client, _ in self.clients:
            client.state = None
        for i, client, socket_id in self.clients:
            delay = t0 + i / rate - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            view = View(f"u{i}", n)
            client.state = view
            view.sent_ns = time.time_ns()
            client.send(subscribe_presence(CHANNEL, socket_id, view.user))
        views: list[View] = [c.state for _, c, _ in self.clients]
        last_sent_ns = time.time_ns()
        while True:
            await asyncio.sleep(0.05)
            now = time.time_ns()
            silent_s = (now - max(self.last_frame_ns, last_sent_ns)) / 1e9
            done = all(v.complete_ns or v.refused for v in views)
            if (done and silent_s >= a["quiet_s"]) or silent_s >= a["stall_s"]:
                break
            if now - last_sent_ns >= a["wait_s"] * 1e9:
                break
        refusals = collections.Counter(v.refused for v in views if v.refused)
        subscribed = [v for v in views if not v.refused]
        return {
            "cpu_s": process_cpu_s() - cpu0,
            "latency_us": array.array(
                "q", [(v.succeeded_ns - v.sent_ns) // 1000 for v in views if v.succeeded_ns]
            ).tobytes(),
            "no_list": sum(1 for v in subscribed if not v.succeeded_ns),
            "duplicates": sum(v.duplicates for v in views),
            "dup_clients": sum(1 for v in views if v.duplicates),
            "missing": sum(max(0, n - len(v.members)) for v in subscribed),
            "complete": sum(1 for v in views if v.complete_ns and len(v.members) >= n),
            "last_complete_ns": max((v.complete_ns for v in views), default=0),
            "removed": sum(v.removed for v in views),
            "refused": len(views) - len(subscribed),
            "refusals": dict(refusals.most_common(3)),
            "errors": sum(v.errors for v in views),
            "closed": self.closed,
            "last_sent_ns": max((v.sent_ns for v in views), default=0),
        }

    async def race(self, a: dict[str, Any] | None) -> dict[str, Any]:
        if a is None:
            return {}
        host, ports = a["host"], a["ports"]
        out = {"trials": 0, "dup_trials": 0, "duplicates": 0, "missing_trials": 0, "refused": 0}
        for t in range(a["trials"]):
            channel = f"presence-race-{t}"
            pair = [
                await open_socket(host, ports[0], self),
                await open_socket(host, ports[-1], self),
            ]
            views = [View(f"ra{t}", 2), View(f"rb{t}", 2)]
            frames = []
            for (client, socket_id), view in zip(pair, views, strict=True):
                client.state = view
                frames.append(subscribe_presence(channel, socket_id, view.user))
            # the same instant: both frames written in one turn of the loop
            for (client, _), view, frame in zip(pair, views, frames, strict=True):
                view.sent_ns = time.time_ns()
                client.send(frame)
            deadline = time.monotonic() + a["wait_s"]
            while time.monotonic() < deadline:
                await asyncio.sleep(0.02)
                done = all(v.complete_ns or v.refused for v in views)
                if done and time.time_ns() - self.last_frame_ns >= a["quiet_s"] * 1e9:
                    break
            dups = sum(v.duplicates for v in views)
            out["trials"] += 1
            out["duplicates"] += dups
            out["dup_trials"] += 1 if dups else 0
            out["missing_trials"] += 1 if any(len(v.members) < 2 for v in views) else 0
            out["refused"] += sum(1 for v in views if v.refused)
            for client, _ in pair:
                client.state = None
                client.close()
        return out

    async def close(self, a: Any = None) -> dict[str, Any]:
        await self.close_all()
        return {}

    async def close_all(self) -> None:
        for _, client, _ in self.clients:
            client.close()
        self.clients = []
        await asyncio.sleep(0.2)  # let the close frames go out before the server stops
        self.closed = 0


@dataclass
class Storm:
    server: str
    clients: int
    duplicates: int
    dup_clients: int
    missing: int
    refused: int
    no_list: int
    removed: int
    complete: int
    errors: int
    closed: int
    p50_ms: float
    p99_ms: float
    converged_ms: float
    server_cpu_s: float
    redis_cpu_s: float
    gen_cpu_pct: float
    other_cpu_pct: float
    refusals: dict[str, int]
    race: dict[str, int]

    @property
    def checked(self) -> bool:
        return self.complete == self.clients


def measure(kind: str, pool: Pool, args: argparse.Namespace, logdir: Path) -> Storm:
    k = len(pool)
    n = args.clients
    with Servers(kind, logdir, members=n + 10) as srv:
        base = {"host": "127.0.0.1", "ports": srv.ports}
        t = time.monotonic()
        shares = split(list(range(n)), k)
        pool.call("open", [{**base, "indices": s} for s in shares], timeout=300)
        print(f"  {kind}: {n} sockets connected in {time.monotonic() - t:.1f} s", flush=True)
        t0 = time.time() + 0.5
        cpu0, redis0, busy0, wall0 = srv.cpu_s(), srv.redis_cpu_s(), machine_busy_s(), time.time()
        storm = {
            "t0": t0,
            "rate": args.rate,
            "n": n,
            "quiet_s": args.quiet_s,
            "stall_s": args.stall_s,
            "wait_s": args.wait_s,
        }
        rs = pool.call("storm", [storm] * k, timeout=n / args.rate + args.wait_s + 60)
        cpu1, redis1, busy1, wall1 = srv.cpu_s(), srv.redis_cpu_s(), machine_busy_s(), time.time()
        pool.call("close", [None] * k, timeout=30)
        # a late duplicate in the race comes within milliseconds of the joins: half a second
        # of silence ends a trial
        race_args = {**base, "trials": args.trials, "wait_s": 5.0, "quiet_s": 0.5}
        race = pool.call("race", [race_args] + [None] * (k - 1), timeout=args.trials * 10 + 30)[0]
    lat: array.array[int] = array.array("q")
    for r in rs:
        lat.frombytes(r["latency_us"])
    lat = array.array("q", sorted(lat))
    refusals: collections.Counter[str] = collections.Counter()
    for r in rs:
        refusals.update(r["refusals"])
    last = max(r["last_complete_ns"] for r in rs)
    complete = sum(r["complete"] for r in rs)
    server_cpu, redis_cpu = cpu1 - cpu0, redis1 - redis0
    gen_cpu = sum(r["cpu_s"] for r in rs)
    return Storm(
        server=kind,
        clients=n,
        duplicates=sum(r["duplicates"] for r in rs),
        dup_clients=sum(r["dup_clients"] for r in rs),
        missing=sum(r["missing"] for r in rs),
        refused=sum(r["refused"] for r in rs),
        no_list=sum(r["no_list"] for r in rs),
        removed=sum(r["removed"] for r in rs),
        complete=complete,
        errors=sum(r["errors"] for r in rs),
        closed=sum(r["closed"] for r in rs),
        p50_ms=percentile(lat, 0.50),
        p99_ms=percentile(lat, 0.99),
        # last join sent -> the last socket to know every member (when all of them did)
        converged_ms=(last - max(r["last_sent_ns"] for r in rs)) / 1e6
        if complete == n
        else math.nan,
        server_cpu_s=server_cpu,
        redis_cpu_s=redis_cpu if srv.redis is not None else math.nan,
        gen_cpu_pct=100.0 * gen_cpu / (wall1 - wall0),
        other_cpu_pct=max(
            0.0, 100.0 * (busy1 - busy0 - server_cpu - redis_cpu - gen_cpu) / (wall1 - wall0)
        ),
        refusals=dict(refusals.most_common(3)),
        race=race,
    )


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return "n/a"
    return f"{a / b:.2f}"


def table(servers: list[str], runs: dict[str, Storm], args: argparse.Namespace) -> list[str]:
    base = "soketi" if "soketi" in runs else None
    others = [s for s in servers if s != base] if base else []
    width = 46
    out = [
        f"{'':<{width}}"
        + "".join(f"{s:>13}" for s in servers)
        + "".join(f"{s + '/soketi':>20}" for s in others)
    ]

    def row(label: str, value: Any, f: str = "{:,}", ratios: bool = False) -> None:
        values = {s: value(runs[s]) for s in servers if s in runs}
        cells = "".join(f"{cell(values.get(s), f):>13}" for s in servers)
        if ratios and base:
            for s in others:
                cells += f"{ratio(values.get(s), values.get(base)):>20}"
        out.append(f"{label:<{width}}{cells}")

    row("duplicate member events", lambda r: r.duplicates)
    row("  sockets that saw a duplicate", lambda r: r.dup_clients)
    row("missing member entries at the end", lambda r: r.missing)
    row("refusals (subscription_error)", lambda r: r.refused)
    row("  subscribed, no subscription_succeeded", lambda r: r.no_list)
    row("member_removed received (nobody left)", lambda r: r.removed)
    row(f"sockets that ended with all {args.clients} members", lambda r: r.complete)
    row("subscription_succeeded p50 ms", lambda r: r.p50_ms, "{:.1f}", ratios=True)
    row("subscription_succeeded p99 ms", lambda r: r.p99_ms, "{:.1f}", ratios=True)
    row("last join -> every socket complete, ms", lambda r: r.converged_ms, "{:.0f}", ratios=True)
    row("server CPU s during the storm", lambda r: r.server_cpu_s, "{:.2f}", ratios=True)
    if any(s.startswith("hub-redis") for s in runs):
        row("  + Redis CPU s", lambda r: r.redis_cpu_s, "{:.2f}")
    row("load generators' CPU, % of a core", lambda r: r.gen_cpu_pct, "{:.0f}")
    row("other CPU on the machine, % of a core", lambda r: r.other_cpu_pct, "{:.0f}")
    row(f"2-socket race: trials with a duplicate /{args.trials}", lambda r: r.race["dup_trials"])
    row("  duplicate member events", lambda r: r.race["duplicates"])
    row("  trials with a member missing", lambda r: r.race["missing_trials"])
    row("  refusals", lambda r: r.race["refused"])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Presence join storm: N sockets join one Pusher presence channel at a "
        "paced rate, on soketi and on the hub (memory, Redis, two hubs on one Redis).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("-n", "--clients", type=int, default=1000, help="sockets that join")
    ap.add_argument("--rate", type=float, default=200.0, help="joins per second")
    ap.add_argument("--trials", type=int, default=20, help="2-socket race trials")
    ap.add_argument(
        "--servers", default="soketi,hub,hub-redis,hub-redis-x2", help=f"of {', '.join(KINDS)}"
    )
    ap.add_argument("--procs", type=int, default=2, help="load-generator processes")
    ap.add_argument("--quiet-s", type=float, default=1.0, help="silence that ends a complete storm")
    ap.add_argument(
        "--stall-s", type=float, default=10.0, help="silence that ends an incomplete storm"
    )
    ap.add_argument("--wait-s", type=float, default=120.0, help="longest wait after the last join")
    ap.add_argument("--json", metavar="PATH", help="also write the raw figures as JSON")
    args = ap.parse_args(argv)
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    for s in servers:
        if s not in KINDS:
            ap.error(f"--servers takes {', '.join(KINDS)}, got {s!r}")
    raise_open_files(args.clients * 2 + 256)

    command = "python bench/pusher_join_storm.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    print(f"$ {command}".rstrip())
    print(
        f"presence join storm: {args.clients} sockets join {CHANNEL} at {args.rate:g}/s, "
        f"{args.procs} load-generator processes; {os.cpu_count()} cores shared by everything; "
        f"load average at start {os.getloadavg()[0]:.2f}"
    )
    logdir = Path(tempfile.mkdtemp(prefix="bench-join-storm-"))
    started = time.monotonic()
    pool = Pool(args.procs, Joiners)
    runs: dict[str, Storm] = {}
    try:
        for kind in servers:
            runs[kind] = measure(kind, pool, args, logdir)
            r = runs[kind]
            print(
                f"  {kind}: {r.duplicates} duplicates, {r.missing} missing, {r.refused} refused,"
                f" p99 {r.p99_ms:.1f} ms; race: {r.race['dup_trials']}/{args.trials} trials "
                f"with a duplicate",
                flush=True,
            )
    finally:
        pool.close()
    print(
        f"\nresults ({time.monotonic() - started:.0f} s; load average now "
        f"{os.getloadavg()[0]:.2f}; server logs in {logdir})"
    )
    print("=" * 100)
    print(f"$ {command}".rstrip())
    for line in table(servers, runs, args):
        print(line)
    print("=" * 100)
    for kind, r in runs.items():
        verdict = "yes" if r.checked else f"NO ({r.clients - r.complete} sockets incomplete)"
        print(f"check, every socket ends with every member: {kind}: {verdict}")
        for message, count in r.refusals.items():
            print(f"  {kind} refused {count}x: {message}")
        if r.errors or r.closed:
            print(f"  {kind}: {r.errors} pusher:error frames, {r.closed} sockets closed by it")
    notes = (
        "notes: a duplicate is a member_added for a member the socket already knew (listed in "
        "its own subscription_succeeded or added before), or a listed member it had been told "
        "of before its list came. Missing counts, over the sockets that were not refused, the "
        "members each never learned of. Latency = subscribe sent -> subscription_succeeded "
        "received (one host, one clock). The servers ran one after the other; the sockets "
        "connected before the storm, so only the joins are paced."
    )
    print(textwrap.fill(notes, 100, subsequent_indent="  "))
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
