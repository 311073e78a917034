"""Operations: /metrics against a hub served in process (memory store), the exposition
format, and the log filter that keeps secrets out."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from hub.clients.ws import connect
from hub.ops.logs import Redact, strip_query
from hub.ops.metrics import parse
from tests.support import eventually
from tests.support.hubproc import user_token
from tests.support.inproc import InProcessHub, inproc_hub_fixture

hub = inproc_hub_fixture({"HUB_OFFLINE_GRACE_S": "0.2"})


FAMILIES = (
    "hub_build_info", "hub_connections", "hub_connections_closed_total", "hub_subscriptions",
    "hub_deltas_published_total", "hub_frames_delivered_total", "hub_outbox_overflows_total",
    "hub_store_up", "hub_store_latency_seconds", "hub_store_errors_total", "hub_gaps_total",
    "hub_resyncs_total", "hub_restores_total", "hub_reconciled_total", "hub_draining",
    "hub_nodes_alive",
    "hub_online_users", "process_start_time_seconds",
)  # fmt: skip


async def scrape(url: str) -> tuple[str, dict[str, float]]:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return response.text, parse(response.text)


async def test_exposition_parses_with_prometheus_and_has_histograms(hub: InProcessHub) -> None:
    """prometheus-client's own parser reads /metrics: store round trips by operation and
    the feed delay are histograms, the process metrics are there."""
    async with connect(hub.url, user_token("histo")) as client:
        await client.set_status("busy")

        async def seen() -> bool:
            _, samples = await scrape(hub.url)
            return samples.get("hub_feed_delay_seconds_count", 0) > 0

        await eventually(seen)
    text, samples = await scrape(hub.url)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["hub_store_seconds"].type == "histogram"
    assert families["hub_feed_delay_seconds"].type == "histogram"
    assert samples['hub_store_seconds_count{op="connect"}'] >= 1
    assert samples['hub_store_seconds_count{op="heartbeat"}'] >= 1
    assert 'hub_store_seconds_bucket{le="+Inf",op="connect"}' in samples
    assert "process_resident_memory_bytes" in families


async def test_scraping_does_not_read_a_snapshot_each_time(hub: InProcessHub) -> None:
    """Ten scrapes in a row read the store's snapshot of online users at most twice (its
    count is cached for 5 s)."""
    _, before = await scrape(hub.url)
    for _ in range(10):
        _, after = await scrape(hub.url)
    key = 'hub_store_seconds_count{op="changes"}'
    assert after.get(key, 0) - before.get(key, 0) <= 2


async def test_metrics_follow_connections_subscriptions_and_statuses(hub: InProcessHub) -> None:
    """Connections, subscriptions, users by status and fan-out counters move as clients act."""
    text, before = await scrape(hub.url)
    for family in FAMILIES:
        assert f"# TYPE {family} " in text, family
    assert before["hub_store_up"] == 1 and before["hub_nodes_alive"] == 1
    assert 'store="memory"' in text
    async with connect(hub.url, user_token("m-alice")) as a, \
            connect(hub.url, user_token("m-bob")) as b:  # fmt: skip
        await a.subscribe("all")
        await b.set_status("busy")

        async def counted() -> dict[str, float]:
            _, now = await scrape(hub.url)
            assert now["hub_connections"] == before["hub_connections"] + 2
            assert now["hub_subscriptions"] == before["hub_subscriptions"] + 1
            assert now["hub_deltas_published_total"] > before["hub_deltas_published_total"]
            assert now["hub_frames_delivered_total"] > before["hub_frames_delivered_total"]
            return now

        now = await eventually(counted)
        # Cached for a few seconds, so the counts may lag a scrape; they converge.
        await eventually(lambda: _status_count(hub.url, "busy", 1), 15)
    _, after = await eventually(lambda: _closed(hub.url, before))
    assert after["hub_outbox_overflows_total"] >= now["hub_outbox_overflows_total"]


async def _status_count(url: str, status: str, n: int) -> bool:
    _, samples = await scrape(url)
    return samples.get(f'hub_online_users{{status="{status}"}}') == n


async def _closed(url: str, before: dict[str, float]) -> tuple[str, dict[str, float]]:
    text, samples = await scrape(url)
    assert samples["hub_connections"] == before["hub_connections"]
    assert samples["hub_connections_closed_total"] >= before["hub_connections_closed_total"] + 2
    return text, samples


def test_redact_filter() -> None:
    """Query strings leave uvicorn's paths; credential-named fields are blanked."""
    import logging

    record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1,
                               '%s - "WebSocket %s" [accepted]',
                               ("127.0.0.1:5", "/ws?token=abc"), None)  # fmt: skip
    record.__dict__.update(token="abc", user="alice")
    assert Redact().filter(record)
    assert record.getMessage() == '127.0.0.1:5 - "WebSocket /ws?[redacted]" [accepted]'
    assert record.__dict__["token"] == "[redacted]" and record.__dict__["user"] == "alice"
    assert strip_query("/ws") == "/ws"
