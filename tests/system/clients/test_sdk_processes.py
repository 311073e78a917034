"""The SDK against hub processes: a node restart (SIGTERM, 1012) reconnects and resumes by
cursor; and the examples in examples/ run as written, as their own processes."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.clients.ws import (
    Client,
    connect,
)
from tests.support import eventually
from tests.support.hubproc import (
    TEST_ADMIN_KEY,
    HubProcess,
    hub_fixture,
    start_hub,
    user_token,
)

ROOT = Path(__file__).resolve().parents[3]


TIMEOUT_S = 15.0


hub = hub_fixture({"HUB_OFFLINE_GRACE_S": "0.2"})


def uid(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:6]}"


def _async(check: Any) -> Any:
    async def run() -> Any:
        return check()

    return run


@pytest.fixture
def redis_env(redis_url: str, key_prefix: str) -> dict[str, str]:
    return {"HUB_STORE": redis_url, "HUB_KEY_PREFIX": key_prefix,
            "HUB_CHANNEL": f"{key_prefix}presence", "HUB_OFFLINE_GRACE_S": "0.2"}  # fmt: skip


@pytest.mark.redis
async def test_node_restart_1012_reconnects_and_resumes(
    redis_env: dict[str, str], tmp_path: Path
) -> None:
    """SIGTERM closes with 1012; the client reconnects when the node is back and receives,
    by cursor, the change made on another node while it was away."""
    first = start_hub(tmp_path, redis_env, name="first")
    second = start_hub(tmp_path, redis_env, name="second")
    watcher, mover = uid("watcher"), uid("mover")
    try:
        async with connect(second.url, user_token(mover)) as m:
            client = Client(first.url, user_token(watcher), backoff_max_s=0.5,
                            resume_slack_ms=0)  # one Redis, one clock  # fmt: skip
            async with client as c:
                await c.subscribe("all")
                await eventually(_async(lambda: mover in c.state()))
                first.stop()  # drains: 1012 to every socket
                await eventually(_async(lambda: not c.connected))
                assert c.last_close is not None and c.last_close[0] == 1012
                await m.set_status("busy", "while the node restarted")
                first.start()  # same port
                await eventually(_async(lambda: c.reconnects == 1 and c.connected), TIMEOUT_S)
                await eventually(_async(lambda: c.state()[mover]["status"] == "busy"))
                sub = c.subscription("all")
                assert sub is not None and sub.delta_snapshots >= 1
    finally:
        first.stop()
        second.stop()


async def test_sdk_example_runs_against_a_live_hub(hub: HubProcess) -> None:
    """examples/sdk_watch.py prints who is online, then a change made by someone else."""
    me, other = uid("example"), uid("colleague")
    async with connect(hub.url, user_token(other)) as o:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "examples" / "sdk_watch.py"), hub.url,
            user_token(me), "1", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            assert process.stdout is not None
            lines: list[str] = []
            while not all(any(u in line for line in lines) for u in (me, other)):
                raw = await asyncio.wait_for(process.stdout.readline(), TIMEOUT_S)
                assert raw, f"the example ended early: {lines}"
                lines.append(raw.decode())
            assert next(line for line in lines if other in line).split()[:3] == [
                "now",
                other,
                "online",
            ]
            mine = next(line for line in lines if me in line)
            assert "watching presence" in mine
            await o.set_status("away", "coffee")
            out, err = await asyncio.wait_for(process.communicate(), TIMEOUT_S)
            assert process.returncode == 0, err.decode()
            change = out.decode().strip().splitlines()[-1].split()
            assert change[:3] == ["change", other, "away"] and change[-1] == "coffee"
        finally:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


@pytest.fixture
def channel(key_prefix: str) -> str:
    return f"{key_prefix}presence"


@pytest.fixture
def redis_hub(
    redis_url: str, key_prefix: str, channel: str, tmp_path: Path
) -> Iterator[HubProcess]:
    env = {
        "HUB_STORE": redis_url,
        "HUB_KEY_PREFIX": key_prefix,
        "HUB_CHANNEL": channel,
        "HUB_OFFLINE_GRACE_S": "0.2",
    }
    process = start_hub(tmp_path, env)
    try:
        yield process
    finally:
        process.stop()


@pytest.mark.redis
async def test_pubsub_example_runs(redis_hub: HubProcess, redis_url: str, channel: str) -> None:
    """examples/pubsub_consumer.py prints who is online, then each change."""
    alice = uid("alice")
    async with connect(redis_hub.url, user_token(alice)) as a:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "examples" / "pubsub_consumer.py"), redis_url,
            redis_hub.url, TEST_ADMIN_KEY, channel, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            assert process.stdout is not None

            async def line_with(*words: str) -> str:
                while True:
                    assert process.stdout is not None
                    raw = await asyncio.wait_for(process.stdout.readline(), TIMEOUT_S)
                    assert raw, "the example ended early"
                    if all(w in raw.decode().split() for w in words):
                        return raw.decode()

            await line_with(alice, "online")
            await a.set_status("busy", "example")
            assert (await line_with(alice, "busy")).split() == [alice, "busy", "example"]
        finally:
            process.kill()
            await process.wait()
