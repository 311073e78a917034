"""The Python SDK (``hub.clients.ws``) on counts, member windows and watchlists, across two
nodes (memory, Redis, Cluster): ``counts()`` follows a room's numbers, ``members()`` holds
the window REST lists and ``move()`` scrolls it, and ``get()`` tells a known offline user
from an id the hub never saw."""

from __future__ import annotations

import asyncio
import uuid

from hub.clients.views import Counts, Unknown
from hub.clients.ws import connect as sdk_connect
from tests.backends.rooms import Connect
from tests.support import eventually
from tests.support.hubproc import user_token
from tests.support.inproc import Hub
from tests.support.views import members, shown


def name(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


async def test_counts_and_windows_through_the_sdk(nodes: tuple[Hub, Hub], connect: Connect) -> None:
    """The SDK's counts and window views on node 2 follow members changing on node 1."""
    one, two = nodes
    room = name("sdk")
    people = [await connect(one, name(f"p{n}")) for n in range(6)]
    await asyncio.gather(*(p.request({"op": "join", "room": room}) for p in people))
    async with sdk_connect(two.url, user_token(name("reader")), codec="msgpack") as hub:
        numbers = await hub.counts(room)
        assert numbers.value is not None
        assert (numbers.value.online, numbers.value.total) == (6, 6)
        window = await hub.members(room, 0, 2)
        assert len(window.users) == 3 and window.total == 6
        everyone = await hub.counts()
        assert everyone.value is not None and everyone.value.total >= 7
        await people[0].request({"op": "status", "status": "busy"})
        await people[1].close()

        async def numbers_follow() -> Counts:
            value = numbers.value
            assert value is not None and (value.online, value.busy, value.total) == (4, 1, 6)
            return value

        await eventually(numbers_follow)

        async def window_matches() -> bool:
            page = await members(two, room, window.range[0], 3)
            assert [shown(u) for u in window.users] == [shown(m) for m in page["members"]]
            return True

        await eventually(window_matches)
        await hub.move(room, 3, 5)
        assert window.range == (3, 5) and window.current
        await people[2].request({"op": "status", "status": "away"})
        await eventually(window_matches)
        updates = window.changes()
        first = await anext(updates)
        assert [u["id"] for u in first] == [u["id"] for u in window.users]
        await updates.aclose()
        await hub.unsubscribe({"room": room, "range": [3, 5]})
        await hub.unsubscribe({"room": room, "counts": True})


async def test_a_watchlist_tells_offline_from_unknown_through_the_sdk(
    nodes: tuple[Hub, Hub], connect: Connect
) -> None:
    """``get()`` answers an offline entry with lastSeen, Unknown, or None; a newcomer
    leaves the unknown set when it connects."""
    one, two = nodes
    gone = await connect(one, name("gone"))
    gone_id = gone.ready["user"]["id"]
    await gone.close()
    stranger = name("stranger")
    ids = [gone_id, stranger, *(name("filler") for _ in range(150))]
    async with sdk_connect(two.url, user_token(name("reader"))) as hub:
        state = await hub.subscribe({"users": ids})
        offline = hub.get({"users": ids}, gone_id)
        assert isinstance(offline, dict) and offline["status"] == "offline"
        assert offline["lastSeen"] > 0 and state[gone_id] == offline
        assert hub.get({"users": ids}, stranger) == Unknown(stranger)
        assert hub.get({"users": ids}, "not-watched") is None
        assert stranger in hub.unknown({"users": ids}) and len(hub.unknown({"users": ids})) == 151
        await connect(one, stranger)

        async def known_now() -> bool:
            entry = hub.get({"users": ids}, stranger)
            assert isinstance(entry, dict) and entry["status"] == "online", entry
            return True

        await eventually(known_now)
        assert stranger not in hub.unknown({"users": ids})
