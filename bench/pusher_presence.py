"""Pusher presence benchmark: subscription_succeeded for a big presence channel.

Starts one redis-server (a free port, no persistence) and one hub on it, fills a presence
channel with N members straight through the hub's channel state (the same atomic subscribe
script a socket's subscription runs, under a node id that never heartbeats, so nothing
reaps them), then connects a real websocket client, subscribes it and measures, for a
10-member channel first (the baseline in the same run) and then for the N-member one:

- the time from sending ``pusher:subscribe`` to receiving ``subscription_succeeded`` (median
  of --repeat subscriptions of fresh sockets),
- the size of that frame,
- the hub's RSS before and after the subscriptions (VmRSS from /proc) and the Redis memory
  the channel's keys hold (MEMORY USAGE).

Run ``python bench/pusher_presence.py --members 10000``. Prints one table; no files written.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from redis.asyncio import Redis
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hub.model.pusher_auth import channel_auth
from hub.stores.channels.redis import RedisChannels
from tests.support.hubproc import start_hub
from tests.support.redis_server import start_server

APP_ID, KEY, SECRET = "1", "bench-key", "bench-secret-0123"
PREFIX = "bench:"


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def fill(url: str, channel: str, members: int) -> None:
    state = RedisChannels(url, PREFIX, f"{PREFIX}fill")
    await state.start()
    try:
        for start in range(0, members, 200):
            await asyncio.gather(
                *(
                    state.subscribe(
                        APP_ID,
                        channel,
                        f"9.{n}",
                        "filler",
                        f"user-{n}",
                        json.dumps({"name": f"User number {n}"}),
                        10**9,
                    )
                    for n in range(start, min(members, start + 200))
                )
            )
    finally:
        await state.close()


async def subscribe_once(port: int, channel: str, user: str) -> tuple[float, int, int]:
    async with connect(
        f"ws://127.0.0.1:{port}/app/{KEY}?protocol=7", max_size=64 * 1024 * 1024
    ) as ws:
        hello = json.loads(await ws.recv())
        socket_id = json.loads(hello["data"])["socket_id"]
        data = json.dumps({"user_id": user, "user_info": {"name": user}})
        auth = channel_auth(KEY, SECRET, socket_id, channel, data)
        started = time.perf_counter()
        await ws.send(
            json.dumps(
                {
                    "event": "pusher:subscribe",
                    "data": {"channel": channel, "auth": auth, "channel_data": data},
                }
            )
        )
        while True:
            raw = await ws.recv()
            frame = json.loads(raw)
            if frame["event"] == "pusher_internal:subscription_succeeded":
                took = time.perf_counter() - started
                count = json.loads(frame["data"])["presence"]["count"]
                return took, len(raw.encode() if isinstance(raw, str) else raw), count


async def measure(
    port: int, pid: int, url: str, channel: str, members: int, repeat: int
) -> dict[str, float]:
    await fill(url, channel, members)
    before = rss_kb(pid)
    # One probe user: each probe is a new tab of it, so the count stays members + 1.
    results = [await subscribe_once(port, channel, "probe") for _ in range(repeat)]
    after = rss_kb(pid)
    redis = Redis.from_url(url)
    try:
        used = 0
        for kind in ("s", "m", "i"):
            used += await redis.memory_usage(f"{{{PREFIX}pusher:{APP_ID}}}:{kind}:{channel}") or 0
    finally:
        await redis.aclose()
    assert all(count == members + 1 for _, _, count in results), results
    return {
        "members": members + 1,
        "median_ms": statistics.median(t for t, _, _ in results) * 1000,
        "max_ms": max(t for t, _, _ in results) * 1000,
        "frame_bytes": results[0][1],
        "rss_delta_kb": after - before,
        "redis_kb": used / 1024,
    }


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        server = start_server()
        hub = None
        try:
            hub = start_hub(
                Path(folder),
                {
                    "HUB_STORE": server.url,
                    "HUB_KEY_PREFIX": PREFIX,
                    "HUB_CHANNEL": f"{PREFIX}presence",
                    "HUB_LOG_LEVEL": "warning",
                    "HUB_PUSHER_APPS": f"{APP_ID}:{KEY}:{SECRET}",
                },
            )
            rows = [
                await measure(hub.port, hub.pid, server.url, "presence-small", 9, args.repeat),
                await measure(
                    hub.port, hub.pid, server.url, "presence-big", args.members - 1, args.repeat
                ),
            ]
        finally:
            if hub is not None:
                hub.stop()
            server.stop()
    print(
        f"{'members':>8} {'median ms':>10} {'max ms':>8} {'frame bytes':>12} "
        f"{'hub RSS +KB':>12} {'redis KB':>9}"
    )
    for r in rows:
        print(
            f"{r['members']:>8} {r['median_ms']:>10.1f} {r['max_ms']:>8.1f} "
            f"{r['frame_bytes']:>12} {r['rss_delta_kb']:>12} {r['redis_kb']:>9.0f}"
        )
    small, big = rows
    print(
        f"ratio big/small: time x{big['median_ms'] / small['median_ms']:.0f}, "
        f"frame x{big['frame_bytes'] / small['frame_bytes']:.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
