"""Subscription counts on one node, in process: at most one frame a tick per channel and
socket, holding the last count heard, the same frame object for every socket; a socket
whose subscription is in flight is told after it completes; the node's own changes are
reported once a tick per channel."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hub.node.counts import SubscriptionCounts

TICK_S = 0.02


class Outbox:
    """Where a socket's fan-out frames go (the driver's ``deliver``)."""

    def __init__(self) -> None:
        self.frames: list[str] = []

    def deliver(self, frame: str) -> bool:
        self.frames.append(frame)
        return True


class Sock:
    def __init__(self) -> None:
        self.driver = Outbox()
        self.waiting: dict[str, list[Any]] = {}
        self.counts: dict[str, int] = {}

    def told(self) -> list[int]:
        return [json.loads(json.loads(f)["data"])["subscription_count"] for f in self.driver.frames]


async def _tick(counts: SubscriptionCounts) -> None:
    """Until the scheduled flush ran (it clears its timer)."""
    async with asyncio.timeout(5):
        while counts._timer is not None:
            await asyncio.sleep(TICK_S / 4)


async def test_counts_are_coalesced_per_tick_and_told_once_per_socket():
    """Three counts in one tick make one frame with the last; a repeat of the count told
    makes none; both sockets share the frame object."""
    key = ("1", "news")
    a, b = Sock(), Sock()
    local = {key: {"a": a, "b": b}}
    reports: list[tuple[str, str, int]] = []
    counts = SubscriptionCounts(TICK_S, local.get, lambda *r: reports.append(r))
    for n in (1, 2, 3):
        counts.heard(key, n)
    await _tick(counts)
    assert a.told() == b.told() == [3]
    assert a.driver.frames[0] is b.driver.frames[0]
    counts.heard(key, 3)
    await _tick(counts)
    assert a.told() == [3]
    counts.heard(("1", "elsewhere"), 9)  # no subscriber here: nothing kept
    assert ("1", "elsewhere") not in counts.latest
    assert reports == []


async def test_a_subscriber_in_flight_is_told_when_it_completes():
    """A socket still subscribing is skipped; joined() tells it the last count at the next
    tick, and nobody else again."""
    key = ("1", "news")
    a, late = Sock(), Sock()
    late.waiting["news"] = []
    local = {key: {"a": a, "late": late}}
    counts = SubscriptionCounts(TICK_S, local.get, lambda *r: None)
    counts.heard(key, 2)
    await _tick(counts)
    assert (a.told(), late.told()) == ([2], [])
    del late.waiting["news"]
    counts.joined(key)
    await _tick(counts)
    assert (a.told(), late.told()) == ([2], [2])


async def test_the_nodes_own_changes_are_reported_once_a_tick_per_channel():
    """Changes this node made: one report per channel per tick, with the newest count."""
    reports: list[tuple[str, str, int]] = []
    counts = SubscriptionCounts(TICK_S, {}.get, lambda *r: reports.append(r))
    counts.changed(("1", "news"), 1)
    counts.changed(("1", "news"), 2)
    counts.changed(("1", "sport"), 5)
    await _tick(counts)
    assert sorted(reports) == [("1", "news", 2), ("1", "sport", 5)]
    counts.close()
