"""Watchlist index: the cost on one node of presence changes reaching Pusher watchlists.

In process, no sockets: W watchers (``-w``, default 10,000), each watching K ids (``-k``,
default 100, Pusher's limit) drawn from a population of U users (``-u``, default 50,000),
registered in a :class:`hub.node.watchlists.Watchlists` over the memory store. Then R rounds
(``-r``, default 20) of one presence batch of B entries (``-b``, default 100: one tick of a
busy cluster), each flipping B random users online or offline, followed by the tick's
flush (one frame per watcher concerned, as the node sends them).

Measured, per round: the time of ``on_batch`` plus ``flush`` (p50, max) and the frames
made; the baseline of the same run is the same batches of users nobody watches (the cost
every node pays for a batch whether or not anyone watches). Also the index's memory
(tracemalloc, after the watchers registered). Prints one table and its command line. Run
``python bench/watchlist_index.py --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shlex
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hub.model.presence import entry_of
from hub.node.watchlists import Watchlists
from hub.ops.config import Settings
from hub.stores.presence import open_store
from hub.stores.presence.base import Batch


def _batch(at: int, users: list[str], rng: random.Random) -> Batch:
    return Batch(at, [entry_of(u, u, u, rng.choice(("online", "offline")), "", at) for u in users])


async def run(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    store = open_store(Settings(store="memory://"))
    await store.start()
    index = Watchlists(store.users, tick_s=3600.0)  # flushed by hand, once a round
    frames = 0

    def send(frame: str) -> None:
        nonlocal frames
        frames += 1

    population = [f"u{i}" for i in range(args.users)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(args.watchers):
        ids = tuple(rng.sample(population, args.ids))
        index.start(await index.watch(ids, send))
    index_bytes = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()

    def rounds(pool: list[str]) -> tuple[list[float], int]:
        nonlocal frames
        frames = 0
        took = []
        for n in range(args.rounds):
            batch = _batch(10_000 + n, rng.sample(pool, args.batch), rng)
            started = time.perf_counter()
            index.on_batch(batch)
            index.flush()
            took.append(time.perf_counter() - started)
        return took, frames

    watched, watched_frames = rounds(population)
    nobody = [f"x{i}" for i in range(args.users)]
    baseline, _ = rounds(nobody)
    index.close()
    await store.close()

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:8.3f} {max(values) * 1000:8.3f}"

    print(f"$ python bench/watchlist_index.py {shlex.join(sys.argv[1:])}")
    print(f"{args.watchers} watchers x {args.ids} ids of {args.users} users; "
          f"batches of {args.batch}, {args.rounds} rounds")  # fmt: skip
    print(f"index memory: {index_bytes / 2**20:.1f} MB")
    print(f"{'batch of':<22} {'p50 ms':>8} {'max ms':>8} {'frames/round':>13}")
    print(f"{'watched users':<22} {ms(watched)} {watched_frames / args.rounds:13.0f}")
    print(f"{'unwatched (baseline)':<22} {ms(baseline)} {0:13d}")
    ratio = statistics.median(watched) / max(statistics.median(baseline), 1e-9)
    print(f"ratio watched/baseline (p50): {ratio:.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-w", "--watchers", type=int, default=10_000)
    parser.add_argument("-k", "--ids", type=int, default=100)
    parser.add_argument("-u", "--users", type=int, default=50_000)
    parser.add_argument("-b", "--batch", type=int, default=100)
    parser.add_argument("-r", "--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=17)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
