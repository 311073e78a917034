"""Big rooms on Redis: counts, member windows and watchlists (a script, not a test).

    python bench/big_rooms.py                        # the full run (a room of 1,000,000)
    python bench/big_rooms.py --quick                # a small run that checks the script
    python bench/big_rooms.py --sizes 10000,100000 --subscribers 500 --json /tmp/big.json

It starts its own ``redis-server`` (free port, no persistence) and one ``python -m hub
serve`` on it, fills rooms through the store and registry classes directly (no
websockets: 1,000,000 joins as the hub's own scripts make them), and measures:

1. **Redis memory per member**: ``used_memory`` before and after the largest room's members
   joined (the registry's member set and log, and the room index: order and numbers).
2. **Counts**: for each room size (``--sizes``, 10% of the members online), ``--subscribers``
   websocket clients subscribe ``{room, counts: true}``; a driver changes the status of
   random online members at ``--rate`` changes/s for ``--seconds`` through the store (as
   another hub would). A change is delivered to a subscriber by the first ``counts`` frame
   whose ``cursor`` covers its ``at``; p50/p99 over a sample of subscribers, every change
   checked on them. The hub's CPU per change (CPU time during the run / changes) should be
   flat across sizes: a change costs O(1) per room whatever the room's size.
3. **Windows**: ``--subscribers`` clients hold windows of 100 members over the top
   ``--window-ranges`` pages of the largest room while the driver changes the status and
   the text of the members those pages show. Latency: from a text change to the window
   ``update`` operation carrying it (an insert may be a member scrolled in by other moves
   long after its own change, so inserts are not timed; they are checked below). At the
   end every client's window, rebuilt from its frames, is compared with ``rooms.members``
   for its range (checked, not assumed).
4. **Watchlist**: one ``users`` subscription of ``--watch`` ids (members of the largest
   room: online, offline and never seen) against a room subscription of the same users
   (a room of exactly those members): snapshot time and bytes, and the hub's CPU per change
   with ``--watchers`` subscribers of each while those users change.

Load generators run in ``--procs`` processes (bench/fanout.py's bare websocket client).
Every figure is from this machine and this run; ratios compare rows of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import multiprocessing as mp
import random
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import httpx  # noqa: E402
from fanout import WsClient, cpu_s  # type: ignore[import-not-found]  # noqa: E402
from redis.asyncio import Redis  # noqa: E402

from hub.model.auth import issue_token  # noqa: E402
from hub.model.window import apply  # noqa: E402
from hub.ops.config import Settings  # noqa: E402
from hub.stores.presence.base import Profile  # noqa: E402
from hub.stores.presence.redis import RedisStore  # noqa: E402
from hub.stores.registry.redis import RedisRegistry  # noqa: E402
from tests.support.hubproc import TEST_ADMIN_KEY, TEST_SECRET, HubProcess  # noqa: E402
from tests.support.redis_server import start_server  # noqa: E402

PREFIX = "big:"
CHANNEL = "big:presence"
NODE = "bench-driver"


def member(n: int) -> str:
    """Member ids sort (and are named) by number, so the room's order is predictable."""
    return f"u{n:07d}"


# -- load generators -----------------------------------------------------------------------


class Worker:
    """One process's subscribers: it opens them, records what arrives, reports on request."""

    def __init__(self, pipe: Connection) -> None:
        self.pipe = pipe
        self.clients: list[WsClient] = []
        self.frames: dict[int, list[tuple[int, bytes]]] = {}
        self.sample: set[int] = set()

    def frame(self, client: WsClient, payload: bytes, now_ns: int) -> None:
        if client.sample_index is not None:  # type: ignore[attr-defined]
            self.frames.setdefault(client.sample_index, []).append((now_ns, payload))  # type: ignore[attr-defined]
        else:
            client.count += 1  # type: ignore[attr-defined]

    def lost(self, client: WsClient) -> None:
        pass

    async def open(self, port: int, user: str, sub: dict[str, Any], index: int | None) -> WsClient:
        loop = asyncio.get_running_loop()
        _, client = await loop.create_connection(
            lambda: WsClient("127.0.0.1", port, "/ws", self), "127.0.0.1", port
        )
        assert isinstance(client, WsClient)
        client.sample_index = None  # type: ignore[attr-defined]
        client.count = 0  # type: ignore[attr-defined]
        await asyncio.wait_for(client.opened, 15)
        ready = client.expect(b'{"op":"ready"')
        client.send(json.dumps({"op": "hello", "token": issue_token(TEST_SECRET, user)}).encode())
        await asyncio.wait_for(ready, 20)
        client.sample_index = index  # type: ignore[attr-defined]
        first = client.expect(b'{"op":"ack"')
        client.send(json.dumps({**sub, "op": "sub", "ref": 1}).encode())
        await asyncio.wait_for(first, 60)
        return client

    async def open_many(
        self, port: int, specs: list[tuple[str, dict[str, Any], int | None]]
    ) -> list[WsClient]:
        sem = asyncio.Semaphore(32)

        async def one(spec: tuple[str, dict[str, Any], int | None]) -> WsClient:
            async with sem:
                return await self.open(port, *spec)

        return list(await asyncio.gather(*(one(s) for s in specs)))

    async def run(self) -> None:
        while True:
            cmd, arg = await asyncio.to_thread(self.pipe.recv)
            if cmd == "open":
                self.frames = {}
                self.clients = await self.open_many(arg["port"], arg["specs"])
                self.pipe.send(len(self.clients))
            elif cmd == "collect":
                self.pipe.send({k: [(t, p.decode()) for t, p in v] for k, v in self.frames.items()})
            elif cmd == "close":
                for c in self.clients:
                    c.close()
                self.clients = []
                self.pipe.send(True)
            elif cmd == "quit":
                return


def worker_main(pipe: Connection) -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(Worker(pipe).run())


class Pool:
    def __init__(self, procs: int) -> None:
        ctx = mp.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs = []
        for _ in range(procs):
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(theirs,), daemon=True)
            proc.start()
            self.pipes.append(ours)
            self.procs.append(proc)

    def ask(self, cmd: str, args: list[Any]) -> list[Any]:
        for pipe, arg in zip(self.pipes, args, strict=True):
            pipe.send((cmd, arg))
        return [pipe.recv() for pipe in self.pipes]

    def open(self, port: int, specs: list[tuple[str, dict[str, Any], int | None]]) -> int:
        shares = [specs[i :: len(self.pipes)] for i in range(len(self.pipes))]
        return sum(self.ask("open", [{"port": port, "specs": s} for s in shares]))

    def collect(self) -> dict[int, list[tuple[int, str]]]:
        out: dict[int, list[tuple[int, str]]] = {}
        for part in self.ask("collect", [None] * len(self.pipes)):
            out.update(part)
        return out

    def close(self) -> None:
        self.ask("close", [None] * len(self.pipes))

    def quit(self) -> None:
        for pipe in self.pipes:
            pipe.send(("quit", None))
        for proc in self.procs:
            proc.join(10)


# -- helpers ---------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def used_memory(redis: Redis) -> int:
    return int((await redis.info("memory"))["used_memory"])


async def bounded(calls: list[Any], concurrency: int) -> None:
    sem = asyncio.Semaphore(concurrency)

    async def one(call: Any) -> None:
        async with sem:
            await call()

    await asyncio.gather(*(one(c) for c in calls))


async def fill(
    store: RedisStore,
    registry: RedisRegistry,
    room: str,
    ids: list[str],
    online: list[str],
    concurrency: int,
) -> None:
    """The room's members join (registry, then the room index), the online ones connect."""
    with contextlib.suppress(Exception):
        await registry.create_room(room, room)

    await bounded([lambda u=u: registry.join(room, u) for u in ids], concurrency)
    for n in range(0, len(ids), 5000):
        await store.room_add(room, ids[n : n + 5000])
    await bounded(
        [
            lambda u=u: store.connect(NODE, f"c-{u}", Profile(id=u, username=u, name=u), "online")
            for u in online
        ],
        concurrency,
    )


class Driver:
    """Status changes at a paced rate through the store; remembers each change's at."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self.sent: dict[int, int] = {}  # at -> send time (ns, wall clock)

    async def run(
        self,
        users: list[str],
        rate: float,
        seconds: float,
        *,
        texts: bool = False,
        concurrency: int = 64,
    ) -> int:
        rng = random.Random(18)
        statuses = ["online", "away", "busy"]
        state = {u: 0 for u in users}
        total = int(rate * seconds)
        start = time.monotonic()
        sem = asyncio.Semaphore(concurrency)

        async def change(n: int) -> None:
            async with sem:
                user = rng.choice(users)
                sent = time.time_ns()
                if texts and n % 2:
                    view = await self.store.set_status(user, text=f"t{n}")
                else:
                    state[user] = (state[user] + 1) % 3
                    view = await self.store.set_status(user, status=statuses[state[user]])
                if view is not None:
                    self.sent[view.at] = sent

        tasks = []
        for n in range(total):
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(change(n)))
        await asyncio.gather(*tasks)
        return total


# -- sections --------------------------------------------------------------------------------


async def counts_section(
    args: argparse.Namespace,
    hub: HubProcess,
    pool: Pool,
    store: RedisStore,
    rooms: dict[int, tuple[str, list[str]]],
) -> list[dict[str, Any]]:
    rows = []
    for size, (room, online) in rooms.items():
        sample = min(args.sample, args.subscribers)
        specs = [
            (f"c{size}-{n}", {"room": room, "counts": True}, n if n < sample else None)
            for n in range(args.subscribers)
        ]
        pool.open(hub.port, specs)
        await asyncio.sleep(1.0)  # every first frame is in before the clock starts
        pool.collect()
        driver = Driver(store)
        cpu0, t0 = cpu_s(hub.pid), time.monotonic()
        changes = await driver.run(online, args.rate, args.seconds)
        wall = time.monotonic() - t0
        cpu = cpu_s(hub.pid) - cpu0
        await asyncio.sleep(1.0)
        frames = pool.collect()
        lat, missed = [], 0
        pairs = sorted(driver.sent.items())
        for received in frames.values():
            arrivals = []
            for t, text in received:
                if text.startswith('{"op":"counts"'):
                    arrivals.append((json.loads(text)["cursor"], t))
            arrivals.sort()
            cursors = [c for c, _ in arrivals]
            best = [0] * len(arrivals)  # earliest arrival of a frame covering each cursor
            low = None
            for i in range(len(arrivals) - 1, -1, -1):
                low = arrivals[i][1] if low is None else min(low, arrivals[i][1])
                best[i] = low
            for at, sent in pairs:
                i = bisect.bisect_left(cursors, at)
                if i == len(cursors):
                    missed += 1
                else:
                    lat.append((best[i] - sent) / 1e6)
        pool.close()
        rows.append(
            {
                "members": size,
                "online": len(online),
                "subscribers": args.subscribers,
                "changes": changes,
                "rate": changes / wall,
                "p50_ms": pct(lat, 0.5),
                "p99_ms": pct(lat, 0.99),
                "missed": missed,
                "hub_cpu_us_per_change": cpu * 1e6 / changes,
            }
        )
        print(
            f"  counts {size:>9,} members: p50 {rows[-1]['p50_ms']:.1f} ms, p99 "
            f"{rows[-1]['p99_ms']:.1f} ms, missed {missed}, hub CPU "
            f"{rows[-1]['hub_cpu_us_per_change']:.1f} us/change",
            flush=True,
        )
    return rows


def rebuild(
    frames: list[tuple[int, str]],
) -> tuple[tuple[int, int] | None, list[dict[str, Any]], list[tuple[int, int]]]:
    """A window from its frames (snapshot, then window frames above its version), and
    (at, arrival ns) for every entry the operations carried."""
    held: list[dict[str, Any]] = []
    version, at_range = 0, None
    carried = []
    for t, text in frames:
        if not text.startswith(('{"op":"snapshot"', '{"op":"window"')):
            continue
        frame = json.loads(text)
        if "range" not in frame["scope"]:
            continue
        if frame["op"] == "snapshot":
            held, version, at_range = frame["users"], frame["v"], tuple(frame["scope"]["range"])
        elif frame["v"] > version:
            held = apply(frame["ops"], held)
            version = frame["v"]
            # In-place updates only: an insert may be a member scrolled in by others'
            # moves long after its own change, which says nothing of delivery time.
            carried += [(op["user"]["at"], t) for op in frame["ops"] if op["op"] == "update"]
    return at_range, held, carried  # type: ignore[return-value]


async def windows_section(
    args: argparse.Namespace, hub: HubProcess, pool: Pool, store: RedisStore, room: str
) -> dict[str, Any]:
    pages = args.window_ranges
    specs = []
    for n in range(args.subscribers):
        first = (n % pages) * 100
        specs.append((f"w-{n}", {"room": room, "range": [first, first + 99]}, n))
    pool.open(hub.port, specs)
    await asyncio.sleep(1.0)
    # The members those pages show: the first ones in the order (online, by name).
    shown = [member(n) for n in range(pages * 100)]
    driver = Driver(store)
    cpu0, t0 = cpu_s(hub.pid), time.monotonic()
    changes = await driver.run(shown, args.rate, args.seconds, texts=True)
    wall = time.monotonic() - t0
    cpu = cpu_s(hub.pid) - cpu0
    frames = pool.collect()
    # Quiet, then compare every window with REST.
    await asyncio.sleep(2.0)
    frames = pool.collect()
    lat, checked, wrong = [], 0, 0
    pages_rest: dict[tuple[int, int], list[Any]] = {}
    async with httpx.AsyncClient(
        base_url=hub.url, timeout=30, headers={"Authorization": f"Bearer {TEST_ADMIN_KEY}"}
    ) as http:
        for received in frames.values():
            at_range, held, carried = rebuild(received)
            for at, t in carried:
                sent = driver.sent.get(at)
                if sent is not None:
                    lat.append((t - sent) / 1e6)
            if at_range is None:
                wrong += 1
                continue
            if at_range not in pages_rest:
                reply = await http.get(
                    "/api/v1/rooms.members",
                    params={
                        "room": room,
                        "offset": at_range[0],
                        "count": at_range[1] - at_range[0] + 1,
                    },
                )
                pages_rest[at_range] = [
                    (m["id"], m["status"], m["text"], m["at"]) for m in reply.json()["members"]
                ]
            checked += 1
            if [(u["id"], u["status"], u["text"], u["at"]) for u in held] != pages_rest[at_range]:
                wrong += 1
    pool.close()
    row = {
        "subscribers": args.subscribers,
        "ranges": pages,
        "changes": changes,
        "rate": changes / wall,
        "p50_ms": pct(lat, 0.5),
        "p99_ms": pct(lat, 0.99),
        "samples": len(lat),
        "windows_checked": checked,
        "windows_wrong": wrong,
        "hub_cpu_us_per_change": cpu * 1e6 / changes,
    }
    print(
        f"  windows: p50 {row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms over "
        f"{len(lat)} carried changes; {checked} windows checked against rooms.members, "
        f"{wrong} wrong",
        flush=True,
    )
    return row


async def watch_section(
    args: argparse.Namespace,
    hub: HubProcess,
    pool: Pool,
    store: RedisStore,
    registry: RedisRegistry,
    members: int,
) -> dict[str, Any]:
    # Watched: the top of the largest room (online), offline members, never-seen ids.
    ids = [member(n) for n in range(0, members, max(1, members // args.watch))][: args.watch]
    ids = ids[: args.watch - args.watch // 10] + [f"never-{n}" for n in range(args.watch // 10)]
    room = "watch-room"
    await fill(store, registry, room, ids, [], args.concurrency)
    views = {v.id: v for v in await store.users(ids)}
    known_online = [u for u in ids if u in views]
    # A third of the never-connected members come and go: known, offline, with a last seen.
    seen = [u for u in ids if u.startswith("u") and u not in views][::3]
    await bounded(
        [lambda u=u: store.connect(NODE, f"s-{u}", Profile(id=u, name=u), "online") for u in seen],
        args.concurrency,
    )
    await bounded(
        [lambda u=u: store.disconnect(NODE, f"s-{u}", u, grace=False) for u in seen],
        args.concurrency,
    )
    out: dict[str, Any] = {"ids": len(ids)}
    for kind, sub in (("watchlist", {"users": ids}), ("room", {"room": room})):
        specs = [(f"{kind}-{n}", sub, n if n == 0 else None) for n in range(args.watchers)]
        t0 = time.time_ns()
        pool.open(hub.port, specs[:1])
        first = pool.collect()
        snap = next(
            (t, text) for t, text in first.get(0, []) if text.startswith('{"op":"snapshot"')
        )
        pool.close()
        pool.open(hub.port, specs)
        await asyncio.sleep(1.0)
        driver = Driver(store)
        cpu0 = cpu_s(hub.pid)
        changes = await driver.run(known_online or ids[:1], args.watch_rate, args.seconds)
        cpu = cpu_s(hub.pid) - cpu0
        pool.close()
        out[kind] = {
            "snapshot_ms": (snap[0] - t0) / 1e6,
            "snapshot_bytes": len(snap[1].encode()),
            "subscribers": args.watchers,
            "changes": changes,
            "hub_cpu_us_per_change": cpu * 1e6 / max(changes, 1),
        }
        print(
            f"  {kind}: snapshot {out[kind]['snapshot_ms']:.0f} ms (incl. connect), "
            f"{out[kind]['snapshot_bytes']:,} bytes; hub CPU "
            f"{out[kind]['hub_cpu_us_per_change']:.0f} us/change with {args.watchers} "
            "subscribers",
            flush=True,
        )
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    sizes = sorted(int(s) for s in args.sizes.split(","))
    server = start_server()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"args": vars(args)}
    pool = Pool(args.procs)
    settings = Settings(store=server.url, key_prefix=PREFIX, channel=CHANNEL)
    store = RedisStore.from_settings(settings)
    registry = RedisRegistry.from_settings(settings)
    redis = Redis.from_url(server.url)
    hub = None
    try:
        await store.start()
        await registry.start()
        rooms: dict[int, tuple[str, list[str]]] = {}
        before = await used_memory(redis)
        print(f"filling rooms of {', '.join(f'{s:,}' for s in sizes)} members ...", flush=True)
        for size in sizes:
            ids = [member(n) for n in range(size)]
            online = ids[: max(1, size // 10)]
            mem0 = await used_memory(redis)
            t0 = time.monotonic()
            await fill(store, registry, f"room-{size}", ids, [], args.concurrency)
            mem1 = await used_memory(redis)
            await fill(store, registry, f"room-{size}", [], online, args.concurrency)
            rooms[size] = (f"room-{size}", online)
            results.setdefault("memory", []).append(
                {
                    "members": size,
                    "bytes_per_member": (mem1 - mem0) / size,
                    "fill_s": time.monotonic() - t0,
                }
            )
            print(
                f"  room of {size:,}: {(mem1 - mem0) / size:.0f} B of Redis per member "
                f"(registry + room index), filled in {time.monotonic() - t0:.0f} s",
                flush=True,
            )
        results["redis_used_memory_b"] = await used_memory(redis) - before
        env = {
            "HUB_STORE": server.url,
            "HUB_KEY_PREFIX": PREFIX,
            "HUB_CHANNEL": CHANNEL,
            "HUB_LOG_LEVEL": "warning",
            "HUB_RATE_PER_S": "100000",
            "HUB_OUTBOX_FRAMES": "4096",
            "HUB_NODE_ID": "bench-hub",
        }
        hub = HubProcess(log_path=workdir / "big-rooms-hub.log", env=env).start()
        print("counts:", flush=True)
        results["counts"] = await counts_section(args, hub, pool, store, rooms)
        print("windows:", flush=True)
        results["windows"] = await windows_section(args, hub, pool, store, rooms[sizes[-1]][0])
        print("watchlist:", flush=True)
        results["watch"] = await watch_section(args, hub, pool, store, registry, sizes[-1])
        results["hub_rss_b"] = (
            int(
                next(
                    line
                    for line in Path(f"/proc/{hub.pid}/status").read_text().splitlines()
                    if line.startswith("VmRSS:")
                ).split()[1]
            )
            * 1024
        )
    finally:
        pool.quit()
        if hub is not None:
            hub.stop()
        await store.close()
        await registry.close()
        await redis.aclose()
        server.cleanup()
    return results


def summary(r: dict[str, Any]) -> str:
    lines = [
        "",
        "| members | Redis B/member | counts p50 / p99 ms | missed | hub CPU us/change |",
        "| --- | --- | --- | --- | --- |",
    ]
    mem = {m["members"]: m["bytes_per_member"] for m in r["memory"]}
    base = r["counts"][0]["hub_cpu_us_per_change"]
    for c in r["counts"]:
        ratio = c["hub_cpu_us_per_change"] / base if base else float("nan")
        lines.append(
            f"| {c['members']:,} | {mem[c['members']]:.0f} | {c['p50_ms']:.1f} / "
            f"{c['p99_ms']:.1f} | {c['missed']} | {c['hub_cpu_us_per_change']:.1f} "
            f"({ratio:.2f}x the smallest) |"
        )
    w = r["windows"]
    lines += [
        "",
        f"windows: {w['subscribers']} subscribers over {w['ranges']} ranges of 100, "
        f"{w['rate']:.0f} changes/s: p50 {w['p50_ms']:.1f} ms, p99 {w['p99_ms']:.1f} ms; "
        f"{w['windows_checked']} windows checked against rooms.members, "
        f"{w['windows_wrong']} wrong; hub CPU {w['hub_cpu_us_per_change']:.1f} us/change",
    ]
    wl, rm = r["watch"]["watchlist"], r["watch"]["room"]
    lines += [
        f"watchlist of {r['watch']['ids']:,} ids vs a room of the same users: snapshot "
        f"{wl['snapshot_ms']:.0f} / {rm['snapshot_ms']:.0f} ms, {wl['snapshot_bytes']:,} / "
        f"{rm['snapshot_bytes']:,} bytes; hub CPU per change {wl['hub_cpu_us_per_change']:.0f}"
        f" / {rm['hub_cpu_us_per_change']:.0f} us ({wl['subscribers']} subscribers each)"
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="room sizes")
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=1000.0, help="changes per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--sample", type=int, default=100, help="subscribers whose frames count")
    parser.add_argument("--window-ranges", type=int, default=20)
    parser.add_argument("--watch", type=int, default=10_000)
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument("--watch-rate", type=float, default=200.0)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--workdir", default="/tmp/big-rooms")
    parser.add_argument("--json", help="write every figure here")
    parser.add_argument("--quick", action="store_true", help="a small run (checks the script)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.subscribers, args.seconds, args.rate = "2000,20000", 100, 3.0, 200.0
        args.sample, args.window_ranges, args.watch, args.watchers = 50, 5, 1000, 10
        args.watch_rate = 100.0
    results = asyncio.run(main_async(args))
    print(summary(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
