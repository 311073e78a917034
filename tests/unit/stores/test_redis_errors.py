"""Which Redis failures mean "the store cannot serve now" (``StoreUnavailable``: an
``unavailable`` error frame, a 503) and which are bugs that must surface.

The mapping goes by redis-py's exception classes, never by their wording, which changes
between releases. The error replies here are parsed by redis-py's own reply parser, so each
arrives as the class a real server's reply would become.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import pytest
import redis.exceptions as rex
from redis._parsers.base import BaseParser
from redis.asyncio.connection import Connection

from hub.stores.presence.base import StoreUnavailable
from hub.stores.presence.redis import unavailable

#: redis-py's own reply parser (untyped there): a reply's text in, the exception it raises.
parse_error = cast(Callable[[str], rex.ResponseError], BaseParser.parse_error)

#: Replies a failover, a restart or a long script produce: "retry later".
TRANSIENT_REPLIES = [
    "LOADING Redis is loading the dataset in memory",
    "CLUSTERDOWN The cluster is down",
    "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
    "TRYAGAIN Multiple keys request during rehashing of slot",
    "READONLY You can't write against a read only replica.",
    "MOVED 3999 127.0.0.1:6381",
    "ASK 3999 127.0.0.1:6381",
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSCRIPT.",
]
#: Replies that mean the hub sent something wrong: they pass through as they are.
BUG_REPLIES = [
    "ERR user_script:12: Script attempted to access nonexistent global variable 'x'",
    "WRONGTYPE Operation against a key holding the wrong kind of value",
    "NOSCRIPT No matching script. Please use EVAL.",
]


async def test_a_closed_connection_inside_redis_py_is_store_unavailable() -> None:
    """What a failover does to commands in flight: redis-py writes on a connection whose
    writer another task closed (an AttributeError in older releases, redis-py's own
    ConnectionError in newer ones). Raised from redis-py that is StoreUnavailable; the same
    error from the hub's own code is a bug and passes through."""
    connection = Connection()
    with pytest.raises(StoreUnavailable) as caught, unavailable():
        await connection._send_packed_command([b"PING\r\n"])
    assert isinstance(caught.value.__cause__, AttributeError | rex.ConnectionError)
    with pytest.raises(AttributeError), unavailable():
        None.writelines  # type: ignore[attr-defined]  # noqa: B018


@pytest.mark.parametrize("reply", TRANSIENT_REPLIES, ids=lambda r: r.split()[0])
def test_a_transient_error_reply_is_store_unavailable(reply: str) -> None:
    """Loading, cluster down, a redirect mid-failover or a busy script: retry later."""
    error = parse_error(reply)
    with pytest.raises(StoreUnavailable) as caught, unavailable():
        raise error
    assert caught.value.__cause__ is error


@pytest.mark.parametrize("reply", BUG_REPLIES, ids=lambda r: r.split()[0])
def test_an_error_reply_that_is_a_bug_passes_through(reply: str) -> None:
    """A script error or a wrong type is not "unavailable": it surfaces as redis-py raised it."""
    error = parse_error(reply)
    with pytest.raises(rex.ResponseError) as caught, unavailable():
        raise error
    assert caught.value is error


def test_a_dropped_connection_and_a_timeout_are_store_unavailable() -> None:
    """redis-py's connection and timeout errors, whatever their message."""
    for error in (rex.ConnectionError("gone"), rex.TimeoutError("slow"), ConnectionResetError()):
        with pytest.raises(StoreUnavailable), unavailable():
            raise error
