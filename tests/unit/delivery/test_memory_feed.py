"""memory:// webhooks read the store's feed; a reader that falls behind gets a gap, filled
from the change index by cursor, so the queue still ends with every user's latest state."""

from __future__ import annotations

from hub.delivery.queue import QueueSource
from hub.delivery.webhooks import Webhooks
from hub.node.node import Node
from hub.ops.config import Settings, WebhookEndpoint
from hub.stores.local_feed import FEED_LIMIT
from hub.stores.presence.base import Profile
from hub.stores.presence.memory import MemoryStore
from tests.support import eventually


async def test_a_feed_gap_is_filled_from_the_index() -> None:
    store = MemoryStore(grace_ms=0)
    settings = Settings(webhooks=(WebhookEndpoint("http://127.0.0.1:9/never", "s"),))
    node = Node(settings, store)
    hooks = Webhooks(settings, node)
    await store.start()
    await hooks.start()
    try:
        source = hooks.endpoints[0].source
        assert isinstance(source, QueueSource)
        await hooks.endpoints[0].deliverer.stop()  # keep everything in the queue to look at
        await eventually(lambda: _reading(store))
        await store.connect("n", "c1", Profile("alice"), "online")
        await eventually(lambda: _queued(source, 1))
        # More changes than the feed holds, with no chance for the reader to run between.
        for n in range(FEED_LIMIT + 50):
            await store.set_status("alice", status="busy" if n % 2 else "away", text=str(n))
        await eventually(lambda: _gap(hooks))
        last = str(FEED_LIMIT + 49)
        await eventually(lambda: _has_text(source, last))
    finally:
        await hooks.stop()
        await store.close()


async def _reading(store: MemoryStore) -> bool:
    return store.feed_consumers == 1


async def _queued(source: QueueSource, n: int) -> bool:
    return source.stats.queued >= n


async def _gap(hooks: Webhooks) -> bool:
    return hooks.endpoints[0].stats.gaps >= 1


async def _has_text(source: QueueSource, text: str) -> bool:
    return any(u.get("text") == text for q in source._queue for u in q.users)
