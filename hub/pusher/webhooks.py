"""Pusher-format webhooks: batched events, signed with the app secret.

Body ``{"time_ms": ..., "events": [...]}``; headers ``X-Pusher-Key`` (the app key) and
``X-Pusher-Signature`` (hex HMAC-SHA256 of the body with the app secret). Events wait at
most :data:`BATCH_S` (or until :data:`BATCH_MAX` of them) and go out through a
:class:`~hub.pusher.delivery.Delivery`. Only the node that made a transition calls
:meth:`Webhooks.add`, so a cluster sends each event once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from hub.pusher.apps import App
from hub.pusher.auth import sign
from hub.pusher.delivery import Delivery

BATCH_S = 0.25
BATCH_MAX = 100


def signed(app: App, events: list[dict[str, Any]], time_ms: int) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"time_ms": time_ms, "events": events}, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Pusher-Key": app.key,
        "X-Pusher-Signature": sign(app.secret, body.decode()),
    }
    return body, headers


class Webhooks:
    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self._pending: dict[tuple[str, str], tuple[App, list[dict[str, Any]]]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.delivery.start()
        self._task = asyncio.create_task(self._run(), name="pusher-webhook-batches")

    async def stop(self) -> None:
        self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.delivery.stop()

    def add(self, app: App, event: dict[str, Any]) -> None:
        for hook in app.webhooks:
            if event["name"] not in hook.event_types:
                continue
            _, events = self._pending.setdefault((app.id, hook.url), (app, []))
            events.append(event)
            if len(events) >= BATCH_MAX:
                self._wake.set()

    def flush(self) -> None:
        pending, self._pending = self._pending, {}
        now_ms = int(time.time() * 1000)
        for (_, url), (app, events) in pending.items():
            body, headers = signed(app, events, now_ms)
            self.delivery.submit(url, body, headers)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), BATCH_S)
            self._wake.clear()
            if self._pending:
                self.flush()
