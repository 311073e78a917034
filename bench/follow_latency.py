"""How long a change takes to reach a follower: pub/sub, the change stream, a webhook.

A benchmark, not a test. It starts its own ``redis-server`` and one hub process on it with
``HUB_WEBHOOKS`` pointing at a local HTTP receiver, then makes ``--rate`` status changes per
second for ``--seconds`` (``RedisStore.set_status``, the way a hub node makes them) while
three followers run side by side in this process: a plain pub/sub subscriber, a
``StreamConsumer`` (acking each batch) and the webhook receiver. For every change each
follower records ``receipt time - at`` (``at`` is the store's stamp, Redis ``TIME`` on the
same machine). It prints count, p50, p95, p99 and max per follower, so the three compare
under the same load in the same run.

    python bench/follow_latency.py
    python bench/follow_latency.py --rate 200 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import msgpack  # noqa: E402
from redis.asyncio import Redis  # noqa: E402

from hub.clients.stream import StreamConsumer  # noqa: E402
from hub.stores.presence.base import Profile  # noqa: E402
from hub.stores.presence.redis import RedisStore  # noqa: E402
from tests.support.hubproc import start_hub  # noqa: E402
from tests.support.receiver import Receiver  # noqa: E402
from tests.support.redis_server import start_server  # noqa: E402

PREFIX = "bench:"
SECRET = "bench-secret"


def summary(name: str, values: list[float], expected: int) -> str:
    if not values:
        return f"  {name:9} nothing received"
    q = statistics.quantiles(values, n=100) if len(values) > 1 else values * 99
    return (
        f"  {name:9} {len(values):6d}/{expected} changes  p50 {q[49]:7.1f} ms  "
        f"p95 {q[94]:7.1f} ms  p99 {q[98]:7.1f} ms  max {max(values):7.1f} ms"
    )


async def main(args: argparse.Namespace) -> None:
    server = start_server()
    receiver = await Receiver(SECRET).up()
    logs = Path(tempfile.mkdtemp(prefix="follow-latency-"))
    hub = start_hub(logs, {"HUB_STORE": server.url, "HUB_KEY_PREFIX": PREFIX,
                           "HUB_CHANNEL": f"{PREFIX}presence", "HUB_LOG_LEVEL": "warning",
                           "HUB_WEBHOOKS": f"{receiver.url}|{SECRET}"})  # fmt: skip
    store = RedisStore(server.url, key_prefix=PREFIX, channel=f"{PREFIX}presence")
    await store.start()
    latencies: dict[str, list[float]] = {"pubsub": [], "stream": [], "webhook": []}
    stop = asyncio.Event()

    async def pubsub() -> None:
        r = Redis.from_url(server.url)
        ps = r.pubsub()
        await ps.subscribe(f"{PREFIX}presence")
        try:
            while not stop.is_set():
                m = await ps.get_message(ignore_subscribe_messages=True, timeout=0.5)
                if m is not None:
                    now = time.time() * 1000
                    for u in msgpack.unpackb(m["data"], raw=False)["users"]:
                        latencies["pubsub"].append(now - u["at"])
        finally:
            await ps.aclose()
            await r.aclose()

    async def stream(consumer: StreamConsumer) -> None:
        async for batch in consumer:
            now = time.time() * 1000
            latencies["stream"].extend(now - u["at"] for u in batch.users)
            await consumer.ack(batch)

    try:
        users = [f"u{n}" for n in range(200)]
        for n, uid in enumerate(users):
            await store.connect("bench", f"c{n}", Profile(uid), "online")
        consumer = StreamConsumer(server.url, "bench", "w1", key_prefix=PREFIX, block_ms=500)
        await consumer.start()
        tasks = [asyncio.create_task(pubsub()), asyncio.create_task(stream(consumer))]
        await asyncio.sleep(1.0)  # let the subscriptions settle before measuring
        first_request = len(receiver.requests)
        total = int(args.rate * args.seconds)
        started = time.monotonic()
        for n in range(total):
            delay = started + n / args.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await store.set_status(
                users[n % len(users)], status="busy" if (n // len(users)) % 2 == 0 else "online"
            )
        deadline = time.monotonic() + 30

        def hooked() -> int:
            return sum(len(r.json["users"]) for r in receiver.accepted[first_request:])

        while time.monotonic() < deadline and (
            hooked() < total or len(latencies["stream"]) < total
        ):
            await asyncio.sleep(0.1)  # polling for the end of the run
        stop.set()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await consumer.close()
        for r in receiver.accepted[first_request:]:
            for u in r.json["users"]:
                latencies["webhook"].append(r.at * 1000 - u["at"])
    finally:
        await store.close()
        hub.stop()
        await receiver.close()
        server.cleanup()
    print(
        f"{total} status changes at {args.rate:g}/s over {args.seconds:g} s, one hub on one "
        f"redis-server, followers in one process"
    )
    for name, values in latencies.items():
        # pub/sub and the stream also saw the connects before the timed part: drop them.
        print(summary(name, values[-total:], total))
    posts = len(receiver.accepted) - first_request
    print(f"  webhook POSTs: {posts} ({total / max(1, posts):.1f} changes per POST)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    asyncio.run(main(parser.parse_args()))
