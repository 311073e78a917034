"""Test helpers shared by every suite: real Redis servers and polling with a deadline.

Tests never sleep a fixed time to let something happen; they poll a condition until it
holds or a deadline passes (:func:`eventually`), so they are fast on an idle machine and
still pass on a loaded one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

#: Default deadline: generous, because a loaded CI machine is slow, not broken.
EVENTUALLY_S = 10.0


async def eventually(
    check: Callable[[], Awaitable[T]], timeout: float = EVENTUALLY_S, interval: float = 0.01
) -> T:
    """Await ``check()`` until it returns a truthy value without raising AssertionError.

    Returns that value. At the deadline, re-raises the last AssertionError, or fails
    saying what the last falsy value was.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = await check()
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
        else:
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(f"condition still false after {timeout} s: {value!r}")
        await asyncio.sleep(interval)
