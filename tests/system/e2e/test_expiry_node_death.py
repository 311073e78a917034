"""Status expiry survives the node that set it: two hubs on one Redis, the status set with
``until`` through hub 1, hub 1 killed with SIGKILL, and hub 2's sweep publishes the expiry."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from tests.support.hubproc import running_hubs, user_token
from tests.support.wsclient import connect_user

pytestmark = pytest.mark.redis


def uid(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


async def test_the_survivor_applies_an_expiry_set_on_a_killed_node(
    redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    """A user connected to both hubs sets busy until T on hub 1; hub 1 dies (kill -9); the
    user stays busy on hub 2 (its socket there) and, at T, hub 2 publishes it online."""
    env = {"HUB_STORE": redis_url, "HUB_KEY_PREFIX": key_prefix,
           "HUB_CHANNEL": f"{key_prefix}presence", "HUB_NODE_TTL_S": "1",
           "HUB_OFFLINE_GRACE_S": "30"}  # fmt: skip
    user = uid("u")
    with running_hubs(tmp_path, env) as (node1, node2):
        async with (
            await connect_user(node2.ws_url, user_token(uid("w")), subscribe=True) as watcher,
            await connect_user(node2.ws_url, user_token(user)),
        ):
            on_node1 = await connect_user(node1.ws_url, user_token(user))
            await watcher.wait_status(user, "online")  # the connects, seen
            start = watcher.mark()
            # Redis TIME runs on this machine's clock: T is on the store clock.
            until = time.time_ns() // 1_000_000 + 2_500
            await on_node1.request({"op": "status", "status": "busy", "text": "away from desk",
                                    "until": until})  # fmt: skip
            busy = await watcher.wait_status(user, "busy", after=start)
            assert busy["until"] == until
            node1.kill()
            await on_node1.close()
            back = await watcher.wait_status(user, "online", after=start, timeout=15)
            assert (back["text"], "until" in back) == ("", False)
            assert until <= back["at"] < until + 1_000, back
