"""Stopping background tasks for sure, and saying which one holds up a shutdown.

A client library may turn the ``CancelledError`` of an interrupted call into its own error
(redis-py can, on the connection it was reading from): a retry loop that catches
``Exception`` then swallows its own stop and runs on, and a shutdown that waits for it
hangs. :func:`stop_task` cancels until the task really ends; a loop's handler calls
:func:`cancel_requested` to tell such an error from a real one. :func:`stop_in_order`
runs a process's stop steps and logs, for a step that takes long, every task still
pending and where it waits; a step that never ends is given up, so the process still exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Awaitable, Callable, Sequence

log = logging.getLogger("hub.ops")

#: A stop step slower than this is logged with the tasks still pending.
SLOW_STOP_S = 5.0
#: A stop step still running after this is given up (cancelled, not waited for): the
#: process exits within its orchestrator's grace period whatever holds the step up.
GIVE_UP_STOP_S = 8.0


def cancel_requested() -> bool:
    """Whether the running task was asked to stop: a loop's error handler checks it, so an
    error made from its cancellation ends the loop instead of starting a retry."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def stop_task(task: asyncio.Task[None], *, every_s: float = 1.0) -> None:
    """Cancel ``task`` and wait for its end, cancelling again every ``every_s`` in case a
    cancellation was swallowed on its way (see :func:`cancel_requested`)."""
    while not task.done():
        task.cancel()
        try:
            await asyncio.wait_for(asyncio.shield(task), every_s)
        except asyncio.CancelledError:
            if cancel_requested():
                raise  # the caller itself is being stopped: it does not wait on
        except Exception:
            pass  # the task's own error, or still running: cancel again
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()


async def stop_tasks(tasks: Sequence[asyncio.Task[None]], *, every_s: float = 1.0) -> None:
    """:func:`stop_task` for each of ``tasks``, all at once."""
    await asyncio.gather(*(stop_task(t, every_s=every_s) for t in tasks))


def pending_tasks() -> str:
    """Every task of the loop but the caller, each with the stack where it waits."""
    out = io.StringIO()
    current = asyncio.current_task()
    for task in sorted(asyncio.all_tasks(), key=lambda t: t.get_name()):
        if task is current or task.done():
            continue
        out.write(f"-- task {task.get_name()}\n")
        task.print_stack(limit=8, file=out)
    return out.getvalue()


async def stop_in_order(
    steps: Sequence[tuple[str, Callable[[], Awaitable[None]]]],
    *,
    slow_s: float = SLOW_STOP_S,
    give_up_s: float = GIVE_UP_STOP_S,
) -> None:
    """Run each ``(name, stop)`` step in turn. A step that fails is logged and the rest
    still run; a step still running after ``slow_s`` is logged with :func:`pending_tasks`
    (once), and one still running after ``give_up_s`` is cancelled and left behind (logged
    as an error), so that the steps after it run and the process ends."""
    for name, stop in steps:
        step = asyncio.ensure_future(stop())
        done, _ = await asyncio.wait({step}, timeout=slow_s)
        if not done:
            log.warning("shutdown: %s still stopping after %.0f s; pending:\n%s",
                        name, slow_s, pending_tasks())  # fmt: skip
            done, _ = await asyncio.wait({step}, timeout=max(0.0, give_up_s - slow_s))
        if not done:
            step.cancel()
            log.error("shutdown: %s gave up after %.0f s; pending:\n%s",
                      name, give_up_s, pending_tasks())  # fmt: skip
            continue
        try:
            step.result()
        except asyncio.CancelledError:
            log.error("shutdown: %s was cancelled", name)
        except Exception:
            log.exception("shutdown: %s failed", name)
