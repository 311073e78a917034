"""Webhook batching, signing (checked with PyPI's SDK) and delivery with retries, against a
real HTTP receiver."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from hub.pusher.apps import App, Webhook
from hub.pusher.delivery import RetryingDelivery
from hub.pusher.webhooks import Webhooks
from tests.pusher.support import APP_ID, APP_KEY, APP_SECRET, sdk


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, failures: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.failures = failures
        self.attempts: list[tuple[float, bytes, dict[str, str]]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.server.lock:
            self.server.attempts.append((time.monotonic(), body, dict(self.headers)))
            fail = len(self.server.attempts) <= self.server.failures
        self.send_response(500 if fail else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    server = Receiver(getattr(request, "param", 0))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


async def _until(check: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("receiver", [2], indirect=True)
async def test_events_are_batched_signed_and_retried_until_accepted(receiver):
    app = App(APP_ID, APP_KEY, APP_SECRET, webhooks=(
        Webhook(receiver.url, frozenset({"member_added", "member_removed"})),))
    delivery = RetryingDelivery(first_backoff_s=0.1)
    hooks = Webhooks(delivery)
    await hooks.start()
    try:
        hooks.add(app, {"name": "member_added", "channel": "presence-a", "user_id": "1"})
        hooks.add(app, {"name": "channel_occupied", "channel": "presence-a"})  # not asked for
        hooks.add(app, {"name": "member_removed", "channel": "presence-a", "user_id": "1"})
        await _until(lambda: delivery.delivered == 1)
    finally:
        await hooks.stop()
    assert len(receiver.attempts) == 3
    times = [t for t, _, _ in receiver.attempts]
    assert times[2] - times[1] >= times[1] - times[0] >= 0.1  # backoff, doubling
    bodies = {body for _, body, _ in receiver.attempts}
    assert len(bodies) == 1, "every retry sends the same batch"
    _, body, headers = receiver.attempts[-1]
    checked = sdk(0).validate_webhook(headers["X-Pusher-Key"], headers["X-Pusher-Signature"],
                                      body.decode())
    assert checked is not None, "PyPI's SDK accepts the signature"
    assert [e["name"] for e in json.loads(body)["events"]] == ["member_added", "member_removed"]
    assert abs(json.loads(body)["time_ms"] - time.time() * 1000) < 60_000


@pytest.mark.parametrize("receiver", [10**6], indirect=True)
async def test_delivery_gives_up_after_its_deadline(receiver):
    delivery = RetryingDelivery(give_up_s=0.5, first_backoff_s=0.05)
    await delivery.start()
    try:
        delivery.submit(receiver.url, b"{}", {"Content-Type": "application/json"})
        await _until(lambda: delivery.failed == 1)
    finally:
        await delivery.stop()
    assert delivery.delivered == 0
    assert 3 <= len(receiver.attempts) <= 10
