"""What appending every change batch to the durable change stream costs.

A benchmark, not a test. It starts its own ``redis-server`` (free port, no persistence)
per variant and runs the same load on both, alternating round by round:
the real scripts (PUBLISH + XADD to ``<prefix>changes``) and, as the baseline, the same
scripts with the XADD line taken out (PUBLISH only, as before the stream existed). The load
is ``--ops`` status changes (``set_status`` busy/online toggles over ``--users`` users),
``--concurrency`` calls in flight. It prints the Redis-side time per script call
(``INFO commandstats``, ``cmdstat_evalsha`` usec_per_call: what the XADD costs Redis,
independent of this client's speed), client ops/s of both, the ratios, and the stream's
memory per entry (``MEMORY USAGE`` of the stream / ``XLEN``).

    python bench/stream_append.py
    python bench/stream_append.py --ops 50000 --concurrency 64 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from redis.asyncio import Redis  # noqa: E402

import hub.stores.presence.redis as redis_store  # noqa: E402
from hub.stores.presence.base import Profile  # noqa: E402
from hub.stores.presence.redis import RedisStore  # noqa: E402
from tests.support.redis_server import start_server  # noqa: E402

XADD = "  redis.call('XADD', ctx.stream"
ORIGINAL = redis_store.script_source


def without_stream(name: str) -> str:
    text = ORIGINAL(name)
    lines = [line for line in text.splitlines() if not line.startswith(XADD)]
    assert len(lines) < len(text.splitlines()) or "finish(ctx)" not in text, name
    return "\n".join(lines)


async def open_store(url: str, prefix: str, *, stream: bool) -> RedisStore:
    if not stream:
        redis_store.script_source = without_stream  # type: ignore[assignment]
    try:
        store = RedisStore(url, key_prefix=prefix, channel=f"{prefix}presence")
    finally:
        redis_store.script_source = ORIGINAL
    await store.start()
    return store


async def load(store: RedisStore, users: int, ops: int, concurrency: int) -> float:
    gate = asyncio.Semaphore(concurrency)

    async def one(n: int) -> None:
        async with gate:
            await store.set_status(f"u{n % users}", status="busy" if (n // users) % 2 else "online")

    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(ops)))
    return ops / (time.perf_counter() - started)


async def main(args: argparse.Namespace) -> None:
    servers = {"stream": start_server(), "baseline": start_server()}
    try:
        stores = {
            "stream": await open_store(servers["stream"].url, "bs:", stream=True),
            "baseline": await open_store(servers["baseline"].url, "bb:", stream=False),
        }
        for store in stores.values():
            for n in range(args.users):
                await store.connect("bench", f"c{n}", Profile(f"u{n}"), "online")
        rates: dict[str, list[float]] = {name: [] for name in stores}
        for name in stores:
            r = Redis.from_url(servers[name].url)
            await r.config_resetstat()
            await r.aclose()
        for _ in range(args.rounds):
            for name, store in stores.items():
                rates[name].append(await load(store, args.users, args.ops, args.concurrency))
        usec: dict[str, float] = {}
        for name in stores:
            r = Redis.from_url(servers[name].url)
            usec[name] = float((await r.info("commandstats"))["cmdstat_evalsha"]["usec_per_call"])
            if name == "stream":
                length = await r.xlen("bs:changes")
                usage = await r.memory_usage("bs:changes") or 0
            else:
                baseline_len = await r.exists("bb:changes")
            await r.aclose()
        for store in stores.values():
            await store.close()
    finally:
        for server in servers.values():
            server.cleanup()
    med = {name: statistics.median(v) for name, v in rates.items()}
    print(
        f"set_status, {args.ops} ops x {args.rounds} rounds, {args.users} users, "
        f"{args.concurrency} in flight, one redis-server per variant"
    )
    for name in usec:
        print(f"  {name:9} redis-side {usec[name]:6.2f} us per script call")
    print(f"  stream / baseline redis-side time per call: {usec['stream'] / usec['baseline']:.3f}")
    for name, values in rates.items():
        print(
            f"  {name:9} median {med[name]:9.0f} ops/s  (rounds: "
            f"{', '.join(f'{v:.0f}' for v in values)})"
        )
    print(f"  stream / baseline throughput: {med['stream'] / med['baseline']:.3f}")
    print(
        f"  stream: {length} entries, {usage} bytes, {usage / max(1, length):.0f} B/entry "
        f"(baseline store has a stream: {bool(baseline_len)})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
