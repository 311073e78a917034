"""A change-stream consumer killed with SIGKILL (its own process) while it holds a batch
loses nothing: another consumer of the group claims it and acks both changes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from hub.clients.stream import StreamBatch, StreamConsumer
from hub.stores.presence.base import Profile
from hub.stores.presence.redis import RedisStore
from tests.support.hubproc import HubProcess, start_hub

pytestmark = pytest.mark.redis


WAIT_S = 20.0


@pytest.fixture
async def store(redis_url: str, key_prefix: str) -> AsyncIterator[RedisStore]:
    s = RedisStore(redis_url, key_prefix=key_prefix, channel=f"{key_prefix}presence",
                   grace_ms=0)  # fmt: skip
    await s.start()
    yield s
    await s.close()


async def _take(it: AsyncIterator[StreamBatch], n: int) -> list[StreamBatch]:
    async def run() -> list[StreamBatch]:
        return [await anext(it) for _ in range(n)]

    return await asyncio.wait_for(run(), WAIT_S)


async def _pending(redis_url: str, key: str, group: str) -> int:
    r = Redis.from_url(redis_url)
    try:
        info = await r.xpending(key, group)
        return int(info["pending"])
    finally:
        await r.aclose()


CONSUMER_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from hub.clients.stream import StreamConsumer

    async def main():
        url, prefix = sys.argv[1], sys.argv[2]
        async with StreamConsumer(url, "svc", "doomed", key_prefix=prefix,
                                  block_ms=200) as c:
            print("READY", flush=True)
            async for batch in c:
                print("GOT", batch.id, flush=True)
                await asyncio.Event().wait()  # handling it: killed before the ack

    asyncio.run(main())
    """
)


@pytest.fixture
def doomed(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)
        if p.stdout:
            p.stdout.close()


async def _line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), WAIT_S)
    assert line, "the consumer process exited early"
    return line.strip()


async def test_consumer_killed_mid_batch_loses_nothing(
    redis_url: str, key_prefix: str, store: RedisStore,
    doomed: list[subprocess.Popen[str]],
) -> None:  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-c", CONSUMER_SCRIPT, redis_url, key_prefix],
                            stdout=subprocess.PIPE, text=True, env=env)  # fmt: skip
    doomed.append(proc)
    assert await _line(proc) == "READY"
    await store.connect("n1", "c1", Profile("alice"), "online")
    got = await _line(proc)
    assert got.startswith("GOT ")
    held = got.split()[1]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    await store.connect("n1", "c2", Profile("bob"), "online")

    survivor = StreamConsumer(redis_url, "svc", "survivor", key_prefix=key_prefix,
                              block_ms=200, claim_idle_ms=300)  # fmt: skip
    async with survivor:
        it = aiter(survivor)
        seen: dict[str, StreamBatch] = {}
        while len(seen) < 2:
            (batch,) = await _take(it, 1)
            seen[batch.id] = batch
            await survivor.ack(batch)
        assert held in seen
        assert seen[held].users[0]["id"] == "alice"
        assert {b.users[0]["id"] for b in seen.values()} == {"alice", "bob"}
        assert survivor.claimed >= 1
    assert await _pending(redis_url, f"{key_prefix}changes", "svc") == 0


@pytest.fixture
def hub(tmp_path: Path, redis_url: str, key_prefix: str) -> Iterator[HubProcess]:
    process = start_hub(tmp_path, {"HUB_STORE": redis_url, "HUB_KEY_PREFIX": key_prefix,
                                   "HUB_CHANNEL": f"{key_prefix}presence"})  # fmt: skip
    try:
        yield process
    finally:
        process.stop()
    process.assert_no_tracebacks()
