"""Room input on every backend. Caps on the rooms a websocket ``join`` creates
(HUB_MAX_ROOMS_PER_USER, HUB_MAX_ROOMS): past them the join gets an ``error`` with code
``limit`` naming the cap, nothing is created, the socket stays open, and joining rooms that
exist still works. Text that is not valid Unicode is refused before it reaches the store."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.backends.rooms import Connect, start_nodes, store_env
from tests.support.hubproc import TEST_ADMIN_KEY, user_token
from tests.support.inproc import InProcessHub
from tests.support.wsclient import MSGPACK, Frame, WsClient

PER_USER = 3
TOTAL = 5


def answers(ref: str) -> Callable[[Frame], bool]:
    """Matches the ack or error frame that answers ``ref``."""
    return lambda frame: frame.get("op") in ("ack", "error") and frame.get("ref") == ref


def name(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def capped(request: pytest.FixtureRequest, backend_name: str, key_prefix: str
           ) -> Iterator[InProcessHub]:  # fmt: skip
    env = {"HUB_MAX_ROOMS_PER_USER": str(PER_USER), "HUB_MAX_ROOMS": str(TOTAL),
           "HUB_OFFLINE_GRACE_S": "0", **store_env(request, backend_name, key_prefix)}  # fmt: skip
    (hub,) = start_nodes(env, 1)
    try:
        yield hub
    finally:
        hub.stop()
        hub.assert_no_tracebacks()


async def room_ids(hub: InProcessHub) -> set[str]:
    async with httpx.AsyncClient(base_url=hub.url, trust_env=False, timeout=10) as http:
        reply = await http.post("/api/1.1/room/list", json={"api_key": TEST_ADMIN_KEY})
        assert reply.status_code == 200, reply.text
        return {str(room["room_id"]) for room in reply.json()["rooms"]}


async def test_joins_past_the_caps_are_refused_with_limit(
    capped: InProcessHub, connect: Connect
) -> None:
    alice = await connect(capped, name("alice"))
    bob = await connect(capped, name("bob"))
    mine = [name("a") for _ in range(PER_USER)]
    for room in mine:
        await alice.request({"op": "join", "room": room})
    refused = await alice.request({"op": "join", "room": name("a-extra")}, expect="error")
    assert refused["code"] == "limit" and f"at most {PER_USER} rooms" in refused["message"]
    # A room that exists can still be joined; bob's joins fill the hub's cap.
    bobs = [name("b") for _ in range(TOTAL - PER_USER)]
    for room in bobs:
        await bob.request({"op": "join", "room": room})
    await alice.request({"op": "join", "room": bobs[0]})
    full = await bob.request({"op": "join", "room": name("b-extra")}, expect="error")
    assert full["code"] == "limit" and f"at most {TOTAL} rooms" in full["message"]
    # Nothing was created by the refused joins, and both sockets still work.
    assert await room_ids(capped) == set(mine + bobs)
    await alice.request({"op": "leave", "room": bobs[0]})
    assert not alice.closed and not bob.closed


async def test_lone_surrogates_are_refused_on_every_backend(
    capped: InProcessHub, connect: Connect
) -> None:
    """On memory, Redis and Redis Cluster alike: a room name or status text with a lone
    surrogate is bad_field naming the field, no room is made, the room list answers, and a
    msgpack subscriber still gets the next change (nothing reached the fan-out)."""
    user = name("sur")
    client = await connect(capped, user)
    watcher = await WsClient.open(capped.ws_url, subprotocol=MSGPACK)
    try:
        await watcher.hello(user_token(name("mp")))
        await watcher.subscribe({"users": [user]})
        for data, field, ref in (
            ('{"op":"join","room":"\\ud800","ref":"j"}', "room", "j"),
            ('{"op":"status","text":"\\udfff","ref":"t"}', "text", "t"),
            ('{"op":"sub","users":["\\ud800"],"ref":"s"}', "users[0]", "s"),
        ):
            mark = client.mark()
            await client.send_raw(data)
            error = await client.wait_for(
                answers(ref),
                after=mark, what=f"the error for {ref}",
            )  # fmt: skip
            assert error["op"] == "error", f"{data} was not refused: {error}"
            assert error["code"] == "bad_field" and error["message"].startswith(field)
        assert await room_ids(capped) == set()
        mark = watcher.mark()
        await client.request({"op": "status", "status": "away", "text": "fine"})
        entry = await watcher.wait_status(user, "away", after=mark)
        assert entry["text"] == "fine"
        assert not client.closed and not watcher.closed
    finally:
        await watcher.close()
