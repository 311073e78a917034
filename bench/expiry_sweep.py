"""What the status-expiry sweep costs Redis (a script, not a test).

    python bench/expiry_sweep.py                  # 1 and 16 buckets
    python bench/expiry_sweep.py --sweeps 5000 --users 5000

Starts its own ``redis-server`` (from PATH, a free port, no persistence) and measures,
through :class:`hub.stores.presence.redis.RedisStore` directly, Redis CPU (``INFO cpu``) before and
after: ``expire_statuses()`` run ``--sweeps`` times on buckets with nothing due (what every
hub does twice a second), then once with ``--users`` expiries due. The baseline in the same
run is the same idle sweep with no earliest-expiry check (the script on every bucket).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis.asyncio import Redis

from hub.stores.presence.base import Profile
from hub.stores.presence.redis import EXPIRY_BATCH, RedisStore
from tests.support.redis_server import start_server


async def redis_cpu(client: Redis) -> float:
    info = await client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def scripts_only(store: RedisStore) -> None:
    """The sweep without the earliest-expiry check: one script call per bucket."""
    for b in store.keys.buckets:
        await store._expire_status(
            keys=[b.idx, b.on, b.grace, b.clock, b.expiries],
            args=[b.user, b.conns, EXPIRY_BATCH, store._window, store.channel],
        )


async def measure(url: str, buckets: int, sweeps: int, users: int) -> None:
    store = RedisStore(url, key_prefix=f"bench{buckets}:", buckets=buckets)
    await store.start()
    client = Redis.from_url(url)
    try:
        for name, sweep in (("script on every bucket", lambda: scripts_only(store)),
                            ("with the earliest-expiry check", store.expire_statuses)):  # fmt: skip
            before, started = await redis_cpu(client), time.perf_counter()
            for _ in range(sweeps):
                await sweep()
            cpu, wall = await redis_cpu(client) - before, time.perf_counter() - started
            print(
                f"{buckets:>2} buckets, idle sweep, {name:<31} "
                f"{cpu / sweeps * 1e6:7.0f} us Redis CPU  {wall / sweeps * 1e3:6.2f} ms wall"
            )
        for i in range(users):
            await store.connect("n1", f"c{i}", Profile(f"u{i}"), "online")
        until = await store.now() + 2_000 + users * 2  # set them all before it passes
        for i in range(users):
            await store.set_status(f"u{i}", status="busy", text="bench", until=until)
        while await store.now() <= until:
            await asyncio.sleep(0.05)
        before, started = await redis_cpu(client), time.perf_counter()
        await store.expire_statuses()
        cpu, wall = await redis_cpu(client) - before, time.perf_counter() - started
        left = sum([int(await client.zcard(b.expiries)) for b in store.keys.buckets])
        print(
            f"{buckets:>2} buckets, {users} due expiries: {cpu / users * 1e6:.1f} us Redis CPU "
            f"each, {wall * 1e3:.0f} ms wall, {left} left"
        )
    finally:
        await store.close()
        await client.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweeps", type=int, default=2000)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--buckets", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()
    server = start_server()
    try:
        for buckets in args.buckets:
            await measure(server.url, buckets, args.sweeps, args.users)
    finally:
        server.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
