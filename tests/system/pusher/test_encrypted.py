"""End-to-end encrypted channels (``private-encrypted-``) on two hubs sharing one Redis, with
the real clients: pusher-js with its ``nacl`` option (tweetnacl), and the npm ``pusher``
SDK with ``encryptionMasterKeyBase64`` as both the auth endpoint (``authorizeChannel``
answers the channel's ``shared_secret``) and the trigger (it encrypts the event). The hub
only ever relays ciphertext; client events on such a channel are refused, as Pusher does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.support.hubproc import HubProcess, running_hubs
from tests.support.pusher import (
    APP_ID,
    APP_KEY,
    APP_SECRET,
    APPS_ENV,
    JS_DIR,
    Driver,
    ev,
    node_binary,
    store_env,
)

pytestmark = [pytest.mark.redis, pytest.mark.slow]

MASTER_KEY = base64.b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture(scope="module")
def nodes(
    redis_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[HubProcess, ...]]:
    prefix = f"t{uuid.uuid4().hex[:10]}:"
    env = {
        **store_env(redis_server.url, prefix),
        "HUB_PUSHER_APPS": APPS_ENV,
    }
    with running_hubs(tmp_path_factory.mktemp("encrypted"), env) as hubs:
        yield hubs


@pytest.fixture
def auth_url() -> Iterator[str]:
    """The npm SDK's auth endpoint (auth_server.mjs), with the app's master key."""
    spec = {"appId": APP_ID, "key": APP_KEY, "secret": APP_SECRET,
            "encryptionMasterKeyBase64": MASTER_KEY}  # fmt: skip
    process = subprocess.Popen(
        [node_binary(), str(JS_DIR / "auth_server.mjs"), json.dumps(spec)],
        cwd=JS_DIR,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # written once it listens; EOF if it died
        assert line, "auth_server.mjs exited before listening"
        yield f"http://127.0.0.1:{json.loads(line)['port']}/auth"
    finally:
        assert process.stdin is not None
        process.stdin.close()  # its signal to stop
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def npm_trigger(port: int, channel: str, event: str, data: Any) -> dict[str, Any]:
    """``trigger`` of the npm SDK with the master key: it encrypts ``data`` for the channel."""
    spec = {"port": port, "appId": APP_ID, "key": APP_KEY, "secret": APP_SECRET,
            "encryptionMasterKeyBase64": MASTER_KEY,
            "calls": [{"fn": "trigger", "args": [channel, event, data]}]}  # fmt: skip
    done = subprocess.run(
        [node_binary(), str(JS_DIR / "server_sdk.mjs"), json.dumps(spec)],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    (result,) = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return result


async def _frame(ws: Any, event: str, channel: str | None = None) -> dict[str, Any]:
    async with asyncio.timeout(20):
        while True:
            frame: dict[str, Any] = json.loads(await ws.recv())
            if frame["event"] == event and channel in (None, frame.get("channel")):
                return frame


@contextlib.asynccontextmanager
async def raw_subscriber(node: HubProcess, channel: str, auth_url: str) -> Any:
    """A plain websocket client subscribed to ``channel``, authorized by the same endpoint
    as pusher-js (it keeps the shared secret to itself: it only looks at the frames)."""
    async with connect(f"ws://127.0.0.1:{node.port}/app/{APP_KEY}?protocol=7") as ws:
        hello = await _frame(ws, "pusher:connection_established")
        socket_id = json.loads(hello["data"])["socket_id"]
        async with httpx.AsyncClient(timeout=10) as http:
            form = {"socket_id": socket_id, "channel_name": channel}
            answer = (await http.post(auth_url, data=form)).json()
        assert answer["shared_secret"], "authorizeChannel answers the channel's secret"
        auth = answer["auth"]
        subscribe = {"event": "pusher:subscribe", "data": {"channel": channel, "auth": auth}}
        await ws.send(json.dumps(subscribe))
        await _frame(ws, "pusher_internal:subscription_succeeded", channel)
        yield ws


async def test_an_event_triggered_through_the_hub_arrives_decrypted_in_pusher_js(
    nodes: tuple[HubProcess, ...], driver: Driver, auth_url: str
) -> None:
    """pusher-js on node1 subscribes with the SDK's shared_secret; the SDK triggers on
    node2; pusher-js gets the plaintext, while the hub relayed only nonce and ciphertext."""
    node1, node2 = nodes
    channel = f"private-encrypted-vault-{uuid.uuid4().hex[:6]}"
    send = asyncio.to_thread
    driver.send(op="pusher", id="a", key=APP_KEY, port=node1.port, auth=auth_url, nacl=True)
    await send(driver.wait, ev("a", "connected"))
    driver.send(op="subscribe", id="a", channel=channel)
    await send(driver.wait, ev("a", "subscribed", channel=channel))
    async with raw_subscriber(node2, channel, auth_url) as ws:
        message = {"text": "the combination is 12-34-56", "n": 7}
        result = await send(npm_trigger, node2.port, channel, "secret-note", message)
        assert result["status"] == 200, result
        got = await send(driver.wait, ev("a", "event", channel=channel, event="secret-note"))
        assert got["data"] == message
        relayed = await _frame(ws, "secret-note", channel)
    payload = json.loads(relayed["data"])
    assert set(payload) == {"nonce", "ciphertext"}
    assert "combination" not in relayed["data"], "the hub never sees the plaintext"


async def test_a_client_event_on_an_encrypted_channel_is_refused_and_the_socket_stays_open(
    nodes: tuple[HubProcess, ...], driver: Driver, auth_url: str
) -> None:
    """A client event on a private-encrypted- channel gets pusher:error and reaches nobody;
    the socket still answers a ping, and later events still arrive."""
    node1, node2 = nodes
    channel = f"private-encrypted-chat-{uuid.uuid4().hex[:6]}"
    send = asyncio.to_thread
    driver.send(op="pusher", id="a", key=APP_KEY, port=node1.port, auth=auth_url, nacl=True)
    await send(driver.wait, ev("a", "connected"))
    driver.send(op="subscribe", id="a", channel=channel)
    await send(driver.wait, ev("a", "subscribed", channel=channel))
    async with raw_subscriber(node2, channel, auth_url) as ws:
        client = {"event": "client-typing", "channel": channel, "data": {"on": True}}
        await ws.send(json.dumps(client))
        error = await _frame(ws, "pusher:error")
        assert "client events" in error["data"]["message"]  # Pusher's error data: an object
        await ws.send(json.dumps({"event": "pusher:ping", "data": {}}))
        await _frame(ws, "pusher:pong")
        # A later event reaches both: the refused one, before it, reached neither.
        result = await send(npm_trigger, node1.port, channel, "after", {"ok": True})
        assert result["status"] == 200, result
        await send(driver.wait, ev("a", "event", channel=channel, event="after"))
        await _frame(ws, "after", channel)
    assert not driver.seen(lambda e: e.get("event") == "client-typing")
