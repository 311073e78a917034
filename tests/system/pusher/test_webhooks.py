"""Webhook batching, signing (checked with PyPI's SDK) and delivery with retries, against a
real HTTP receiver: Pusher's format on the hub's general delivery (hub.delivery.core), its
counters on /metrics with the HUB_WEBHOOKS endpoints'. One contract on every backend: the
in-process queue of memory://, the app's webhook stream on Redis and on Redis Cluster."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from hub.delivery.core import Backoff
from hub.delivery.pusher import Durable, Endpoint, PusherWebhooks
from hub.delivery.queue import QueueSource
from hub.delivery.stream import stream_client
from hub.delivery.webhooks import endpoint_id
from hub.ops.apps import App, Webhook
from hub.ops.metrics import parse, webhook_families
from hub.stores.channels.keys import hooks_dead, hooks_stream
from hub.wire.pusher_webhook import MIN_RETRY_S, RETENTION_SLACK_S, retention_ms, retry_time
from tests.support import eventually
from tests.support.hubproc import start_hub
from tests.support.pusher import APP_ID, APP_KEY, APP_SECRET, apps_file, sdk


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


BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
    pytest.param(
        "redis-cluster", id="redis-cluster", marks=[pytest.mark.redis, pytest.mark.cluster]
    ),
]


@pytest.fixture(params=BACKENDS)
def durable(request: pytest.FixtureRequest, key_prefix: str) -> Durable | None:
    """None for memory://, else the Redis (or Cluster) the webhook streams live on."""
    if request.param == "memory":
        return None
    server = request.getfixturevalue(
        "redis_server" if request.param == "redis" else "redis_cluster"
    )
    return Durable(server.url, key_prefix, "node-a", node_ttl_ms=2000, sweep_s=0.1)


async def _dead_letters(durable: Durable | None, endpoint: Endpoint) -> list[tuple[bytes, str]]:
    """(body, reason) of the endpoint's dead letters, wherever the backend keeps them."""
    if durable is None:
        assert isinstance(endpoint.source, QueueSource)
        return [(d.body, d.reason) for d in endpoint.source.dead_letters]
    redis = stream_client(durable.url)
    try:
        raw = await redis.xrange(hooks_dead(durable.prefix, endpoint.app_id, endpoint.id))
    finally:
        await redis.aclose()
    return [(fields[b"body"], fields[b"reason"].decode()) for _, fields in raw]


async def _until(check: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("receiver", [2], indirect=True)
async def test_events_are_batched_signed_and_retried_until_accepted(receiver, durable):
    """Three events, one not asked for: one batch of two, retried until the third attempt,
    the same bytes each time, signed as PyPI's SDK checks."""
    app = App(
        APP_ID,
        APP_KEY,
        APP_SECRET,
        webhooks=(Webhook(receiver.url, frozenset({"member_added", "member_removed"})),),
    )
    hooks = PusherWebhooks([app], backoff=Backoff(0.2, 0.4), durable=durable)
    (endpoint,) = hooks.endpoints
    await hooks.start()
    try:
        await hooks.append(
            app.id, [{"name": "member_added", "channel": "presence-a", "user_id": "1"}]
        )
        await hooks.append(
            app.id, [{"name": "channel_occupied", "channel": "presence-a"}]
        )  # not asked for
        await hooks.append(
            app.id, [{"name": "member_removed", "channel": "presence-a", "user_id": "1"}]
        )
        await _until(lambda: endpoint.stats.delivered == 1)
    finally:
        await hooks.stop()
    assert len(receiver.attempts) == 3
    assert endpoint.stats.retried == 2 and endpoint.stats.queued == 2
    assert endpoint.id == endpoint_id(receiver.url)
    times = [t for t, _, _ in receiver.attempts]
    # The shared backoff: attempt n waits U(min/2, min(max, min * 2^n)), so at least 0.1 s.
    assert times[1] - times[0] >= 0.1 and times[2] - times[1] >= 0.1
    bodies = {body for _, body, _ in receiver.attempts}
    assert len(bodies) == 1, "every retry sends the same batch"
    _, body, headers = receiver.attempts[-1]
    checked = sdk(0).validate_webhook(
        headers["X-Pusher-Key"], headers["X-Pusher-Signature"], body.decode()
    )
    assert checked is not None, "PyPI's SDK accepts the signature"
    assert headers["X-Pusher-Key"] == APP_KEY
    assert [e["name"] for e in json.loads(body)["events"]] == ["member_added", "member_removed"]
    assert abs(json.loads(body)["time_ms"] - time.time() * 1000) < 60_000


async def test_a_backlog_goes_in_order_in_batches_of_at_most_100(receiver, durable):
    """250 events appended at once arrive in order, in POSTs of at most 100 events."""
    app = App(APP_ID, APP_KEY, APP_SECRET, webhooks=(Webhook(receiver.url),))
    hooks = PusherWebhooks([app], backoff=Backoff(0.05, 0.1), durable=durable)
    await hooks.start()
    try:
        events = [
            {"name": "member_added", "channel": "presence-a", "user_id": str(i)} for i in range(250)
        ]
        await hooks.append(app.id, events[:10])
        for event in events[10:]:
            await hooks.append(app.id, [event])
        await _until(
            lambda: sum(len(json.loads(b)["events"]) for _, b, _ in receiver.attempts) >= 250
        )
    finally:
        await hooks.stop()
    batches = [json.loads(b)["events"] for _, b, _ in receiver.attempts]
    assert all(len(batch) <= 100 for batch in batches)
    assert [e["user_id"] for batch in batches for e in batch] == [str(i) for i in range(250)]


@pytest.mark.parametrize("receiver", [10**6], indirect=True)
async def test_delivery_gives_up_after_its_deadline(receiver, durable):
    """A receiver that always fails: the batch is retried for the retry time, then kept as
    a dead letter with the reason; the endpoint goes on with the next batch."""
    app = App(APP_ID, APP_KEY, APP_SECRET, webhooks=(Webhook(receiver.url),))
    # 1.5 s from the event's birth: room for retries even when the first attempt waits
    # for the batch and a loaded machine.
    hooks = PusherWebhooks([app], retry_s=1.5, backoff=Backoff(0.05, 0.1), durable=durable)
    (endpoint,) = hooks.endpoints
    await hooks.start()
    try:
        await hooks.append(app.id, [{"name": "channel_occupied", "channel": "a"}])
        await _until(lambda: endpoint.stats.dead_lettered == 1)
        await hooks.append(app.id, [{"name": "channel_vacated", "channel": "a"}])
        await _until(lambda: endpoint.stats.dead_lettered == 2)
    finally:
        await hooks.stop()
    assert endpoint.stats.delivered == 0
    attempts = [json.loads(b)["events"] for _, b, _ in receiver.attempts]
    first = [{"name": "channel_occupied", "channel": "a"}]
    assert 2 <= attempts.count(first) <= 60, "retried with the backoff, then given up"
    dead = await _dead_letters(durable, endpoint)
    assert [(json.loads(body)["events"], reason) for body, reason in dead] == [
        (first, "HTTP 500"),
        ([{"name": "channel_vacated", "channel": "a"}], "HTTP 500"),
    ]


#: What a channel script does when the Lua change lands: its transition's events through
#: hook(), beside an entry that is not an event (another writer) and a retention of 0.
_CHANNEL_SCRIPT = """
hook(KEYS[1], ARGV[1], cjson.encode({name = 'member_added', channel = ARGV[2], user_id = ARGV[3]}))
hook(KEYS[1], '0', cjson.encode({name = 'member_removed', channel = ARGV[2], user_id = ARGV[3]}))
redis.call('XADD', KEYS[1], '*', 'e', 'not an event')
return hook(KEYS[1], ARGV[1], cjson.encode({name = 'channel_vacated', channel = ARGV[2]}))
"""


@pytest.mark.parametrize("durable", [
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("redis-cluster", marks=[pytest.mark.redis, pytest.mark.cluster]),
], indirect=True)  # fmt: skip
async def test_events_a_channel_script_appends_with_hook_lua_are_delivered(receiver, durable):
    """The Lua function the channel scripts call (hook.lua, cjson's JSON, the app's slot):
    its events reach the endpoint in order; an entry that is not an event is acked and
    skipped, and a retention of 0 appends nothing."""
    app = App(APP_ID, APP_KEY, APP_SECRET, webhooks=(Webhook(receiver.url),))
    hooks = PusherWebhooks([app], backoff=Backoff(0.05, 0.1), durable=durable)
    (endpoint,) = hooks.endpoints
    stream = hooks.stream(app.id)
    assert stream == hooks_stream(durable.prefix, app.id)
    lua = resources.files("hub.stores.channels").joinpath("lua", "hook.lua").read_text()
    redis = stream_client(durable.url)
    await hooks.start()
    try:
        script = redis.register_script(lua + _CHANNEL_SCRIPT)
        retention = hooks.retention_ms(app.id)
        assert await script(keys=[stream], args=[retention, "presence-a/b", "u1"]) == 1

        async def settled() -> bool:
            (info,) = await redis.xinfo_groups(stream)
            return bool(info["pending"] == 0 and info["lag"] == 0)

        await eventually(settled)  # every entry read and acknowledged, the bad one too
        assert await redis.xlen(stream) == 3
        assert endpoint.stats.delivered == 1
    finally:
        await hooks.stop()
        await redis.aclose()
    events = [e for _, b, _ in receiver.attempts for e in json.loads(b)["events"]]
    assert events == [
        {"name": "member_added", "channel": "presence-a/b", "user_id": "u1"},
        {"name": "channel_vacated", "channel": "presence-a/b"},
    ]
    assert hooks.retention_ms("no-such-app") == 0 and hooks.stream("no-such-app") is None


def test_pusher_webhooks_are_retried_for_at_least_five_minutes():
    """The retry time never goes under Pusher's 5 minutes; the stream keeps events a
    minute longer, and nothing for an app without webhooks."""
    assert MIN_RETRY_S == 300
    assert retry_time(1.0) == 300 and retry_time(3600.0) == 3600
    app = App(APP_ID, APP_KEY, APP_SECRET, webhooks=(Webhook("http://127.0.0.1:9/h"),))
    assert RETENTION_SLACK_S == 60
    assert retention_ms(app, 1.0) == 360_000 and retention_ms(app, 3600.0) == 3_660_000
    assert retention_ms(App(APP_ID, APP_KEY, APP_SECRET), 3600.0) == 0


@pytest.mark.parametrize("receiver", [2], indirect=True)
async def test_a_hubs_pusher_webhooks_are_counted_in_metrics(receiver, tmp_path):
    """A real hub: a subscription's channel_occupied reaches a receiver that fails twice,
    retried with HUB_WEBHOOK_BACKOFF_*; /metrics counts it under the endpoint id (no URL)."""
    secret_url = receiver.url + "?token=webhook-token-123"
    hub = start_hub(tmp_path, {
        "HUB_PUSHER_APPS_FILE": str(apps_file(tmp_path / "apps.json", secret_url)),
        "HUB_WEBHOOK_BACKOFF_MIN_S": "0.2", "HUB_WEBHOOK_BACKOFF_MAX_S": "0.4",
    })  # fmt: skip
    eid = endpoint_id(secret_url)
    try:
        async with connect(f"ws://127.0.0.1:{hub.port}/app/{APP_KEY}?protocol=7") as ws:
            await _frame(ws, "pusher:connection_established")
            await ws.send(
                json.dumps({"event": "pusher:subscribe", "data": {"channel": "my-channel"}})
            )
            await _frame(ws, "pusher_internal:subscription_succeeded")
            await _until(lambda: len(receiver.attempts) >= 3)

            async def counted() -> tuple[str, dict[str, float]]:
                async with httpx.AsyncClient(timeout=10) as http:
                    text = (await http.get(f"{hub.url}/metrics")).text
                return text, parse(text)

            async with asyncio.timeout(10):
                while True:
                    text, samples = await counted()
                    if samples.get(f'hub_webhook_delivered_total{{endpoint="{eid}"}}') == 1:
                        break
                    await asyncio.sleep(0.05)
    finally:
        hub.stop()
    hub.assert_no_tracebacks()
    assert samples[f'hub_webhook_retries_total{{endpoint="{eid}"}}'] == 2
    assert samples[f'hub_webhook_queued_total{{endpoint="{eid}"}}'] == 1
    assert samples[f'hub_webhook_dead_letters_total{{endpoint="{eid}"}}'] == 0
    assert samples[f'hub_webhook_delivery_seconds_count{{endpoint="{eid}"}}'] == 1
    assert samples[f'hub_webhook_delivery_seconds_sum{{endpoint="{eid}"}}'] > 0
    assert "webhook-token-123" not in text and receiver.url not in text
    assert "webhook-token-123" not in hub.log(), "the URL's token never reaches the log"
    times = [t for t, _, _ in receiver.attempts]
    assert times[1] - times[0] >= 0.1 and times[2] - times[1] >= 0.1  # HUB_WEBHOOK_BACKOFF_MIN_S
    _, body, headers = receiver.attempts[-1]
    assert (
        sdk(0).validate_webhook(
            headers["X-Pusher-Key"], headers["X-Pusher-Signature"], body.decode()
        )
        is not None
    )
    assert json.loads(body)["events"] == [{"name": "channel_occupied", "channel": "my-channel"}]


async def _frame(ws: Any, event: str) -> dict[str, Any]:
    async with asyncio.timeout(10):
        while True:
            frame: dict[str, Any] = json.loads(await ws.recv())
            if frame["event"] == event:
                return frame


def test_apps_posting_to_one_url_are_one_metrics_series():
    url = "http://127.0.0.1:9/hook"
    apps = [
        App(APP_ID, APP_KEY, APP_SECRET, webhooks=(Webhook(url),)),
        App("2", "key-2", "secret-2-0123456789", webhooks=(Webhook(url),)),
    ]
    hooks = PusherWebhooks(apps)
    first, second = hooks.endpoints
    assert first.id == second.id == endpoint_id(url) and first.stats is second.stats
    first.stats.delivered, first.stats.last_latency_s = 3, 0.25
    families = {f.name: f for f in webhook_families(hooks)}
    (sample,) = families["hub_webhook_delivered"].samples
    assert sample.labels == {"endpoint": first.id} and sample.value == 3
    (last,) = families["hub_webhook_last_delivery_seconds"].samples
    assert last.value == 0.25
