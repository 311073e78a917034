"""The pure parts of delivery: HUB_WEBHOOKS parsing, signatures, backoff, the memory queue."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json

import pytest

from hub.delivery.core import Backoff, hub_signer, signature, verify
from hub.delivery.queue import QueueSource
from hub.delivery.stream import entry_order
from hub.delivery.webhooks import presence_encoder
from hub.ops.config import ConfigError, Settings, parse_webhooks


def test_webhooks_parse_urls_secrets_and_filters() -> None:
    hooks = parse_webhooks("https://a.example/h|s1, http://b.example/x?y=1|s2|online+offline,"
                           "http://c.example|s3|*")  # fmt: skip
    assert [h.url for h in hooks] == ["https://a.example/h", "http://b.example/x?y=1",
                                      "http://c.example"]  # fmt: skip
    assert [h.events for h in hooks] == [None, frozenset({"online", "offline"}), None]
    assert "s1" not in repr(hooks)  # secrets never in reprs (logs)
    settings = Settings.from_env({"HUB_WEBHOOKS": "http://h.example|k"})
    assert settings.webhooks[0].secret == "k" and settings.webhook_retry_s == 3600


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("http://a.example", "URL|SECRET"),
        ("ftp://a.example|k", "http:// or https://"),
        ("http://a.example|", "secret must not be empty"),
        ("http://a.example|k|online+gone", "unknown event 'gone'"),
        ("http://a.example|k,http://a.example|k2", "listed twice"),
        ("http://a.example|k|x|y", "URL|SECRET"),
    ],
)
def test_bad_webhooks_are_refused_by_name(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match="HUB_WEBHOOKS") as err:
        parse_webhooks(raw)
    assert message in str(err.value)
    assert "k2" not in str(err.value)


def test_bad_retry_time_is_refused() -> None:
    with pytest.raises(ConfigError, match="HUB_WEBHOOK_RETRY_S"):
        Settings.from_env({"HUB_WEBHOOK_RETRY_S": "soon"})


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"id":"1-0","cursor":1,"users":[]}'
    expected = hmac.new(b"sec", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature("sec", 1700000000, body) == f"sha256={expected}"
    headers = {"X-Hub-Timestamp": "1700000000", "X-Hub-Signature-256": f"sha256={expected}"}
    assert verify("sec", headers, body, now=1700000010)
    assert not verify("other", headers, body, now=1700000010)
    assert not verify("sec", headers, body + b" ", now=1700000010)
    assert not verify("sec", headers, body, now=1700000000 + 3600)  # a replay, too old
    assert not verify("sec", {}, body)


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    b = Backoff(min_s=0.5, max_s=8.0)
    delays = [b.delay(n) for n in range(12) for _ in range(50)]
    assert min(delays) >= 0.25 and max(delays) <= 8.0
    assert len({round(d, 6) for d in delays}) > 100  # jitter
    assert max(b.delay(1) for _ in range(50)) <= 1.0


def test_presence_encoder_filters_and_keeps_the_body_shape() -> None:
    encode = presence_encoder(frozenset({"offline"}))
    users = [{"id": "a", "status": "online", "at": 1}, {"id": "b", "status": "offline", "at": 2}]
    body = encode("5-0", 2, users)  # type: ignore[arg-type]
    assert body is not None
    assert json.loads(body) == {"id": "5-0", "cursor": 2, "users": [users[1]]}
    assert encode("6-0", 2, users[:1]) is None  # type: ignore[arg-type]


async def test_queue_source_one_delivery_per_tick_ids_increase() -> None:
    q = QueueSource(presence_encoder(None), tick_s=0.01)
    q.put(100, [{"id": "a", "status": "online", "at": 100}])
    q.put(100, [{"id": "b", "status": "online", "at": 100}])
    first = await asyncio.wait_for(q.next(), 5)
    assert first is not None and json.loads(first.body)["users"][1]["id"] == "b"
    assert await q.next() is first  # the same until settled
    await q.delivered(first)
    q.put(90, [{"id": "c", "status": "away", "at": 90}])  # a cursor behind: ids still grow
    second = await asyncio.wait_for(q.next(), 5)
    assert second is not None and entry_order(second.id) > entry_order(first.id)
    await q.dead(second, "HTTP 500")
    assert q.dead_letters[-1].id == second.id and q.waiting == 0


def test_the_hub_signer_makes_both_headers() -> None:
    headers = hub_signer("sec")(b"{}", 1700000000)
    assert headers == {"X-Hub-Timestamp": "1700000000",
                       "X-Hub-Signature-256": signature("sec", 1700000000, b"{}")}  # fmt: skip
    assert verify("sec", headers, b"{}", now=1700000001)
