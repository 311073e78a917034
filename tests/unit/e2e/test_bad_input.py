"""Bad input on the websocket: refused with the documented close code or error frame, and
the hub keeps serving everyone else."""

from __future__ import annotations

import contextlib
import json
import uuid

import jwt
from websockets.exceptions import ConnectionClosed

from tests.support.hubproc import TEST_SECRET, user_token
from tests.support.inproc import InProcessHub, inproc_hub_fixture
from tests.support.wsclient import MSGPACK, WsClient, connect_user

MAX_FRAME = 1024
RATE = 20
hub = inproc_hub_fixture({
    "HUB_HELLO_TIMEOUT_S": "0.5",
    "HUB_MAX_FRAME_BYTES": str(MAX_FRAME),
    "HUB_RATE_PER_S": str(RATE),
    "HUB_OFFLINE_GRACE_S": "0",
})  # fmt: skip


def uid(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


async def closed_with(hub: InProcessHub, first: str | bytes | None) -> tuple[int | None, str]:
    """Open a socket, send ``first`` (or nothing), and return how the hub closed it."""
    client = await WsClient.open(hub.ws_url)
    try:
        if first is not None:
            await client.send_raw(first)
        code = await client.wait_closed()
        return code, client.close_reason
    finally:
        await client.close()


async def test_invalid_token_closes_4001(hub: InProcessHub):
    """A hello whose token is garbage, or signed with another secret, is closed with 4001."""
    garbage = '{"op": "hello", "token": "not-a-jwt"}'
    code, reason = await closed_with(hub, garbage)
    assert code == 4001 and "invalid token" in reason
    forged = jwt.encode({"sub": "mallory"}, "another-secret-0123456789abcdefghijkl", "HS256")
    code, _ = await closed_with(hub, json.dumps({"op": "hello", "token": forged}))
    assert code == 4001


async def test_expired_token_closes_4001(hub: InProcessHub):
    """A hello with an expired token is closed with 4001 saying so."""
    expired = user_token(uid("late"), ttl_s=-60)
    code, reason = await closed_with(hub, json.dumps({"op": "hello", "token": expired}))
    assert (code, reason) == (4001, "token expired")


async def test_token_expiring_while_connected_closes_4001(hub: InProcessHub):
    """A socket whose token expires during the session is closed with 4001 at expiry."""
    client = await connect_user(hub.ws_url, user_token(uid("brief"), ttl_s=1))
    try:
        assert await client.wait_closed() == 4001
        assert client.close_reason == "token expired"
    finally:
        await client.close()


async def test_no_hello_in_time_closes_4001(hub: InProcessHub):
    """A socket that says nothing within HUB_HELLO_TIMEOUT_S is closed with 4001."""
    code, reason = await closed_with(hub, None)
    assert code == 4001 and "hello" in reason


async def test_first_frame_not_hello_closes_4001(hub: InProcessHub):
    """Any first frame but hello (even a valid one) is closed with 4001."""
    code, reason = await closed_with(hub, '{"op": "sub", "all": true}')
    assert code == 4001 and "hello" in reason
    code, _ = await closed_with(hub, "{not json")
    assert code == 4001


BAD_FRAMES = [
    ("not json at all", "bad_frame", None),
    (b"\xc1\xc1", "bad_frame", None),
    ("[1, 2, 3]", "bad_frame", None),
    ("[" * 1000, "bad_frame", None),
    ('{"op": "dance", "ref": "x1"}', "unknown_op", "x1"),
    ('{"op": "status", "status": "dnd", "ref": "x2"}', "bad_field", "x2"),
    (json.dumps({"op": "status", "text": "t" * 121, "ref": "x3"}), "bad_field", "x3"),
    ('{"op": "sub", "all": true, "users": ["u"], "ref": "x4"}', "bad_field", "x4"),
    ('{"op": "sub", "all": true, "since": "yesterday", "ref": "x5"}', "bad_field", "x5"),
    ('{"op": "ping", "ref": [1]}', "bad_field", None),
    ('{"op": "activity", "state": "busy", "ref": 6}', "bad_field", 6),
    ('{"op": "hello", "token": "again", "ref": "x7"}', "bad_frame", "x7"),
    ('{"op": "unsub", "users": ["nobody"], "ref": "x8"}', "not_subscribed", "x8"),
]


async def test_bad_frames_get_error_frames_and_everyone_keeps_being_served(hub: InProcessHub):
    """Each bad frame is answered by an error (code, message, ref); the socket stays open,
    its subscription keeps working, and another subscriber keeps being served."""
    bad_id, watcher_id, newcomer_id = uid("bad"), uid("watch"), uid("new")
    bad = await connect_user(hub.ws_url, user_token(bad_id), subscribe=True)
    watcher = await connect_user(hub.ws_url, user_token(watcher_id), subscribe=True)
    newcomer = None
    try:
        start = watcher.mark()
        for data, code, ref in BAD_FRAMES:
            mark = bad.mark()
            await bad.send_raw(data)
            error = await bad.wait_for(
                lambda f: f["op"] == "error", after=mark, what=f"the error for {data!r:.40}"
            )
            assert (error["code"], error.get("ref")) == (code, ref), data
            assert error["message"]
        assert not bad.closed
        newcomer = await connect_user(hub.ws_url, user_token(newcomer_id))
        await watcher.wait_status(newcomer_id, "online", after=start)
        await bad.wait_status(newcomer_id, "online", after=start)
        # The bad status frames changed nothing: the watcher heard nothing about bad.
        assert list(watcher.entries(bad_id, after=start)) == []
        assert await bad.request({"op": "status", "status": "away", "ref": "ok"}) == {
            "op": "ack",
            "ref": "ok",
        }
        await watcher.wait_status(bad_id, "away", after=start)
    finally:
        for client in (bad, watcher, newcomer):
            if client is not None:
                await client.close()


async def test_bad_msgpack_frames_on_a_msgpack_session(hub: InProcessHub):
    """On hub.v1.msgpack, an undecodable binary frame gets a binary error frame, not a close."""
    client = await WsClient.open(hub.ws_url, subprotocol=MSGPACK)
    try:
        await client.hello(user_token(uid("mp")))
        mark = client.mark()
        await client.send_raw(b"\x81\xa2op")  # a map whose value is missing
        error = await client.wait_for(lambda f: f["op"] == "error", after=mark, what="error")
        assert error["code"] == "bad_frame" and isinstance(client.raw[-1], bytes)
        snapshot = await client.subscribe()
        assert snapshot["full"] is True, "the session still works after the bad frame"
    finally:
        await client.close()


async def test_oversized_frame_closes_1009(hub: InProcessHub):
    """A frame larger than HUB_MAX_FRAME_BYTES closes the socket with 1009; others stay up."""
    other = await connect_user(hub.ws_url, user_token(uid("other")), subscribe=True)
    big = await connect_user(hub.ws_url, user_token(uid("big")))
    try:
        text = "x" * (2 * MAX_FRAME)
        with contextlib.suppress(ConnectionClosed):
            await big.send({"op": "status", "text": text})
        assert await big.wait_closed() == 1009
        mark = other.mark()
        await other.send({"op": "ping", "ref": "alive"})
        await other.wait_for(lambda f: f == {"op": "pong", "ref": "alive"}, after=mark, what="pong")
    finally:
        await other.close()
        await big.close()


async def test_flood_beyond_the_rate_closes_4008(hub: InProcessHub):
    """Sending far more than HUB_RATE_PER_S frames at once closes the socket with 4008."""
    flooder = await connect_user(hub.ws_url, user_token(uid("flood")))
    try:
        with contextlib.suppress(ConnectionClosed):
            for i in range(RATE * 20):
                await flooder.send({"op": "ping", "ref": i})
        assert await flooder.wait_closed() == 4008
        assert flooder.close_reason == "too many frames"
        # Pongs still queued at the close are dropped with the socket, so only an upper bound.
        pongs = [f for f in flooder.frames if f["op"] == "pong"]
        assert len(pongs) < RATE * 20, "the flood was cut off, not served"
    finally:
        await flooder.close()


async def test_a_lone_surrogate_is_bad_field_and_msgpack_subscribers_keep_getting_deltas(
    hub: InProcessHub,
):
    """A status text, a user id or a room name holding a lone surrogate (JSON can carry one)
    is refused with bad_field naming the field; a msgpack subscriber covering the user keeps
    receiving deltas, so nothing reached the fan-out."""
    sender_id = uid("sur")
    watcher = await WsClient.open(hub.ws_url, subprotocol=MSGPACK)
    sender = await connect_user(hub.ws_url, user_token(sender_id))
    try:
        await watcher.hello(user_token(uid("mpw")))
        await watcher.subscribe({"users": [sender_id]})
        mark = sender.mark()
        frames = [
            ('{"op":"status","text":"\\ud800","ref":"s1"}', "text"),
            ('{"op":"sub","users":["\\ud800"],"ref":"s2"}', "users[0]"),
            ('{"op":"join","room":"r\\udfff","ref":"s3"}', "room"),
            ('{"op":"sub","room":"\\ud800","ref":"s4"}', "room"),
        ]
        for data, _field in frames:
            await sender.send_raw(data)
        for (_, field), ref in zip(frames, ("s1", "s2", "s3", "s4"), strict=True):
            error = await sender.wait_for(
                lambda f, ref=ref: f["op"] == "error" and f.get("ref") == ref,
                after=mark, what=f"the error for {ref}",
            )  # fmt: skip
            assert error["code"] == "bad_field" and error["message"].startswith(field), error
        watched = watcher.mark()
        await sender.request({"op": "status", "status": "busy", "text": "fine"})
        entry = await watcher.wait_status(sender_id, "busy", after=watched)
        assert entry["text"] == "fine"
        assert not sender.closed and not watcher.closed
    finally:
        await watcher.close()
        await sender.close()


async def test_a_huge_ref_on_a_msgpack_session_is_bad_field_and_the_socket_stays(
    hub: InProcessHub,
):
    """10**30 - 1 as a ref in a JSON frame on a msgpack session cannot be echoed in msgpack:
    bad_field without the ref, and the session goes on."""
    client = await WsClient.open(hub.ws_url, subprotocol=MSGPACK)
    try:
        await client.hello(user_token(uid("ref")))
        mark = client.mark()
        await client.send_raw(json.dumps({"op": "ping", "ref": 10**30 - 1}))
        error = await client.wait_for(lambda f: f["op"] == "error", after=mark, what="error")
        assert error["code"] == "bad_field" and "ref" in error["message"]
        assert "ref" not in error
        mark = client.mark()
        await client.send({"op": "ping", "ref": 2**63 - 1})
        await client.wait_for(
            lambda f: f == {"op": "pong", "ref": 2**63 - 1}, after=mark, what="pong"
        )
        assert not client.closed
    finally:
        await client.close()


async def test_token_claims_with_a_lone_surrogate_close_4001(hub: InProcessHub):
    """A sub, name or username holding a lone surrogate is refused like a bad token."""
    for claims in ({"sub": "\ud800"}, {"sub": uid("n"), "name": "x\udc00"},
                   {"sub": uid("u"), "username": "\ud800"}):  # fmt: skip
        token = jwt.encode(claims, TEST_SECRET, "HS256")
        code, reason = await closed_with(hub, json.dumps({"op": "hello", "token": token}))
        assert code == 4001 and "surrogate" in reason, (claims, reason)


async def test_a_numeric_string_exp_closes_4001(hub: InProcessHub):
    """exp must be a JSON number: "exp": "<far future>" is refused, not silently unenforced."""
    token = jwt.encode({"sub": uid("s"), "exp": "9999999999"}, TEST_SECRET, "HS256")
    code, reason = await closed_with(hub, json.dumps({"op": "hello", "token": token}))
    assert code == 4001 and "exp" in reason
