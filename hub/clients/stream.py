"""A consumer of the hub's durable change stream for other services: at-least-once, acked.

Every change batch the hub makes is appended to a Redis Stream (``hub:changes``; one per
bucket on a Redis Cluster, read and merged here), trimmed to the hub's window. Unlike pub/sub
(:mod:`hub.clients.pubsub`), a consumer that restarts resumes where its consumer group was,
and a batch one consumer read but did not acknowledge before it died is reclaimed by another
consumer of the same group once it has been pending ``claim_idle_ms``.

::

    from hub.clients.stream import StreamConsumer

    async with StreamConsumer("redis://localhost:6379/0", "billing", "worker-1",
                              api_url="http://localhost:8000", api_key=ADMIN_KEY) as c:
        async for batch in c:
            for entry in batch.users:
                print(entry["id"], entry["status"])
            await c.ack(batch)

A consumer whose group fell out of the stream (it was away longer than the window, so
entries it never read were trimmed; or Redis lost the stream and its groups, e.g. it
restarted without persistence) gets one batch with ``gap=True``: when ``api_url`` is
given, its ``users`` are a full snapshot from ``GET /api/v1/users.presence`` (``full=True``,
everyone not offline; whoever it leaves out is offline), else it is empty and only says that
changes were lost. Entries after a snapshot may be older than it: merge by ``at``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx

from hub.clients.pubsub import RecoveryFailed, RecoveryRefused, _lower_bound, _rest_entry
from hub.delivery.stream import GroupReader, StreamEntry, stream_client, stream_keys
from hub.model.presence import Entry

__all__ = ["StreamBatch", "StreamConsumer"]

log = logging.getLogger("hub.client.stream")


@dataclass(frozen=True)
class StreamBatch:
    """One batch: a stream entry (``id`` is its entry id), or a gap's snapshot (``id`` '')."""

    id: str
    cursor: int
    users: list[Entry]
    stream: str = ""
    #: Entries the group never read were trimmed from the stream before this batch.
    gap: bool = False
    #: ``users`` is a full snapshot: everyone not offline.
    full: bool = False
    entry: StreamEntry | None = field(default=None, repr=False)


class StreamConsumer:
    """Consumer ``consumer`` of group ``group`` on the hub's change stream(s).

    ``key_prefix`` is the hub's ``HUB_KEY_PREFIX``; on a cluster (``redis+cluster://``) the
    consumer reads ``buckets`` streams (``HUB_BUCKETS``, 16 when 0). A new group starts at
    ``start``: ``$`` (changes from now on) or ``0`` (everything still in the stream).
    ``claim_idle_ms``: how long a batch stays pending before another consumer takes it over;
    it must be longer than this consumer takes to handle and ack a batch.
    """

    def __init__(
        self,
        redis_url: str,
        group: str,
        consumer: str,
        *,
        key_prefix: str = "hub:",
        buckets: int = 0,
        start: str = "$",
        api_url: str | None = None,
        api_key: str | None = None,
        count: int = 100,
        block_ms: int = 1000,
        claim_idle_ms: int = 30_000,
        http_timeout_s: float = 10.0,
    ) -> None:
        if not group or not consumer:
            raise ValueError("StreamConsumer needs a group and a consumer name")
        self.redis_url = redis_url
        self.group = group
        self.consumer = consumer
        self.api_url = api_url.rstrip("/") if api_url else None
        self._api_key = api_key
        self.count = count
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.http_timeout_s = http_timeout_s
        cluster = redis_url.startswith("redis+cluster://")
        self.streams = stream_keys(key_prefix, cluster=cluster, buckets=buckets)
        self._redis = stream_client(redis_url, block_s=block_ms / 1000)
        self._reader = GroupReader(self._redis, self.streams, group, consumer, start=start)
        self._started = False
        self._next_claim = 0.0
        #: Gaps reported (batches with ``gap=True``).
        self.gaps = 0
        #: Entries this consumer took over from others (XAUTOCLAIM).
        self.claimed = 0

    async def __aenter__(self) -> StreamConsumer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        if not self._started:
            await self._reader.ensure()
            self._started = True

    async def close(self) -> None:
        await self._redis.aclose()

    def __aiter__(self) -> AsyncIterator[StreamBatch]:
        return self.batches()

    async def batches(self) -> AsyncIterator[StreamBatch]:
        """Batches in stream order: first what this consumer left pending (a restart under
        the same name), then, forever, what others left pending too long, a snapshot when
        the group fell out of the stream, and new entries."""
        await self.start()
        for e in await self._reader.pending_mine(self.count):
            yield self._batch(e)
        while True:
            claimed, lost = await self._claim_due()
            for e in claimed:
                yield self._batch(e)
            if lost or self._reader.take_lost() or await self._reader.behind():
                yield await self._gap()
            entries = await self._reader.read(self.count, self.block_ms)
            if self._reader.take_lost():  # the group vanished (Redis lost it): say so
                yield await self._gap()
            for e in entries:
                yield self._batch(e)

    async def ack(self, batch: StreamBatch) -> None:
        """Acknowledge a batch: no other consumer of the group will get it again."""
        if batch.entry is not None:
            await self._reader.ack([batch.entry])

    async def _claim_due(self) -> tuple[list[StreamEntry], int]:
        now = time.monotonic()
        if now < self._next_claim:
            return [], 0
        self._next_claim = now + max(0.05, self.claim_idle_ms / 2000)
        entries, lost = await self._reader.claim(self.claim_idle_ms, self.count)
        self.claimed += len(entries)
        return entries, lost

    @staticmethod
    def _batch(e: StreamEntry) -> StreamBatch:
        return StreamBatch(id=e.id, cursor=e.cursor, users=e.users, stream=e.stream, entry=e)

    async def _gap(self) -> StreamBatch:
        self.gaps += 1
        if self.api_url is None:
            log.warning(
                "change stream gap: entries were trimmed before %s read them "
                "(no api_url for a snapshot)",
                self.group,
            )
            return StreamBatch(id="", cursor=0, users=[], gap=True)
        users, at = await self._snapshot()
        entries = [e for e in (_rest_entry(u, at) for u in users) if e is not None]
        return StreamBatch(id="", cursor=at, users=entries, gap=True, full=True)

    async def _snapshot(self) -> tuple[list[Mapping[str, Any]], int]:
        """Every user not offline, from the hub's REST API (retried with backoff)."""
        assert self.api_url is not None
        url = f"{self.api_url}/api/v1/users.presence"
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        delay = 0.1
        async with httpx.AsyncClient(timeout=self.http_timeout_s) as http:
            while True:
                try:
                    return await self._get(http, url, headers)
                except RecoveryRefused:
                    raise
                except RecoveryFailed as exc:
                    log.warning("stream gap snapshot failed (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)

    @staticmethod
    async def _get(
        http: httpx.AsyncClient, url: str, headers: dict[str, str]
    ) -> tuple[list[Mapping[str, Any]], int]:
        try:
            response = await http.get(url, headers=headers)
        except httpx.HTTPError as exc:
            raise RecoveryFailed(f"users.presence: {exc}") from None
        if response.status_code in (401, 403, 404):
            raise RecoveryRefused(
                f"{url} answered {response.status_code}: check api_url and api_key"
            )
        body: Any = None
        with contextlib.suppress(ValueError):
            body = response.json()
        if response.status_code != 200 or not isinstance(body, dict):
            raise RecoveryFailed(f"users.presence answered {response.status_code}")
        users = body.get("users")
        if not isinstance(users, list):
            raise RecoveryFailed("users.presence answered without a users list")
        return users, _lower_bound(response.headers.get("Date"))
