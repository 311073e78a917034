"""Helpers of the webhook tests: the shared secret, fast retries, what the stream holds and
what a hub's metrics say (any hub with a ``url``: a process or one in the test process)."""

from __future__ import annotations

import os

import httpx

from hub.delivery.stream import decode_entries, stream_client, stream_keys
from hub.ops.metrics import parse
from tests.support.inproc import Hub
from tests.support.receiver import Receiver

SECRET = "whsec-test-0123456789"
#: How long the receiver is down in the outage test (the issue's 30 s; env-tunable).
OUTAGE_S = float(os.environ.get("HUB_TEST_WEBHOOK_OUTAGE_S", "30"))
#: Fast retries for tests: the backoff is capped at this (production: 60 s).
FAST = {"HUB_WEBHOOK_BACKOFF_MIN_S": "0.05", "HUB_WEBHOOK_BACKOFF_MAX_S": "0.5",
        "HUB_NODE_TTL_S": "1.5", "HUB_OFFLINE_GRACE_S": "0"}  # fmt: skip


async def stream_users(url: str, key_prefix: str) -> list[tuple[str, str, int]]:
    """Every change in the stream(s), as (user, status, at)."""
    r = stream_client(url)
    entries = []
    try:
        for key in stream_keys(key_prefix, cluster=url.startswith("redis+cluster://")):
            entries += decode_entries(key, await r.xrange(key))
    finally:
        await r.aclose()
    return [(u["id"], u["status"], u["at"]) for e in entries for u in e.users]


def received(receiver: Receiver) -> set[tuple[str, str, int]]:
    return {(u["id"], u["status"], u["at"]) for u in receiver.users()}


async def metrics(hub: Hub) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=hub.url, trust_env=False, timeout=10) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    return parse(response.text)
