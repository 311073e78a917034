"""What the durable path costs Pusher webhooks: Redis streams against the in-process queue.

A benchmark, not a test. One app with one webhook URL, a real HTTP receiver
(``tests/support/receiver.py``) and ``PusherWebhooks`` in this process, on a ``redis-server`` it
starts on a free port (no persistence) and, as the baseline, on ``memory://`` (the queue
Pusher webhooks had before). Each round appends ``--events`` ``member_added`` events at
``--rate`` a second on each variant in turn, and measures per event the time from the
``append`` call to the receiver's arrival of the POST that carries it (batched for 0.25 s,
so about a quarter second either way), and per ``append`` the call's own time. It prints
medians, p95 and max of both, the ratios redis / memory, and the stream's memory per entry
(``MEMORY USAGE`` / ``XLEN``).

    python bench/pusher_webhooks.py
    python bench/pusher_webhooks.py --events 500 --rate 100 --rounds 5
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

from hub.delivery.core import Backoff  # noqa: E402
from hub.delivery.pusher import Durable, PusherWebhooks  # noqa: E402
from hub.ops.apps import App, Webhook  # noqa: E402
from hub.stores.channels.keys import hooks_stream  # noqa: E402
from tests.support.receiver import Receiver  # noqa: E402
from tests.support.redis_server import start_server  # noqa: E402

APP = ("bench", "bench-key", "bench-secret-0123")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one_round(
    durable: Durable | None, events: int, rate: float, tag: str
) -> tuple[list[float], list[float]]:
    """(ms from append to arrival per event, µs per append call)."""
    receiver = await Receiver(APP[2]).up()
    app = App(*APP, webhooks=(Webhook(receiver.url),))
    hooks = PusherWebhooks([app], backoff=Backoff(0.05, 0.5), durable=durable)
    await hooks.start()
    appended: dict[str, float] = {}
    calls: list[float] = []
    try:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for n in range(events):
            # A steady rate, not a synchronisation: the next event is due at n / rate.
            await asyncio.sleep(max(0.0, start + n / rate - loop.time()))
            user = f"{tag}-{n}"
            appended[user] = time.time()
            began = time.perf_counter()
            await hooks.append(app.id, [{"name": "member_added", "channel": "presence-b",
                                         "user_id": user}])  # fmt: skip
            calls.append((time.perf_counter() - began) * 1e6)

        def arrived() -> int:
            return sum(len(r.json["events"]) for r in receiver.accepted)

        await receiver.wait(lambda: arrived() >= events, 60)
    finally:
        await hooks.stop()
        await receiver.close()
    latency = [
        (r.at - appended[e["user_id"]]) * 1000 for r in receiver.accepted for e in r.json["events"]
    ]
    return latency, calls


async def main(args: argparse.Namespace) -> None:
    server = start_server()
    try:
        durable = Durable(server.url, "bp:", "bench-node", node_ttl_ms=10_000, sweep_s=1.0)
        variants: dict[str, Durable | None] = {"memory": None, "redis": durable}
        latency: dict[str, list[float]] = {name: [] for name in variants}
        calls: dict[str, list[float]] = {name: [] for name in variants}
        for n in range(args.rounds):
            for name, where in variants.items():
                lat, cost = await one_round(where, args.events, args.rate, f"{name}{n}")
                latency[name] += lat
                calls[name] += cost
        r = Redis.from_url(server.url)
        stream = hooks_stream("bp:", APP[0])
        length = await r.xlen(stream)
        usage = await r.memory_usage(stream) or 0
        await r.aclose()
    finally:
        server.cleanup()
    print(
        f"pusher webhooks, {args.events} events at {args.rate:g}/s x {args.rounds} rounds, "
        "one receiver, batches of up to 0.25 s"
    )
    for name in variants:
        lat, cost = latency[name], calls[name]
        print(
            f"  {name:6} append->POST ms: median {statistics.median(lat):6.1f}  "
            f"p95 {pct(lat, 0.95):6.1f}  max {max(lat):6.1f}   "
            f"append call us: median {statistics.median(cost):7.1f}  p95 {pct(cost, 0.95):7.1f}"
        )
    ratio = statistics.median(latency["redis"]) / statistics.median(latency["memory"])
    print(f"  redis / memory median append->POST: {ratio:.3f}")
    cost_ratio = statistics.median(calls["redis"]) / statistics.median(calls["memory"])
    print(f"  redis / memory median append call: {cost_ratio:.1f}")
    print(f"  stream: {length} entries, {usage} bytes, {usage / max(1, length):.0f} B/entry")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
