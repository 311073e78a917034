"""Webhook delivery: POST a body to a URL until it answers 2xx, with backoff.

A small interface (:class:`Delivery`) so the hub's general webhook delivery can carry these
later; :class:`RetryingDelivery` is the one used now: an in-memory queue, a few concurrent
senders, retries with exponential backoff (1 s doubling, at most 60 s apart) for
:data:`GIVE_UP_S` (6 minutes) after the first attempt. Nothing survives a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

import httpx

log = logging.getLogger("hub.pusher.delivery")
# httpx logs every request with its URL at INFO; a webhook URL may carry a token.
logging.getLogger("httpx").setLevel(logging.WARNING)

GIVE_UP_S = 360.0
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0
SENDERS = 4
TIMEOUT_S = 10.0
QUEUE_LIMIT = 10_000


class Delivery(Protocol):
    def submit(self, url: str, body: bytes, headers: dict[str, str]) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class _Job:
    url: str
    body: bytes
    headers: dict[str, str]
    first: float = field(default_factory=time.monotonic)
    attempts: int = 0


class RetryingDelivery:
    def __init__(self, give_up_s: float = GIVE_UP_S, first_backoff_s: float = FIRST_BACKOFF_S,
                 max_backoff_s: float = MAX_BACKOFF_S) -> None:
        self.give_up_s = give_up_s
        self.first_backoff_s = first_backoff_s
        self.max_backoff_s = max_backoff_s
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._waiting: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self.delivered = 0
        self.failed = 0

    def submit(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        if self._queue.qsize() >= QUEUE_LIMIT:
            self.failed += 1
            log.warning("webhook queue full; dropped a batch for %s", _host(url))
            return
        self._queue.put_nowait(_Job(url, body, headers))

    async def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=TIMEOUT_S)
        self._tasks = [asyncio.create_task(self._sender(), name="pusher-webhooks")
                       for _ in range(SENDERS)]

    async def stop(self) -> None:
        for task in [*self._tasks, *self._waiting]:
            task.cancel()
        for task in [*self._tasks, *self._waiting]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._client is not None:
            await self._client.aclose()

    async def _sender(self) -> None:
        while True:
            job = await self._queue.get()
            job.attempts += 1
            if await self._post(job):
                self.delivered += 1
                continue
            elapsed = time.monotonic() - job.first
            if elapsed >= self.give_up_s:
                self.failed += 1
                log.warning("webhook to %s failed %d times; given up", _host(job.url),
                            job.attempts)
                continue
            delay = min(self.max_backoff_s, self.first_backoff_s * 2 ** (job.attempts - 1))
            task = asyncio.create_task(self._later(job, delay))
            self._waiting.add(task)
            task.add_done_callback(self._waiting.discard)

    async def _later(self, job: _Job, delay: float) -> None:
        await asyncio.sleep(delay)
        self._queue.put_nowait(job)

    async def _post(self, job: _Job) -> bool:
        assert self._client is not None
        try:
            response = await self._client.post(job.url, content=job.body, headers=job.headers)
        except httpx.HTTPError as exc:
            log.warning("webhook to %s: %s", _host(job.url), type(exc).__name__)
            return False
        return 200 <= response.status_code < 300


def _host(url: str) -> str:
    """Where a webhook goes, without its path or query (which may hold a token)."""
    return httpx.URL(url).host
