"""The pub/sub consumer (hub.clients.pubsub) on a real redis-server, with a hub served in
process on the same Redis: a gap recovered through REST, bad credentials refused."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from redis.asyncio import Redis

from hub.clients.pubsub import PubSubConsumer, RecoveryRefused, decode_message
from hub.clients.ws import (
    connect,
)
from tests.support import eventually
from tests.support.hubproc import (
    TEST_ADMIN_KEY,
    user_token,
)
from tests.support.inproc import InProcessHub
from tests.support.redis_server import RedisServer

TIMEOUT_S = 15.0


def uid(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:6]}"


def _async(check: Any) -> Any:
    async def run() -> Any:
        return check()

    return run


class TcpRelay:
    """A real TCP relay in front of Redis that can refuse new connections: it keeps the
    consumer disconnected for as long as a test needs a change to fall into the gap."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.refusing = False
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> TcpRelay:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest.fixture
def channel(key_prefix: str) -> str:
    return f"{key_prefix}presence"


@pytest.fixture
def redis_hub(redis_url: str, key_prefix: str, channel: str) -> Iterator[InProcessHub]:
    env = {
        "HUB_STORE": redis_url,
        "HUB_KEY_PREFIX": key_prefix,
        "HUB_CHANNEL": channel,
        "HUB_OFFLINE_GRACE_S": "0.2",
    }
    process = InProcessHub(env).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.mark.redis
async def test_pubsub_consumer_recovers_a_gap_through_rest(
    redis_hub: InProcessHub, redis_server: RedisServer, redis_url: str, channel: str
) -> None:
    """The consumer follows the channel; after CLIENT KILL TYPE pubsub, a change made while
    it was cut off comes back through GET users.presence?from=<cursor>."""
    alice = uid("alice")
    relay = await TcpRelay(redis_server.port).start()
    plain = Redis.from_url(redis_url)
    watch = plain.pubsub()
    try:
        consumer = PubSubConsumer(relay.url, channel=channel, api_url=redis_hub.url,
                                  api_key=TEST_ADMIN_KEY, backoff_max_s=0.2)  # fmt: skip
        async with consumer, connect(redis_hub.url, user_token(alice)) as a:
            assert consumer.recoveries == 1  # the first load
            await eventually(_async(lambda: alice in consumer.state))
            assert consumer.state[alice]["status"] == "online"
            assert consumer.messages >= 1  # that change came by pub/sub
            messages = consumer.messages

            relay.refusing = True
            killed = redis_server.command("CLIENT", "KILL", "TYPE", "pubsub")
            assert killed.startswith(b":") and int(killed[1:]) >= 1
            await eventually(_async(lambda: not consumer._subscribed.is_set()))
            await watch.subscribe(channel)  # after the kill, which ends every subscriber
            await a.set_status("busy", "during the gap")
            # The hub published it (a plain subscriber sees it) while the consumer was away.
            await _published(watch, alice, "busy")
            assert consumer.state[alice]["status"] == "online"

            relay.refusing = False
            await eventually(_async(lambda: consumer.gaps == 1 and consumer.recoveries == 2),
                             TIMEOUT_S)  # fmt: skip
            assert consumer.state[alice]["status"] == "busy"
            assert consumer.state[alice]["text"] == "during the gap"
            assert consumer.messages == messages, "the busy state must have come from REST"

            # Back on the channel: later changes flow by pub/sub again.
            await a.set_status("away")
            await eventually(_async(lambda: consumer.state[alice]["status"] == "away"))
            assert consumer.messages > messages
    finally:
        await watch.aclose()  # type: ignore[no-untyped-call]
        await plain.aclose()
        await relay.close()


async def _published(watch: Any, user: str, status: str) -> None:
    async def seen() -> bool:
        message = await watch.get_message(timeout=0.5)
        if message is None or message["type"] != "message":
            return False
        _, entries = decode_message(message["data"])
        return any(e["id"] == user and e["status"] == status for e in entries)

    await eventually(seen, TIMEOUT_S)


@pytest.mark.redis
async def test_pubsub_consumer_refuses_bad_credentials(
    redis_hub: InProcessHub, redis_url: str, channel: str
) -> None:
    """A wrong api_key is a configuration error: start() raises instead of retrying forever."""
    consumer = PubSubConsumer(redis_url, channel=channel, api_url=redis_hub.url, api_key="wrong")
    with pytest.raises(RecoveryRefused, match="401"):
        await asyncio.wait_for(consumer.start(), TIMEOUT_S)
    await consumer.close()
