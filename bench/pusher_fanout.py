"""Pusher fan-out benchmark: HTTP API events to N subscribers of one public channel.

In one run, one server at a time, each in its own processes: soketi 1.6 (the baseline),
the hub on memory and the hub on Redis (a ``redis-server`` of its own on a free port); see
``bench/servers.py``. For each server:

1. ``--warmup`` sockets subscribe to another channel, RSS is read (``/proc``), then N
   (``-n``) sockets subscribe to ``bench`` and, after ``--settle-s``, RSS is read again:
   **RSS per idle subscribed connection** = growth / N.
2. At each rate of ``--rates`` (events/s, default 5, 20, 50) and at ``--max`` (a high
   offered rate, to see what gets delivered), for ``--step-s`` seconds a publisher process
   triggers events on ``bench`` through ``POST /apps/app-id/events`` (signed as Pusher's
   server SDKs sign), each event's data ``~<step>~<seq>~<time_ns at the trigger>``. Every
   subscriber takes the latency of every event it receives (receipt time minus trigger
   time: one host, one clock). CPU per delivery = the server processes' CPU time during
   the step / events received by all subscribers.

The subscribers live in ``--procs`` load-generator processes and the publisher in one more,
never in a server's process (``bench/loadgen.py``). Prints every step as it runs, then one
table with the ratios hub/soketi, and the command line; ``--json PATH`` writes the raw
figures. Run ``python bench/pusher_fanout.py --help``; see bench/README.md.
"""

from __future__ import annotations

import argparse
import array
import asyncio
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
    json_safe,
    machine_busy_s,
    percentile,
    process_cpu_s,
    raise_open_files,
    split,
)
from pusher_load import (
    PONG,
    HttpConnection,
    is_ping,
    open_socket,
    signed_event,
    subscribe,
)
from servers import KINDS, Servers

CHANNEL = "bench"
EVENT = "bench"
NEVER = re.compile(rb"(?!)")
SUCCEEDED = b'{"event":"pusher_internal:subscription_succeeded"'


class Subscribers(PipeWorker):
    """A share of the subscribed sockets; counts and times the events of the current step."""

    def __init__(self, pipe: Connection, index: int) -> None:
        super().__init__(pipe, index)
        self.clients: list[WsClient] = []
        self.token = NEVER
        self.received = 0
        self.latencies_us: array.array[int] = array.array("q")
        self.last_rx_ns = 0
        self.last_frame_ns = 0
        self.closed = 0  # sockets the server closed
        self.errors = 0
        self.first_error = ""

    def handlers(self) -> dict[str, Handler]:
        return {"open": self.open, "quiet": self.quiet, "step": self.step, "close": self.close}

    # the sink of every WsClient of this process
    def frame(self, client: WsClient, payload: bytes, now_ns: int) -> None:
        self.last_frame_ns = now_ns
        m = self.token.search(payload)
        if m is not None:
            self.received += 1
            self.latencies_us.append((now_ns - int(m[1])) // 1000)
            self.last_rx_ns = now_ns
        elif is_ping(payload):
            client.send(PONG)
        elif b'"pusher:error"' in payload or b"subscription_error" in payload:
            self.errors += 1
            self.first_error = self.first_error or payload[:300].decode("utf-8", "replace")

    def lost(self, client: WsClient) -> None:
        if not client.closed_here:
            self.closed += 1

    async def open(self, a: dict[str, Any]) -> dict[str, Any]:
        host, ports, channel = a["host"], a["ports"], a["channel"]

        async def one(i: int) -> WsClient:
            client, _ = await open_socket(host, ports[i % len(ports)], self)
            subscribed = client.expect(SUCCEEDED)
            client.send(subscribe(channel))
            await asyncio.wait_for(subscribed, 30)
            return client

        opened = await bounded(48, [functools.partial(one, i) for i in a["indices"]])
        self.clients.extend(opened)
        return {"open": len(self.clients), "lost": self.closed}

    async def quiet(self, a: dict[str, Any]) -> dict[str, Any]:
        """Until no frame arrived for ``quiet_s``: the backlog of the last step is drained."""
        deadline = time.monotonic() + a["max_s"]
        while time.monotonic() < deadline:
            if time.time_ns() - self.last_frame_ns >= a["quiet_s"] * 1e9:
                return {"drained": True}
            await asyncio.sleep(0.05)
        return {"drained": False}

    async def step(self, a: dict[str, Any]) -> dict[str, Any]:
        self.token = re.compile(rb'"~' + str(a["step"]).encode() + rb'~\d+~(\d+)"')
        self.received = self.errors = 0
        self.latencies_us = array.array("q")
        self.last_rx_ns = 0
        cpu0 = process_cpu_s()
        end = a["t0"] + a["duration"]
        await asyncio.sleep(max(0.0, end - time.time()))
        # drain: at least 0.5 s, then until 0.3 s without an event, at most drain_s
        end_ns = time.time_ns()
        while True:
            await asyncio.sleep(0.05)
            now = time.time_ns()
            if now - end_ns >= a["drain_s"] * 1e9 or (
                now - end_ns >= 0.5e9 and now - max(self.last_rx_ns, end_ns) >= 0.3e9
            ):
                break
        self.token = NEVER
        return {
            "received": self.received,
            "lat": self.latencies_us.tobytes(),
            "last_rx_ns": self.last_rx_ns,
            "cpu_s": process_cpu_s() - cpu0,
            "lost": self.closed,
            "errors": self.errors,
            "first_error": self.first_error,
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
        self.first_error = ""


class Publisher(PipeWorker):
    """Triggers the events of a step through the HTTP API, paced, over keep-alive connections."""

    def handlers(self) -> dict[str, Handler]:
        return {"publish": self.publish}

    async def publish(self, a: dict[str, Any]) -> dict[str, Any]:
        step, rate, t0, duration = a["step"], a["rate"], a["t0"], a["duration"]
        free: asyncio.Queue[HttpConnection] = asyncio.Queue()
        for _ in range(a["conns"]):
            free.put_nowait(HttpConnection(a["host"], a["port"]))
        http_us: array.array[int] = array.array("q")
        errors: list[str] = []
        tasks: set[asyncio.Task[None]] = set()

        async def one(conn: HttpConnection, target: str, body: bytes) -> None:
            started = time.perf_counter_ns()
            try:
                status, answer = await conn.post(target, body)
                http_us.append((time.perf_counter_ns() - started) // 1000)
                if status != 200:
                    errors.append(f"{status} {answer[:200]!r}")
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                conn.close()
                errors.append(f"{type(exc).__name__}: {exc}")
            finally:
                free.put_nowait(conn)

        cpu0 = process_cpu_s()
        await asyncio.sleep(max(0.0, t0 - time.time()))
        sent = 0
        total = math.floor(rate * duration)
        while sent < total and time.time() < t0 + duration:
            delay = t0 + sent / rate - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            # every connection busy: the wait is the generator falling behind, and shows
            # as sent/s below the offered rate (the trigger time is taken after it)
            conn = await free.get()
            target, body = signed_event(a["channel"], EVENT, f"~{step}~{sent}~{time.time_ns()}")
            task = asyncio.create_task(one(conn, target, body))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
        send_s = time.time() - t0
        if tasks:
            await asyncio.wait(tasks, timeout=30)
        while not free.empty():
            free.get_nowait().close()
        lat = array.array("q", sorted(http_us))
        return {
            "sent": sent,
            "send_s": send_s,
            "errors": len(errors),
            "first_error": errors[0] if errors else "",
            "http_p50_ms": percentile(lat, 0.5),
            "http_p99_ms": percentile(lat, 0.99),
            "cpu_s": process_cpu_s() - cpu0,
        }


@dataclass
class Step:
    server: str
    label: str
    offered: float
    sent_s: float
    deliveries_s: float
    delivered_pct: float
    p50_ms: float
    p99_ms: float
    server_cpu_pct: float
    redis_cpu_pct: float
    us_per_delivery: float
    redis_us_per_delivery: float
    gen_cpu_pct: float
    other_cpu_pct: float
    http_errors: int
    http_p99_ms: float
    lost: int
    notes: str


STEP_HEADER = (
    f"{'server':<13} {'ev/s':>6} {'sent/s':>7} {'deliv/s':>8} {'deliv%':>7} {'p50 ms':>7} "
    f"{'p99 ms':>8} {'us/dlv':>7} {'srvCPU%':>7} {'rdsCPU%':>7} {'genCPU%':>7} {'othCPU%':>7}"
)


def fmt_step(s: Step) -> str:
    return (
        f"{s.server:<13} {s.offered:>6g} {s.sent_s:>7.1f} {s.deliveries_s:>8.0f} "
        f"{s.delivered_pct:>6.1f}% {s.p50_ms:>7.1f} {s.p99_ms:>8.1f} {s.us_per_delivery:>7.2f} "
        f"{s.server_cpu_pct:>7.0f} {s.redis_cpu_pct:>7.0f} {s.gen_cpu_pct:>7.0f} "
        f"{s.other_cpu_pct:>7.0f}  {s.label}{s.notes}"
    )


def run_step(
    subs: Pool,
    pub: Pool,
    srv: Servers,
    step: int,
    rate: float,
    label: str,
    args: argparse.Namespace,
) -> Step:
    k = len(subs)
    subs.call("quiet", [{"quiet_s": 0.5, "max_s": 20.0}] * k, timeout=30)
    t0 = time.time() + 0.3
    cpu0, redis0, busy0, wall0 = srv.cpu_s(), srv.redis_cpu_s(), machine_busy_s(), time.time()
    subs.send("step", [{"step": step, "t0": t0, "duration": args.step_s, "drain_s": 5.0}] * k)
    pub.send(
        "publish",
        [
            {
                "step": step,
                "rate": rate,
                "t0": t0,
                "duration": args.step_s,
                "host": "127.0.0.1",
                "port": srv.ports[0],
                "channel": CHANNEL,
                "conns": args.http_conns,
            }
        ],
    )
    p = pub.gather("publish", timeout=args.step_s + 40)[0]
    rs = subs.gather("step", timeout=args.step_s + 30)
    cpu1, redis1, busy1, wall1 = srv.cpu_s(), srv.redis_cpu_s(), machine_busy_s(), time.time()
    received = sum(r["received"] for r in rs)
    lat: array.array[int] = array.array("q")
    for r in rs:
        lat.frombytes(r["lat"])
    lat = array.array("q", sorted(lat))
    last_rx = max(r["last_rx_ns"] for r in rs) / 1e9
    # deliveries per second over the time they took: a backlog drained after the sending
    # stopped lowers the rate instead of being credited to the sending time
    span = max(p["send_s"], last_rx - t0) if received else p["send_s"]
    wall = wall1 - wall0
    server_cpu, redis_cpu = cpu1 - cpu0, redis1 - redis0
    gen_cpu = sum(r["cpu_s"] for r in rs) + p["cpu_s"]
    expected = p["sent"] * args.subscribers
    notes = []
    if p["errors"]:
        notes.append(f"{p['errors']} HTTP errors, first: {p['first_error']}")
    if p["sent"] < 0.95 * rate * args.step_s:
        notes.append("the publisher could not offer the rate")
    lost = max(r["lost"] for r in rs)
    if lost:
        notes.append(f"{sum(r['lost'] for r in rs)} sockets closed")
    errors = sum(r["errors"] for r in rs)
    if errors:
        first = next(r["first_error"] for r in rs if r["first_error"])
        notes.append(f"{errors} error frames, first: {first}")
    return Step(
        server=srv.kind,
        label=label,
        offered=rate,
        sent_s=p["sent"] / p["send_s"] if p["send_s"] else 0.0,
        deliveries_s=received / span if span else 0.0,
        delivered_pct=100.0 * received / expected if expected else 0.0,
        p50_ms=percentile(lat, 0.50),
        p99_ms=percentile(lat, 0.99),
        server_cpu_pct=100.0 * server_cpu / wall,
        redis_cpu_pct=100.0 * redis_cpu / wall,
        us_per_delivery=server_cpu * 1e6 / received if received else math.nan,
        redis_us_per_delivery=redis_cpu * 1e6 / received
        if received and srv.redis is not None
        else math.nan,
        gen_cpu_pct=100.0 * gen_cpu / wall,
        other_cpu_pct=max(0.0, 100.0 * (busy1 - busy0 - server_cpu - redis_cpu - gen_cpu) / wall),
        http_errors=p["errors"],
        http_p99_ms=p["http_p99_ms"],
        lost=lost,
        notes=("  [" + "; ".join(notes) + "]") if notes else "",
    )


@dataclass
class Idle:
    server: str
    connections: int
    before_kb: int
    after_kb: int

    @property
    def per_conn_kb(self) -> float:
        return (self.after_kb - self.before_kb) / self.connections


def measure(
    kind: str, subs: Pool, pub: Pool, args: argparse.Namespace, logdir: Path, step_id: list[int]
) -> tuple[Idle, list[Step]]:
    """Idle RSS, then every step, on a fresh server of ``kind``."""
    k = len(subs)
    with Servers(kind, logdir) as srv:
        base = {"host": "127.0.0.1", "ports": srv.ports}
        warm = split(list(range(args.warmup)), k)
        subs.call("open", [{**base, "channel": "warmup", "indices": w} for w in warm], 60)
        time.sleep(args.settle_s)
        before = srv.rss_kb()
        t = time.monotonic()
        shares = split(list(range(args.subscribers)), k)
        subs.call("open", [{**base, "channel": CHANNEL, "indices": s} for s in shares], 300)
        took = time.monotonic() - t
        time.sleep(args.settle_s)
        after = srv.rss_kb()
        idle = Idle(kind, args.subscribers, before, after)
        print(
            f"  {kind}: {args.subscribers} subscribers in {took:.1f} s (pid "
            f"{', '.join(map(str, srv.pids))}); RSS {before / 1024:.1f} -> {after / 1024:.1f} MiB"
            f" = {idle.per_conn_kb:.1f} KB per idle subscribed connection",
            flush=True,
        )
        steps = []
        plan = [(r, "") for r in args.rates] + ([(args.max, "(max)")] if args.max else [])
        for rate, label in plan:
            step_id[0] += 1
            s = run_step(subs, pub, srv, step_id[0], rate, label, args)
            print("  " + fmt_step(s), flush=True)
            steps.append(s)
        subs.call("close", [None] * k, timeout=30)
    return idle, steps


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return "n/a"
    return f"{a / b:.2f}"


def table(
    servers: list[str], idle: dict[str, Idle], steps: list[Step], args: argparse.Namespace
) -> list[str]:
    base = "soketi" if "soketi" in servers else None
    others = [s for s in servers if s != base] if base else []
    width = 44
    head = f"{'':<{width}}" + "".join(f"{s:>13}" for s in servers)
    head += "".join(f"{s + '/soketi':>20}" for s in others)
    out = [head]

    def row(label: str, values: dict[str, float | None], f: str, ratios: bool = True) -> None:
        cells = "".join(f"{cell(values.get(s), f):>13}" for s in servers)
        if ratios:
            cells += "".join(
                f"{ratio(values.get(s), values.get(base) if base else None):>20}" for s in others
            )
        out.append(f"{label:<{width}}{cells}")

    at = {(s.server, s.offered, s.label): s for s in steps}
    plan = [(r, "") for r in args.rates] + ([(args.max, "(max)")] if args.max else [])

    def per(rate: float, label: str, attr: str) -> dict[str, float | None]:
        return {
            srv: getattr(at[(srv, rate, label)], attr)
            for srv in servers
            if (srv, rate, label) in at
        }

    for rate, label in plan:
        name = f"{rate:g} ev/s{' ' + label if label else ''}"
        offered = rate * args.subscribers
        row(f"{name} ({offered / 1000:g}k offered/s): CPU us/deliv", per(rate, label,
            "us_per_delivery"), "{:.1f}")  # fmt: skip
        if any(k.startswith("hub-redis") for k in servers):
            row("  + Redis CPU us per delivery", per(rate, label, "redis_us_per_delivery"),
                "{:.1f}", ratios=False)  # fmt: skip
        row("  p50 ms", per(rate, label, "p50_ms"), "{:.1f}")
        row("  p99 ms", per(rate, label, "p99_ms"), "{:.1f}")
        row("  delivered/s", per(rate, label, "deliveries_s"), "{:,.0f}")
        row("  delivered %", per(rate, label, "delivered_pct"), "{:.1f}")
    if idle:
        row(
            f"RSS per idle subscribed connection, KB (N={args.subscribers})",
            {k: v.per_conn_kb for k, v in idle.items()},
            "{:.1f}",
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Pusher fan-out: HTTP API events to N subscribers of one public channel, "
        "soketi vs the hub on memory and on Redis, in one run.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("-n", "--subscribers", type=int, default=1000, help="subscribed sockets")
    ap.add_argument("--rates", default="5,20,50", help="events/s, one step each")
    ap.add_argument(
        "--max", type=float, default=200, help="one more step at this many events/s (0: none)"
    )
    ap.add_argument("--step-s", type=float, default=5.0, help="seconds of triggering per step")
    ap.add_argument("--servers", default="soketi,hub,hub-redis", help=f"of {', '.join(KINDS)}")
    ap.add_argument("--procs", type=int, default=2, help="subscriber load-generator processes")
    ap.add_argument("--http-conns", type=int, default=8, help="publisher keep-alive connections")
    ap.add_argument(
        "--warmup", type=int, default=50, help="sockets opened before the RSS baseline is read"
    )
    ap.add_argument("--settle-s", type=float, default=2.0, help="wait before each RSS reading")
    ap.add_argument("--json", metavar="PATH", help="also write the raw figures as JSON")
    args = ap.parse_args(argv)
    args.rates = [float(x) for x in args.rates.split(",") if x.strip()]
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    for s in servers:
        if s not in KINDS:
            ap.error(f"--servers takes {', '.join(KINDS)}, got {s!r}")
    raise_open_files((args.subscribers + args.warmup) * 2 + 256)

    command = "python bench/pusher_fanout.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    print(f"$ {command}".rstrip())
    print(
        f"Pusher fan-out: {args.subscribers} subscribers of one public channel, "
        f"{args.procs} subscriber processes + 1 publisher process, {args.step_s:g} s per step; "
        f"{os.cpu_count()} cores shared by everything; load average at start "
        f"{os.getloadavg()[0]:.2f}"
    )
    logdir = Path(tempfile.mkdtemp(prefix="bench-pusher-fanout-"))
    started = time.monotonic()
    subs, pub = Pool(args.procs, Subscribers), Pool(1, Publisher)
    idle: dict[str, Idle] = {}
    steps: list[Step] = []
    step_id = [0]
    print("  " + STEP_HEADER)
    try:
        for kind in servers:
            idle[kind], kind_steps = measure(kind, subs, pub, args, logdir, step_id)
            steps.extend(kind_steps)
    finally:
        subs.close()
        pub.close()
    print(
        f"\nresults ({time.monotonic() - started:.0f} s; load average now "
        f"{os.getloadavg()[0]:.2f}; server logs in {logdir})"
    )
    print("=" * 100)
    print(f"$ {command}".rstrip())
    for line in table(servers, idle, steps, args):
        print(line)
    print("=" * 100)
    notes = (
        "notes: one delivery = one event received by one subscriber. CPU us/deliv = the "
        "server processes' CPU time during the step (sending and draining) / deliveries; "
        "'+ Redis' is the redis-server's CPU on the same basis, not included in the first. "
        "Latency = receipt - trigger time (taken just before the HTTP request is written). "
        "delivered/s = deliveries / the time from the first trigger to the last receipt. "
        "RSS per idle subscribed connection = RSS growth of the server processes over N "
        "subscribed sockets / N (Redis's memory not included). The servers ran one after "
        "the other; generators and servers share the cores (othCPU% = everything else on "
        "the machine)."
    )
    print(textwrap.fill(notes, 100, subsequent_indent="  "))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                json_safe(
                    {
                        "command": command,
                        "subscribers": args.subscribers,
                        "steps": [asdict(s) for s in steps],
                        "idle": {
                            k: {**asdict(v), "per_conn_kb": v.per_conn_kb} for k, v in idle.items()
                        },
                    }
                ),
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
