"""The wire protocol, without a socket: every client op, every refusal, both codecs."""

from __future__ import annotations

import contextlib
import json
import warnings
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.wire import hub as p

# See tests/test_presence.py: keeps a failing example readable with warnings as errors.
with warnings.catch_warnings(), contextlib.suppress(ImportError):
    warnings.simplefilter("ignore", DeprecationWarning)
    import hypothesis.extra._patching  # noqa: F401

PROPERTY = settings(database=None, deadline=None, max_examples=300)


def as_json(frame: Any) -> str:
    return json.dumps(frame)


def as_msgpack(frame: Any) -> bytes:
    packed: bytes = msgpack.packb(frame, use_bin_type=True)
    return packed


CODECS = [pytest.param(as_json, id="json"), pytest.param(as_msgpack, id="msgpack")]


# -- every op --------------------------------------------------------------------------

VALID = [
    ({"op": "hello", "token": "abc.def.ghi"}, p.Hello("abc.def.ghi")),
    ({"op": "status", "status": "busy"}, p.SetStatus("busy", None)),
    ({"op": "status", "text": "lunch"}, p.SetStatus(None, "lunch")),
    ({"op": "status", "status": "offline", "text": ""}, p.SetStatus("offline", "")),
    ({"op": "status", "status": "away", "text": "x" * 120}, p.SetStatus("away", "x" * 120)),
    ({"op": "activity", "state": "away"}, p.Activity("away")),
    ({"op": "activity", "state": "online"}, p.Activity("online")),
    ({"op": "sub", "all": True}, p.Sub(p.ALL)),
    ({"op": "sub", "all": True, "since": 1_700_000_000_123}, p.Sub(p.ALL, 1_700_000_000_123)),
    ({"op": "sub", "users": ["a", "b"]}, p.Sub(p.Scope("users", users=("a", "b")))),
    ({"op": "sub", "room": "lobby", "since": 5}, p.Sub(p.Scope("room", room="lobby"), 5)),
    ({"op": "unsub", "all": True}, p.Unsub(p.ALL)),
    ({"op": "unsub", "users": ["a"]}, p.Unsub(p.Scope("users", users=("a",)))),
    ({"op": "unsub", "room": "lobby"}, p.Unsub(p.Scope("room", room="lobby"))),
    ({"op": "join", "room": "lobby"}, p.Join("lobby")),
    ({"op": "leave", "room": "lobby"}, p.Leave("lobby")),
    ({"op": "ping"}, p.Ping()),
    ({"op": "pong"}, p.Pong()),
]


@pytest.mark.parametrize("encode", CODECS)
@pytest.mark.parametrize(("frame", "message"), VALID, ids=lambda v: str(v)[:40])
def test_every_op_parses(encode, frame, message):
    """Each client op parses to its message, from JSON text and from msgpack bytes."""
    assert p.parse(encode(frame)) == message


@pytest.mark.parametrize("encode", CODECS)
@pytest.mark.parametrize("ref", ["client-7", 42, 0])
def test_ref_is_carried_on_every_op(encode, ref):
    """A string or integer ``ref`` comes back on the parsed message of every op."""
    for frame, message in VALID:
        parsed = p.parse(encode({**frame, "ref": ref}))
        assert parsed.ref == ref
        assert type(parsed) is type(message)


# -- every refusal ---------------------------------------------------------------------


def refused(data: str | bytes) -> p.ProtocolError:
    with pytest.raises(p.ProtocolError) as info:
        p.parse(data)
    return info.value


@pytest.mark.parametrize(
    "data",
    ["{", "nope", "", '{"op": "ping",}', "[" * 50_000],
    ids=["open-brace", "word", "empty", "trailing-comma", "deep"],
)
def test_bad_json_is_a_bad_frame(data):
    """Text that is not JSON (including absurdly deep nesting) is refused as bad_frame."""
    err = refused(data)
    assert err.code == p.ErrorCode.BAD_FRAME
    assert "JSON" in err.message


@pytest.mark.parametrize(
    "data",
    [b"\xc1", b"\x81", b"\x80\x80", b"\xa3ab", b"\x81\x01\xa1x", b"\x91" * 2_000, b""],
    ids=["reserved-byte", "truncated", "extra-data", "short-str", "int-key", "deep", "empty"],
)
def test_bad_msgpack_is_a_bad_frame(data):
    """Bytes that are not one msgpack value with string keys are refused as bad_frame."""
    err = refused(data)
    assert err.code == p.ErrorCode.BAD_FRAME
    assert "msgpack" in err.message


@pytest.mark.parametrize("encode", CODECS)
@pytest.mark.parametrize("value", [[], ["op", "ping"], "ping", 7, None, True])
def test_non_map_is_a_bad_frame(encode, value):
    """A frame that decodes to anything but a map is refused as bad_frame."""
    err = refused(encode(value))
    assert err.code == p.ErrorCode.BAD_FRAME
    assert "map" in err.message


@pytest.mark.parametrize("encode", CODECS)
@pytest.mark.parametrize(
    "frame",
    [
        {"op": "dance", "ref": "r1"},
        {"ref": "r1"},
        {"op": 5, "ref": "r1"},
        {"op": "HELLO", "ref": "r1"},
    ],
)
def test_unknown_op_names_it_and_keeps_the_ref(encode, frame):
    """An unknown or missing op is unknown_op, with the op in the message and the ref kept."""
    err = refused(encode(frame))
    assert err.code == p.ErrorCode.UNKNOWN_OP
    assert repr(frame.get("op")) in err.message
    assert err.ref == "r1"


BAD_FIELDS = [
    ({"op": "hello"}, "token"),
    ({"op": "hello", "token": 5}, "token"),
    ({"op": "hello", "token": ""}, "token"),
    ({"op": "status"}, "status"),
    ({"op": "status", "status": 1}, "status"),
    ({"op": "status", "status": "dnd"}, "status must be one of online, away, busy, offline"),
    ({"op": "status", "status": "Online"}, "status"),
    ({"op": "status", "text": 5}, "text must be a string"),
    ({"op": "status", "text": "x" * 121}, "text must be at most 120 characters, got 121"),
    ({"op": "status", "status": "busy", "text": "é" * 121}, "at most 120"),
    ({"op": "activity"}, "state"),
    ({"op": "activity", "state": "busy"}, "state must be online or away"),
    ({"op": "activity", "state": ["online"]}, "state"),
    ({"op": "sub"}, "exactly one of"),
    ({"op": "sub", "all": True, "users": ["a"]}, "exactly one of"),
    ({"op": "sub", "all": True, "room": "r"}, "exactly one of"),
    ({"op": "unsub", "users": ["a"], "room": "r"}, "exactly one of"),
    ({"op": "sub", "all": False}, "all must be true"),
    ({"op": "sub", "all": 1}, "all must be true"),
    ({"op": "sub", "users": "a"}, "users must be a non-empty list"),
    ({"op": "sub", "users": []}, "users must be a non-empty list"),
    ({"op": "sub", "users": ["a", 5]}, "users[]"),
    ({"op": "sub", "users": ["a", ""]}, "users[]"),
    ({"op": "sub", "users": ["x" * 257]}, "at most 256"),
    ({"op": "sub", "users": [f"u{i}" for i in range(10_001)]}, "at most 10000 ids, got 10001"),
    ({"op": "sub", "room": 5}, "room"),
    ({"op": "sub", "room": "r" * 129}, "at most 128"),
    ({"op": "sub", "all": True, "since": "123"}, "since must be a cursor"),
    ({"op": "sub", "all": True, "since": 1.5}, "since must be a cursor"),
    ({"op": "sub", "all": True, "since": True}, "since must be a cursor"),
    ({"op": "sub", "all": True, "since": [1]}, "since must be a cursor"),
    ({"op": "join"}, "room"),
    ({"op": "leave", "room": ""}, "room"),
]


@pytest.mark.parametrize("encode", CODECS)
@pytest.mark.parametrize(("frame", "needle"), BAD_FIELDS, ids=lambda v: str(v)[:50])
def test_wrong_fields_are_refused_naming_the_field(encode, frame, needle):
    """A wrong or missing field is bad_field, the message naming it, the ref kept."""
    err = refused(encode({**frame, "ref": 9}))
    assert err.code == p.ErrorCode.BAD_FIELD
    assert needle in err.message
    assert err.ref == 9


def test_users_list_at_the_limit_is_accepted():
    """Exactly MAX_IDS users is still a valid subscription."""
    users = [f"u{i}" for i in range(p.MAX_IDS)]
    msg = p.parse(as_json({"op": "sub", "users": users}))
    assert isinstance(msg, p.Sub) and len(msg.scope.users) == p.MAX_IDS


@pytest.mark.parametrize("encode", CODECS)
@pytest.mark.parametrize("ref", [1.5, True, [1], {"a": 1}, "r" * 257])
def test_bad_ref_is_refused(encode, ref):
    """A ref that is not a short string or an integer is bad_field."""
    err = refused(encode({"op": "ping", "ref": ref}))
    assert err.code == p.ErrorCode.BAD_FIELD
    assert "ref" in err.message


def test_protocol_error_is_a_value_error_with_its_code():
    """ProtocolError carries code, message and ref and is a ValueError."""
    err = refused(as_json({"op": "activity", "state": "x", "ref": "q"}))
    assert isinstance(err, ValueError)
    assert (err.code, err.ref, str(err)) == (p.ErrorCode.BAD_FIELD, "q", err.message)


# -- scopes and codecs -----------------------------------------------------------------


def test_scope_wire_and_key():
    """Scopes echo their wire form; a users scope's key ignores order and duplicates."""
    assert p.ALL.wire() == {"all": True}
    assert p.Scope("room", room="r").wire() == {"room": "r"}
    a = p.Scope("users", users=("b", "a", "b"))
    assert a.wire() == {"users": ["b", "a", "b"]}
    assert a.key() == p.Scope("users", users=("a", "b")).key() == ("users", "a", "b")
    assert p.ALL.key() != p.Scope("room", room="all").key()


@pytest.mark.parametrize(
    ("offered", "name"),
    [([], p.JSON), ([p.MSGPACK], p.MSGPACK), ([p.JSON], p.JSON), (["x", p.MSGPACK], p.MSGPACK),
     ([p.JSON, p.MSGPACK], p.JSON), (["chat"], p.JSON)],
)  # fmt: skip
def test_codec_for_offered_subprotocols(offered, name):
    """The first hub subprotocol the client offers wins; JSON when none is offered."""
    assert p.codec_for(offered).name == name


SERVER_FRAMES = [
    p.ready("n1.1", {"id": "u", "username": "u", "name": "U", "status": "online", "text": "",
                     "at": 5}, 7, 600.0),
    p.ready("n1.2", {"id": "u", "username": "u", "name": "U", "status": "busy", "text": "t",
                     "at": 5}, 7, 2.5),
    p.snapshot(p.ALL, True, [{"id": "ü", "username": "ü", "name": "Ünïcode ✓",
                              "status": "away", "text": "☕", "at": 1}], 10),
    p.snapshot(p.Scope("users", users=("a", "b")), False, [], 11),
    p.delta(p.Scope("room", room="r"), [{"id": "a", "username": "a", "name": "A",
                                         "status": "online", "text": "", "at": 3,
                                         "member": False}], 12),
    p.ack("r1"),
    p.ack(3),
    p.error("bad_field", "status must be one of ...", "r2"),
    p.error("unavailable", "presence store unreachable"),
]  # fmt: skip


@pytest.mark.parametrize("frame", SERVER_FRAMES, ids=lambda f: f["op"])
def test_server_frames_round_trip_in_both_codecs(frame):
    """Every server frame encodes to text (JSON) or bytes (msgpack) and decodes back equal."""
    text = p.JSON_CODEC.encode(frame)
    assert isinstance(text, str) and json.loads(text) == frame
    packed = p.MSGPACK_CODEC.encode(frame)
    assert isinstance(packed, bytes) and msgpack.unpackb(packed, raw=False) == frame
    assert p.decode(text) == p.decode(packed) == frame


def test_server_frame_shapes():
    """ready/snapshot/delta/ack/error carry exactly the documented fields."""
    assert set(SERVER_FRAMES[0]) == {"op", "conn", "user", "cursor", "window"}
    assert SERVER_FRAMES[0]["window"] == 600 and isinstance(SERVER_FRAMES[0]["window"], int)
    assert SERVER_FRAMES[1]["window"] == 2.5
    assert set(SERVER_FRAMES[2]) == {"op", "scope", "full", "users", "cursor"}
    assert SERVER_FRAMES[3]["scope"] == {"users": ["a", "b"]}
    assert set(SERVER_FRAMES[4]) == {"op", "scope", "users", "cursor"}
    assert SERVER_FRAMES[5] == {"op": "ack", "ref": "r1"}
    assert SERVER_FRAMES[7] == {
        "op": "error",
        "code": "bad_field",
        "message": "status must be one of ...",
        "ref": "r2",
    }
    assert "ref" not in SERVER_FRAMES[8]


def test_close_codes_are_the_documented_ones():
    """The close codes match DESIGN.md's list."""
    assert {c.name: int(c) for c in p.CloseCode} == {
        "NORMAL": 1000, "TOO_LARGE": 1009, "RESTARTING": 1012, "TRY_AGAIN": 1013,
        "NOT_AUTHENTICATED": 4001, "DEACTIVATED": 4003, "DISCONNECTED": 4004,
        "RATE_LIMITED": 4008,
    }  # fmt: skip


# -- round trips of client frames, generated -------------------------------------------

ids = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=20)
refs = st.none() | st.integers(-(2**53), 2**53) | st.text(max_size=30)
client_frames = st.one_of(
    st.builds(lambda t: ({"op": "hello", "token": t}, p.Hello(t)), ids),
    st.builds(
        lambda s, t: ({"op": "status", **({"status": s} if s else {}), "text": t},
                      p.SetStatus(s, t)),
        st.none() | st.sampled_from(["online", "away", "busy", "offline"]),
        st.text(max_size=120),
    ),
    st.builds(lambda s: ({"op": "activity", "state": s}, p.Activity(s)),
              st.sampled_from(["online", "away"])),
    st.builds(lambda us, since: ({"op": "sub", "users": us, "since": since},
                                 p.Sub(p.Scope("users", users=tuple(us)), since)),
              st.lists(ids, min_size=1, max_size=5), st.none() | st.integers(0, 2**62)),
    st.builds(lambda r: ({"op": "join", "room": r}, p.Join(r)), ids),
    st.builds(lambda r: ({"op": "unsub", "room": r}, p.Unsub(p.Scope("room", room=r))), ids),
)  # fmt: skip


@PROPERTY
@given(client_frames, refs, st.sampled_from([as_json, as_msgpack]))
def test_generated_client_frames_round_trip(pair, ref, encode):
    """Any valid client frame, in either codec, parses to the message it describes."""
    frame, message = pair
    if ref is not None:
        frame = {**frame, "ref": ref}
    parsed = p.parse(encode(frame))
    assert type(parsed) is type(message)
    assert {k: v for k, v in vars(parsed).items() if k != "ref"} == {
        k: v for k, v in vars(message).items() if k != "ref"
    }
    assert parsed.ref == ref


# -- status expiry (until) and last-seen privacy on the status frame ---------------------

UNTIL = 1_900_000_000_000
VALID_STATUS_EXTRAS = [
    ({"op": "status", "status": "busy", "text": "In a meeting", "until": UNTIL},
     p.SetStatus("busy", "In a meeting", until=UNTIL)),
    ({"op": "status", "text": "lunch", "until": UNTIL}, p.SetStatus(None, "lunch", until=UNTIL)),
    ({"op": "status", "status": "away", "until": None}, p.SetStatus("away", None)),
    ({"op": "status", "lastSeen": "nobody"}, p.SetStatus(None, None, last_seen="nobody")),
    ({"op": "status", "status": "online", "lastSeen": "everyone"},
     p.SetStatus("online", None, last_seen="everyone")),
]  # fmt: skip


@pytest.mark.parametrize("encode", CODECS)
@pytest.mark.parametrize(("frame", "message"), VALID_STATUS_EXTRAS, ids=lambda v: str(v)[:60])
def test_status_frames_with_until_and_last_seen_parse(encode, frame, message):
    """``until`` (ms) and ``lastSeen`` (everyone or nobody) travel on the status frame."""
    assert p.parse(encode(frame)) == message


BAD_STATUS_EXTRAS = [
    ({"op": "status", "status": "busy", "until": "soon"}, "until must be a time in ms"),
    ({"op": "status", "status": "busy", "until": 1.5e12}, "until must be a time in ms"),
    ({"op": "status", "status": "busy", "until": True}, "until must be a time in ms"),
    ({"op": "status", "status": "busy", "until": 0}, "until must be a time in ms"),
    ({"op": "status", "status": "busy", "until": -5}, "until must be a time in ms"),
    ({"op": "status", "status": "busy", "until": 2**53}, "until must be a time in ms"),
    ({"op": "status", "until": UNTIL}, "until needs a status and/or a text"),
    ({"op": "status", "until": UNTIL, "lastSeen": "nobody"}, "until needs a status"),
    ({"op": "status", "lastSeen": "hidden"}, "lastSeen must be everyone or nobody"),
    ({"op": "status", "lastSeen": True}, "lastSeen must be everyone or nobody"),
]


@pytest.mark.parametrize("encode", CODECS)
@pytest.mark.parametrize(("frame", "needle"), BAD_STATUS_EXTRAS, ids=lambda v: str(v)[:60])
def test_bad_until_or_last_seen_is_refused_naming_the_field(encode, frame, needle):
    """A wrong ``until`` or ``lastSeen`` is bad_field naming it; the ref is kept. Whether
    ``until`` lies ahead is the store's to check, on its clock."""
    err = refused(encode({**frame, "ref": 9}))
    assert err.code == p.ErrorCode.BAD_FIELD
    assert needle in err.message
    assert err.ref == 9


# -- invalid Unicode and out-of-range numbers ---------------------------------------------

SURROGATE = "\ud800"


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ({"op": "status", "text": SURROGATE}, "text"),
        ({"op": "status", "status": "busy", "text": "ok" + SURROGATE}, "text"),
        ({"op": "sub", "users": ["alice", SURROGATE]}, "users[1]"),
        ({"op": "sub", "room": SURROGATE}, "room"),
        ({"op": "unsub", "room": "a" + SURROGATE}, "room"),
        ({"op": "join", "room": SURROGATE}, "room"),
        ({"op": "leave", "room": SURROGATE}, "room"),
        ({"op": "hello", "token": "x" + SURROGATE}, "token"),
        ({"op": "ping", "extra": {"deep": [SURROGATE]}}, "extra.deep[0]"),
        ({"op": "ping", SURROGATE: 1}, "a key"),
    ],
)
def test_a_lone_surrogate_anywhere_is_bad_field_naming_it(frame, field):
    """JSON can carry a lone surrogate (msgpack cannot: its strings are UTF-8): the frame
    is refused with bad_field naming the field, before anything acts on it."""
    err = refused(as_json(frame))
    assert err.code == p.ErrorCode.BAD_FIELD
    assert err.message.startswith(field) or field in err.message, err.message
    assert "surrogate" in err.message
    # The message itself can be sent on both codecs.
    for codec in (p.JSON_CODEC, p.MSGPACK_CODEC):
        codec.encode(p.error(err.code, err.message, err.ref))


def test_a_surrogate_ref_is_refused_and_not_echoed():
    err = refused(as_json({"op": "ping", "ref": SURROGATE}))
    assert err.code == p.ErrorCode.BAD_FIELD and "ref" in err.message
    assert err.ref is None


def test_invalid_utf8_in_msgpack_is_a_bad_frame():
    data = msgpack.packb({"op": "status", "text": b"\xed\xa0\x80"}, use_bin_type=False)
    assert refused(data).code == p.ErrorCode.BAD_FRAME


@pytest.mark.parametrize("ref", [10**30 - 1, 2**63, -(2**63) - 1, -(10**30)])
def test_a_ref_beyond_64_bits_is_bad_field_and_not_echoed(ref):
    """10**30 - 1 in a JSON frame could not be msgpack-encoded back (OverflowError)."""
    err = refused(as_json({"op": "ping", "ref": ref}))
    assert err.code == p.ErrorCode.BAD_FIELD and "ref" in err.message
    assert err.ref is None
    p.MSGPACK_CODEC.encode(p.error(err.code, err.message, err.ref))


@pytest.mark.parametrize("ref", [2**63 - 1, -(2**63), 0, "r" * 256])
def test_a_ref_at_the_limits_is_accepted_and_encodes(ref):
    msg = p.parse(as_json({"op": "ping", "ref": ref}))
    assert msg.ref == ref
    p.MSGPACK_CODEC.encode(p.ack(msg.ref))


def test_a_since_beyond_64_bits_is_bad_field():
    err = refused(as_json({"op": "sub", "all": True, "since": 10**30}))
    assert err.code == p.ErrorCode.BAD_FIELD and "since" in err.message
