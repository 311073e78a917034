"""The websocket engine end to end: a hub served in process, real websocket clients.

What the engine does beyond the session rules: its frames are plain RFC 6455 frames any
client reads (text for JSON, binary for msgpack, each payload framed once), and paths other
than ``/ws`` are refused. (``serve --workers N`` is in tests/system/ops/test_workers.py.)
"""

from __future__ import annotations

import asyncio
import json
import uuid

import msgpack
import pytest
import websockets
from websockets.asyncio.client import connect

from hub.transport.engine import frame_bytes, framed
from tests.support.hubproc import user_token
from tests.support.inproc import InProcessHub, inproc_hub_fixture

hub = inproc_hub_fixture()


def test_a_payload_is_framed_once_and_the_frame_is_a_plain_websocket_frame():
    """The same payload object gets the same frame bytes; the header is RFC 6455's."""
    payload = '{"op":"delta"}'
    first = framed(payload)
    assert framed(payload) is first, "the second subscriber gets the cached frame"
    assert first == b"\x81\x0e" + payload.encode()
    big = b"x" * 70_000
    assert frame_bytes(big)[:10] == b"\x82\x7f" + (70_000).to_bytes(8, "big")
    assert frame_bytes(b"y" * 300)[:4] == b"\x82\x7e\x01\x2c"


async def test_frames_arrive_as_text_for_json_and_binary_for_msgpack(hub: InProcessHub):
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


async def test_frames_sent_right_behind_hello_are_answered_after_ready_in_order(hub: InProcessHub):
    """hello, sub and ping in one burst (no wait for ready): ready, snapshot, ack, pong."""
    user = f"burst-{uuid.uuid4().hex[:6]}"
    async with connect(hub.ws_url) as ws:
        await ws.send(json.dumps({"op": "hello", "token": user_token(user)}))
        await ws.send(json.dumps({"op": "sub", "users": [user], "ref": "s"}))
        await ws.send(json.dumps({"op": "ping", "ref": "p"}))
        ops = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(4)]
    assert [f["op"] for f in ops] == ["ready", "snapshot", "ack", "pong"]
    assert ops[2]["ref"] == "s" and ops[3]["ref"] == "p"


async def test_a_status_sent_just_before_the_client_closes_still_takes_effect(hub: InProcessHub):
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


async def test_other_websocket_paths_go_to_the_app_and_unknown_ones_are_refused(hub: InProcessHub):
    """A websocket path the hub does not serve (not /ws, not the Pusher endpoint) is refused
    with an HTTP status before the upgrade, not a hang."""
    with pytest.raises(websockets.InvalidStatus) as info:
        async with connect(f"ws://127.0.0.1:{hub.port}/elsewhere"):
            pass
    assert info.value.response.status_code == 403
