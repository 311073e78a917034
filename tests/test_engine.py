"""The websocket engine end to end: real hub processes, real websocket clients.

What the engine does beyond the session rules: its frames are plain RFC 6455 frames any
client reads (text for JSON, binary for msgpack, each payload framed once), paths other than
``/ws`` are refused, and ``serve --workers N`` runs N nodes on one port over a shared store.
"""

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
import msgpack
import pytest
import websockets
from websockets.asyncio.client import connect

from hub.transport.engine import frame_bytes, framed
from tests.support.hubproc import (
    TEST_ADMIN_KEY,
    TEST_SECRET,
    HubProcess,
    free_port,
    hub_fixture,
    user_token,
)

hub = hub_fixture()


def test_a_payload_is_framed_once_and_the_frame_is_a_plain_websocket_frame():
    """The same payload object gets the same frame bytes; the header is RFC 6455's."""
    payload = '{"op":"delta"}'
    first = framed(payload)
    assert framed(payload) is first, "the second subscriber gets the cached frame"
    assert first == b"\x81\x0e" + payload.encode()
    big = b"x" * 70_000
    assert frame_bytes(big)[:10] == b"\x82\x7f" + (70_000).to_bytes(8, "big")
    assert frame_bytes(b"y" * 300)[:4] == b"\x82\x7e\x01\x2c"


async def test_frames_arrive_as_text_for_json_and_binary_for_msgpack(hub: HubProcess):
    """Both codecs' subscribers read the same delta through an unmodified client library."""
    user = f"codec-{uuid.uuid4().hex[:6]}"
    async with connect(hub.ws_url, subprotocols=["hub.v1.msgpack"]) as packed, \
            connect(hub.ws_url) as text:  # fmt: skip
        assert packed.subprotocol == "hub.v1.msgpack" and text.subprotocol is None
        await packed.send(msgpack.packb({"op": "hello", "token": user_token(f"{user}-p")}))
        await text.send(json.dumps({"op": "hello", "token": user_token(f"{user}-t")}))
        ready_p, ready_t = await packed.recv(), await text.recv()
        assert isinstance(ready_p, bytes) and msgpack.unpackb(ready_p)["op"] == "ready"
        assert isinstance(ready_t, str) and json.loads(ready_t)["op"] == "ready"
        await packed.send(msgpack.packb({"op": "sub", "users": [user]}))
        await text.send(json.dumps({"op": "sub", "users": [user]}))
        assert msgpack.unpackb(await packed.recv())["op"] == "snapshot"
        assert json.loads(await text.recv())["op"] == "snapshot"
        async with connect(hub.ws_url) as actor:
            await actor.send(json.dumps({"op": "hello", "token": user_token(user)}))
            await actor.recv()
            got_p = msgpack.unpackb(await asyncio.wait_for(packed.recv(), 10))
            got_t = json.loads(await asyncio.wait_for(text.recv(), 10))
        assert got_p == got_t and got_p["op"] == "delta" and got_p["users"][0]["id"] == user


async def test_frames_sent_right_behind_hello_are_answered_after_ready_in_order(hub: HubProcess):
    """hello, sub and ping in one burst (no wait for ready): ready, snapshot, ack, pong."""
    user = f"burst-{uuid.uuid4().hex[:6]}"
    async with connect(hub.ws_url) as ws:
        await ws.send(json.dumps({"op": "hello", "token": user_token(user)}))
        await ws.send(json.dumps({"op": "sub", "users": [user], "ref": "s"}))
        await ws.send(json.dumps({"op": "ping", "ref": "p"}))
        ops = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(4)]
    assert [f["op"] for f in ops] == ["ready", "snapshot", "ack", "pong"]
    assert ops[2]["ref"] == "s" and ops[3]["ref"] == "p"


async def test_a_status_sent_just_before_the_client_closes_still_takes_effect(hub: HubProcess):
    """The client's close does not drop a frame it sent before it."""
    user = f"last-{uuid.uuid4().hex[:6]}"
    async with connect(hub.ws_url) as watcher:
        await watcher.send(json.dumps({"op": "hello", "token": user_token(f"{user}-w")}))
        await watcher.recv()
        await watcher.send(json.dumps({"op": "sub", "users": [user]}))
        await watcher.recv()
        async with connect(hub.ws_url) as ws:
            await ws.send(json.dumps({"op": "hello", "token": user_token(user)}))
            await ws.recv()
            await ws.send(json.dumps({"op": "status", "text": "last words"}))
        while True:
            frame = json.loads(await asyncio.wait_for(watcher.recv(), 10))
            if any(u["text"] == "last words" for u in frame.get("users", [])):
                break


async def test_other_websocket_paths_go_to_the_app_and_unknown_ones_are_refused(hub: HubProcess):
    """A websocket path the hub does not serve (not /ws, not the Pusher endpoint) is refused
    with an HTTP status before the upgrade, not a hang."""
    with pytest.raises(websockets.InvalidStatus) as info:
        async with connect(f"ws://127.0.0.1:{hub.port}/elsewhere"):
            pass
    assert info.value.response.status_code == 403


# -- serve --workers N --------------------------------------------------------------------------


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
