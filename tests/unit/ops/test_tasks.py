"""Stopping background tasks: for sure, and saying which one holds up a shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hub.node.node import Node
from hub.ops.config import Settings
from hub.ops.tasks import cancel_requested, stop_in_order, stop_task
from hub.stores.presence.base import StoreUnavailable
from hub.stores.presence.memory import MemoryStore


async def test_stop_task_ends_a_loop_that_swallowed_its_first_cancellation() -> None:
    """A retry loop whose library turned the first CancelledError into its own error (as
    redis-py's cluster client can) still stops: stop_task cancels again until it ends."""
    swallowed = asyncio.Event()
    started = asyncio.Event()

    async def loop() -> None:
        started.set()
        while True:
            try:
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    if swallowed.is_set():
                        raise
                    swallowed.set()
                    raise ConnectionError("interrupted") from None
            except ConnectionError:
                pass  # the loop's own handler: log and retry
            await asyncio.sleep(3600)

    task = asyncio.create_task(loop())
    await asyncio.wait_for(started.wait(), 10)
    async with asyncio.timeout(10):
        await stop_task(task, every_s=0.05)
    assert swallowed.is_set() and task.cancelled()


async def test_a_loop_that_checks_cancel_requested_stops_at_the_first_cancellation() -> None:
    """cancel_requested() tells a handler that the error it caught came from a stop."""
    ended = asyncio.Event()
    started = asyncio.Event()

    async def loop() -> None:
        started.set()
        try:
            while True:
                try:
                    try:
                        await asyncio.sleep(3600)
                    except asyncio.CancelledError:
                        raise ConnectionError("interrupted") from None
                except ConnectionError as exc:
                    if cancel_requested():
                        raise asyncio.CancelledError from exc
        finally:
            ended.set()

    task = asyncio.create_task(loop())
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    async with asyncio.timeout(10):
        await ended.wait()
    assert task.cancelled()


async def test_a_node_stops_when_its_feed_turns_the_stop_into_a_store_error() -> None:
    """The store client turns the node's stop into its own error on the feed (as redis-py
    can): the feed loop ends instead of resubscribing, and node.stop() returns."""
    store = MemoryStore(grace_ms=0)
    reading = asyncio.Event()
    resubscribed = 0

    async def events() -> AsyncIterator[Any]:
        nonlocal resubscribed
        resubscribed += 1
        reading.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise StoreUnavailable("connection closed by the client") from None
        yield None  # pragma: no cover

    store.events = events  # type: ignore[method-assign]
    node = Node(Settings(), store)
    await node.start()
    await asyncio.wait_for(reading.wait(), 10)
    async with asyncio.timeout(10):
        await node.stop()
    assert resubscribed == 1


async def test_a_slow_stop_step_is_logged_with_the_tasks_still_pending(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A shutdown step still running after slow_s names itself and every pending task with
    where it waits; the steps after it still run once it ends."""
    release = asyncio.Event()
    ran: list[str] = []

    class Release(logging.Handler):
        """The step is stuck until its warning is logged."""

        def emit(self, record: logging.LogRecord) -> None:
            release.set()

    async def stuck_loop() -> None:
        await release.wait()

    stuck = asyncio.create_task(stuck_loop(), name="hub-stuck-loop")

    async def slow() -> None:
        await asyncio.wait_for(stuck, 10)
        ran.append("slow")

    async def after() -> None:
        ran.append("after")

    handler = Release(logging.WARNING)
    logging.getLogger("hub.ops").addHandler(handler)
    try:
        with caplog.at_level(logging.WARNING, logger="hub.ops"):
            await stop_in_order([("slow", slow), ("after", after)], slow_s=0.05)
    finally:
        logging.getLogger("hub.ops").removeHandler(handler)
    [record] = [r for r in caplog.records if "still stopping" in r.getMessage()]
    message = record.getMessage()
    assert message.startswith("shutdown: slow still stopping")
    assert "-- task hub-stuck-loop" in message and "stuck_loop" in message
    assert ran == ["slow", "after"]


async def test_a_failing_stop_step_is_logged_and_the_rest_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ran: list[str] = []

    async def broken() -> None:
        raise RuntimeError("boom")

    async def after() -> None:
        ran.append("after")

    with caplog.at_level(logging.ERROR, logger="hub.ops"):
        await stop_in_order([("broken", broken), ("after", after)])
    assert ran == ["after"]
    assert any(r.getMessage() == "shutdown: broken failed" for r in caplog.records)


async def test_a_stop_step_that_never_ends_is_given_up_and_the_rest_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A step that swallows every cancellation (a stuck client call) holds the shutdown up
    no longer than give_up_s: it is cancelled, logged with the pending tasks, left behind,
    and the steps after it run."""
    ran: list[str] = []
    cancels = 0
    let_go = asyncio.Event()

    async def stubborn() -> None:
        nonlocal cancels
        while not let_go.is_set():
            try:
                await let_go.wait()
            except asyncio.CancelledError:
                cancels += 1

    async def after() -> None:
        ran.append("after")

    with caplog.at_level(logging.WARNING, logger="hub.ops"):
        async with asyncio.timeout(10):
            await stop_in_order([("stubborn", stubborn), ("after", after)],
                                slow_s=0.05, give_up_s=0.1)  # fmt: skip
    assert ran == ["after"] and cancels == 1
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("shutdown: stubborn gave up after") for m in messages), messages
    let_go.set()  # the left-behind step ends with the test


async def test_stop_task_gives_way_when_its_caller_is_stopped() -> None:
    """stop_task waits for a task that never ends; cancelling the caller ends the wait."""
    started, let_go = asyncio.Event(), asyncio.Event()

    async def stubborn() -> None:
        started.set()
        while not let_go.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await let_go.wait()

    task = asyncio.create_task(stubborn())
    await asyncio.wait_for(started.wait(), 10)
    caller = asyncio.create_task(stop_task(task, every_s=0.02))
    done, _ = await asyncio.wait([caller], timeout=0.1)
    assert not done, "stop_task returned while the task still ran"
    caller.cancel()
    async with asyncio.timeout(10):
        with pytest.raises(asyncio.CancelledError):
            await caller
    assert not task.done()
    let_go.set()
    await asyncio.wait_for(task, 10)
