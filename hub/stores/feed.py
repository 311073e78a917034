"""A Redis pub/sub subscription that survives its connection: the feeds' shared transport.

:class:`Subscription` subscribes to channels on one connection (any node of a cluster: a
plain PUBLISH reaches every node), yields every message as ``(channel, data)``, and after a
reconnect yields :data:`GAP` once the channels are subscribed again, since messages may
have been lost meanwhile. It reconnects with capped exponential backoff, PINGs a silent
connection and gives it up when the PING goes unanswered, so a half-open socket cannot
hang a feed. No queue of its own: a slow reader leaves messages in Redis's bounded output
buffer; if Redis drops it for that, the reconnect yields a GAP and the reader recovers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing
from typing import Any, Final, cast

from redis import exceptions as rex
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from hub.ops.tasks import cancel_requested

log = logging.getLogger("hub.store.feed")


async def close_pubsub(pubsub: PubSub) -> None:
    """``pubsub.aclose()``, typed: untyped in some redis-py releases, typed in others, so a
    ``type: ignore`` would be unused on one of them."""
    close = cast(Callable[[], Awaitable[None]], pubsub.aclose)
    await close()


BACKOFF_FIRST_S = 0.05
BACKOFF_CAP_S = 1.0
#: Seconds of silence before a PING; twice that without an answer ends the connection.
PING_AFTER_S = 5

#: Yielded after a resubscription: messages may have been lost.
GAP: Final = object()

Message = tuple[bytes, bytes]


class Subscription:
    """Channels on Redis, across reconnects. ``close()`` ends every iteration."""

    def __init__(
        self,
        url: str,
        channels: Sequence[str],
        *,
        what: str,
        timeout_s: float,
        cluster_nodes: list[tuple[str, int]] | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.url = url
        self.channels = list(channels)
        self.what = what
        self.timeout_s = timeout_s
        self.cluster_nodes = cluster_nodes
        self.username = username
        self.password = password
        self._last = self.channels[-1].encode()
        self._clients: set[Redis] = set()
        self._closed = False

    async def close(self) -> None:
        self._closed = True
        for client in list(self._clients):
            await client.aclose()

    def _client(self, attempt: int) -> Redis:
        options: dict[str, Any] = {
            "socket_timeout": self.timeout_s,
            "socket_connect_timeout": self.timeout_s,
            "retry": Retry(NoBackoff(), 0),
        }
        if not self.cluster_nodes:
            return Redis.from_url(self.url, **options)
        # On failure the next cluster node is tried.
        host, port = self.cluster_nodes[attempt % len(self.cluster_nodes)]
        return Redis(
            host=host, port=port, username=self.username, password=self.password, **options
        )

    async def messages(self) -> AsyncGenerator[Message | object]:
        attempt = 0
        resumed = False
        while not self._closed:
            client = self._client(attempt)
            self._clients.add(client)
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(*self.channels)
                async with aclosing(self._listen(pubsub, gap=resumed)) as feed:
                    async for item in feed:
                        attempt = 0
                        yield item
            except (rex.RedisError, OSError, AttributeError, RuntimeError, EOFError) as exc:
                # Besides redis-py's errors: a connection closed under a cluster failover
                # fails inside redis-py with AttributeError or RuntimeError (closed
                # transport). Each one means "reconnect", never the end of the feed.
                if self._closed:
                    return
                if cancel_requested():  # redis-py turned the stop into its own error
                    raise asyncio.CancelledError from exc
                # Once per outage at warning level; the retries every second at debug.
                level = logging.WARNING if attempt == 0 else logging.DEBUG
                log.log(level, "%s lost (%s); reconnecting", self.what, exc)
            finally:
                self._clients.discard(client)
                await close_pubsub(pubsub)
                await client.aclose()
            if self._closed:
                return
            resumed = True
            attempt += 1
            await asyncio.sleep(min(BACKOFF_CAP_S, BACKOFF_FIRST_S * 2 ** (attempt - 1)))

    async def _listen(self, pubsub: PubSub, *, gap: bool) -> AsyncGenerator[Message | object]:
        silent = 0
        while True:
            message = await pubsub.get_message(timeout=1.0)
            if message is None:
                silent += 1
                if silent == PING_AFTER_S:
                    await pubsub.ping()
                elif silent >= 2 * PING_AFTER_S:
                    raise rex.ConnectionError(f"{self.what}: no answer to PING")
                continue
            silent = 0
            kind = message["type"]
            if kind == "message":
                yield (message["channel"], message["data"])
            elif kind == "subscribe" and message["channel"] == self._last:
                # The last channel's confirmation ends a (re)subscription; redis-py may also
                # resubscribe on its own after a reconnect, which lands here too.
                if gap:
                    yield GAP
                gap = True
