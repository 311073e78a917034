"""Operations: /metrics against real hubs (memory and Redis), the exposition format, and the
structured session logs (useful fields, never a token or a query string)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect as ws_connect

from hub.clients.ws import connect
from hub.ops.logs import Redact, strip_query
from hub.ops.metrics import parse
from tests.support import eventually
from tests.support.hubproc import HubProcess, hub_fixture, start_hub, user_token

hub = hub_fixture({"HUB_OFFLINE_GRACE_S": "0.2", "HUB_LOG_FORMAT": "json"})

#: Every family /metrics must expose (hub_online_users and hub_nodes_alive need the store).
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


# -- the format, no socket ----------------------------------------------------------------------


async def test_exposition_parses_with_prometheus_and_has_histograms(hub: HubProcess) -> None:
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


async def test_scraping_does_not_read_a_snapshot_each_time(hub: HubProcess) -> None:
    """Ten scrapes in a row read the store's snapshot of online users at most twice (its
    count is cached for 5 s)."""
    _, before = await scrape(hub.url)
    for _ in range(10):
        _, after = await scrape(hub.url)
    key = 'hub_store_seconds_count{op="changes"}'
    assert after.get(key, 0) - before.get(key, 0) <= 2


# -- against a hub ------------------------------------------------------------------------------


async def test_metrics_follow_connections_subscriptions_and_statuses(hub: HubProcess) -> None:
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


@pytest.mark.redis
async def test_nodes_alive_and_online_users_are_cluster_wide(
    redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    """Two hubs on one Redis each report 2 nodes alive and the users connected to either."""
    env = {"HUB_STORE": redis_url, "HUB_KEY_PREFIX": key_prefix,
           "HUB_CHANNEL": f"{key_prefix}presence"}  # fmt: skip
    first = start_hub(tmp_path, env, name="first")
    second = start_hub(tmp_path, env, name="second")
    try:
        async with connect(first.url, user_token("c-one")), \
                connect(second.url, user_token("c-two")):  # fmt: skip
            for node in (first, second):
                text, samples = await scrape(node.url)
                assert 'store="redis"' in text
                assert samples["hub_nodes_alive"] == 2
                assert samples["hub_connections"] == 1
                assert samples['hub_online_users{status="online"}'] == 2
    finally:
        first.stop()
        second.stop()


# -- logs -----------------------------------------------------------------------------------------


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


async def test_session_logs_are_structured_and_keep_secrets_out(hub: HubProcess) -> None:
    """connect, disconnect and refusals are JSON lines with their fields; neither the token
    nor a query string is ever written."""
    token = user_token("log-user", name="Logger")
    url = f"ws://127.0.0.1:{hub.port}/ws?token=QUERYSECRET"
    async with ws_connect(url) as ws:
        await ws.send(json.dumps({"op": "hello", "token": token}))
        assert json.loads(await ws.recv())["op"] == "ready"
    async with ws_connect(url) as ws:
        await ws.send(json.dumps({"op": "hello", "token": "WRONGTOKEN"}))
        await ws.wait_closed()

    def records() -> list[dict[str, Any]]:
        out = []
        for line in hub.log().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    async def logged() -> list[dict[str, Any]]:
        found = [r for r in records() if r.get("user") == "log-user" or r.get("code") == 4001]
        events = {r.get("event") for r in found}
        assert {"ws.connect", "ws.disconnect", "ws.refused"} <= events, events
        return found

    found = await eventually(logged)
    connect_record = next(r for r in found if r["event"] == "ws.connect")
    assert connect_record["conn"] and connect_record["codec"] == "hub.v1.json"
    assert connect_record["peer"] == "127.0.0.1" and connect_record["level"] == "info"
    closed = next(r for r in found if r["event"] == "ws.disconnect")
    assert closed["conn"] == connect_record["conn"] and closed["duration_s"] >= 0
    refused = next(r for r in found if r["event"] == "ws.refused")
    assert refused["code"] == 4001 and "invalid token" in refused["reason"]
    log = hub.log()
    assert token not in log and "QUERYSECRET" not in log and "WRONGTOKEN" not in log
    assert "/ws?[redacted]" in log  # uvicorn's own line, with the query cut


# -- presence-hub check ---------------------------------------------------------------------------


@pytest.mark.redis
async def test_check_reports_progress_and_counts(
    redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    """check numbers its steps, counts users by status and live nodes, probes the hub, and
    exits 1 when the store is unreachable."""
    env = {"HUB_STORE": redis_url, "HUB_KEY_PREFIX": key_prefix,
           "HUB_CHANNEL": f"{key_prefix}presence"}  # fmt: skip
    node = start_hub(tmp_path, env)
    try:
        async with connect(node.url, user_token("k-one")), \
                connect(node.url, user_token("k-two")) as two:  # fmt: skip
            await two.set_status("busy")
            result = await _check(tmp_path, env, "--url", node.url)
        assert result.returncode == 0, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        assert [line[:5] for line in lines if line.startswith("[")] == [
            "[1/4]", "[2/4]", "[3/4]", "[4/4]"]  # fmt: skip
        counts = next(line for line in lines if line.startswith("[3/4]"))
        assert "2 users (1 online, 0 away, 1 busy)" in counts
        assert any(line.strip() == "1 hub nodes alive" for line in lines)
        hub_line = next(line for line in lines if line.startswith("[4/4]"))
        assert "healthy, ready" in hub_line
    finally:
        node.stop()
    down = await _check(tmp_path, {"HUB_STORE": "redis://:hunter2@127.0.0.1:9/0"})
    assert down.returncode == 1 and "UNREACHABLE" in down.stdout
    assert "hunter2" not in down.stdout and "redis://***@127.0.0.1:9/0" in down.stdout


async def _check(tmp_path: Path, env: dict[str, str], *args: str) -> Any:
    full = {**os.environ, "XDG_STATE_HOME": str(tmp_path), **env}
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "hub", "check", *args], env=full,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
