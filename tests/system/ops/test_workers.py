"""``serve --workers N``: N hub processes, N nodes, on one port over a shared store."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.asyncio.client import connect

from tests.support.hubproc import (
    TEST_ADMIN_KEY,
    TEST_SECRET,
    free_port,
    user_token,
)


def test_workers_refuse_the_memory_store(tmp_path: Path):
    """--workers 2 with memory:// exits 2 and says why, before binding anything."""
    env = {**os.environ, "HUB_STORE": "memory://", "HUB_SECRET": TEST_SECRET,
           "HUB_ADMIN_KEY": TEST_ADMIN_KEY, "XDG_STATE_HOME": str(tmp_path)}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "hub", "serve", "--port", str(free_port()), "--workers", "2"],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--workers 2 needs a shared store" in done.stderr and "memory" in done.stderr


@pytest.mark.redis
async def test_two_workers_share_one_port_and_one_presence(
    tmp_path: Path, redis_url: str, key_prefix: str
):
    """Two workers on one port are two nodes: connections land on both, a change made on
    one reaches a subscriber on the other, and SIGTERM drains both (1012) and exits 0."""
    port = free_port()
    base = f"w{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "HUB_STORE": redis_url, "HUB_KEY_PREFIX": key_prefix,
           "HUB_SECRET": TEST_SECRET, "HUB_ADMIN_KEY": TEST_ADMIN_KEY, "HUB_NODE_ID": base,
           "HUB_LOG_FORMAT": "text", "XDG_STATE_HOME": str(tmp_path)}  # fmt: skip
    log = (tmp_path / "workers.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "2"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    clients: list[websockets.ClientConnection] = []
    try:
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient(timeout=2) as http:
            while True:
                assert proc.poll() is None, (tmp_path / "workers.log").read_text()
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "workers not ready in 30 s"
                await asyncio.sleep(0.05)
        by_node: dict[str, websockets.ClientConnection] = {}
        # /readyz answers once one worker listens; the other may bind a moment later, so
        # connections go on until both have taken one (the kernel spreads them by hash).
        i = 0
        while len(by_node) < 2 and time.monotonic() < deadline:
            ws = await connect(f"ws://127.0.0.1:{port}/ws")
            await ws.send(json.dumps({"op": "hello", "token": user_token(f"{base}-u{i}")}))
            ready = json.loads(await asyncio.wait_for(ws.recv(), 10))
            node_id = ready["conn"].rsplit(".", 1)[0]
            if node_id in by_node:
                await ws.close()
            else:
                by_node[node_id] = ws
                clients.append(ws)
            i += 1
        assert sorted(by_node) == [f"{base}-0", f"{base}-1"], by_node.keys()
        watcher, other = by_node[f"{base}-0"], by_node[f"{base}-1"]
        await watcher.send(json.dumps({"op": "sub", "all": True}))
        assert json.loads(await asyncio.wait_for(watcher.recv(), 10))["op"] == "snapshot"
        await other.send(json.dumps({"op": "status", "text": "across workers", "ref": 1}))
        while True:
            frame = json.loads(await asyncio.wait_for(watcher.recv(), 10))
            if frame["op"] == "delta" and any(u["text"] == "across workers"
                                              for u in frame["users"]):  # fmt: skip
                break
        proc.send_signal(signal.SIGTERM)
        for ws in (watcher, other):
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.recv(), 15)
            assert ws.close_code == 1012
        assert await asyncio.to_thread(proc.wait, 20) == 0
    finally:
        for ws in clients:
            await ws.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()
