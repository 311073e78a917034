"""The session rules without sockets: frames and ``now`` in, actions out."""

from __future__ import annotations

import json
from typing import Any

import msgpack
import pytest

from hub.model.auth import issue_token
from hub.session.core import Admit, Close, Limits, Run, Send, Session, State
from hub.session.rules_hub import HubRules
from hub.wire import hub as p

SECRET = "session-test-secret-0123456789abcdef-xyz"
LIMITS = Limits(secret=SECRET, max_frame_bytes=1024, rate_per_s=10, burst=20, hello_timeout_s=5)
USER: dict[str, Any] = {"id": "ann", "username": "ann", "name": "Ann", "status": "online",
                        "text": "", "at": 1}  # fmt: skip


def hello(user: str = "ann", **extra: Any) -> str:
    return json.dumps({"op": "hello", "token": issue_token(SECRET, user, ttl_s=60), **extra})


def sent(actions: list[Any]) -> list[dict[str, Any]]:
    """The frames of the Send actions, decoded."""
    out = []
    for a in actions:
        assert isinstance(a, Send), a
        data = a.data
        out.append(msgpack.unpackb(data) if isinstance(data, bytes) else json.loads(data))
    return out


def new(codec: str = p.JSON, now: float = 0.0) -> Session:
    """A fresh ``/ws`` session (the hub wire's rules), waiting for hello."""
    return Session(HubRules(p.codec_for([codec]), LIMITS), LIMITS, now)


def scopes(s: Session) -> object:
    rules = s.rules
    assert isinstance(rules, HubRules)
    return rules.scopes


def opened(codec: str = p.JSON, now: float = 0.0) -> Session:
    s = new(codec, now)
    [admit] = s.receive(hello(), now)
    assert isinstance(admit, Admit) and admit.claims.user == "ann"
    assert s.state is State.ADMITTING
    [ready] = sent(s.admitted(("n.1", USER, 42)))
    assert ready["op"] == "ready" and ready["conn"] == "n.1" and ready["cursor"] == 42
    assert s.state is State.OPEN
    return s


# -- hello first ----------------------------------------------------------------------------


def test_the_first_frame_must_be_hello():
    """Any other first frame closes 4001, naming what was expected."""
    s = new()
    [close] = s.receive('{"op":"sub","all":true}', 0.1)
    assert close == Close(4001, "the first frame must be hello with a token")
    assert s.state is State.CLOSED
    assert s.receive(hello(), 0.2) == [], "a closed session ignores every later frame"


@pytest.mark.parametrize(
    ("frame", "reason"),
    [('{"op":"hello","token":"nope"}', "invalid token"), ("not json", "not valid JSON")],
)
def test_a_bad_hello_closes_4001_with_the_reason(frame: str, reason: str):
    """A wrong token or an unreadable frame closes 4001; the reason says why."""
    s = new()
    [close] = s.receive(frame, 0.0)
    assert isinstance(close, Close) and close.code == 4001 and reason in close.reason


def test_no_hello_within_the_timeout_closes_4001():
    """``expired`` before the deadline does nothing; after it, it closes 4001."""
    s = new(now=100.0)
    assert s.deadline == 105.0
    assert s.expired(104.9) == []
    assert s.expired(105.0) == [Close(4001, "no hello within the time limit")]
    admitted = new(now=100.0)
    admitted.receive(hello(), 101.0)
    assert admitted.expired(200.0) == [], "past hello, the timer means nothing"


def test_frames_behind_hello_wait_for_the_admission_and_a_refusal_closes():
    """A sub sent right behind hello is a Run (the transport runs it after the Admit);
    refused() closes and nothing is admitted after that."""
    s = new()
    s.receive(hello(), 0.0)
    [run] = s.receive('{"op":"sub","all":true,"ref":1}', 0.0)
    assert isinstance(run, Run) and isinstance(run.work, p.Sub)
    assert s.refused(4003, "account deactivated") == [Close(4003, "account deactivated")]
    assert s.admitted(("n.1", USER, 1)) == [], "too late: the session is closed"
    assert s.receive('{"op":"ping"}', 0.1) == []


# -- answers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", [p.JSON, p.MSGPACK])
def test_ping_is_answered_with_pong_and_its_ref(codec: str):
    """ping -> pong, with the ref when there is one, in the session's codec."""
    s = opened(codec)
    frame = {"op": "ping", "ref": "r1"}
    data: str | bytes = json.dumps(frame) if codec == p.JSON else msgpack.packb(frame)
    [pong] = s.receive(data, 1.0)
    assert isinstance(pong, Send) and isinstance(pong.data, bytes) is (codec == p.MSGPACK)
    assert sent([pong]) == [{"op": "pong", "ref": "r1"}]


def test_a_store_frame_runs_then_is_acked_with_its_ref():
    """status -> Run; done() -> ack with the ref; without a ref, no ack."""
    s = opened()
    [run] = s.receive('{"op":"status","status":"away","ref":7}', 1.0)
    assert isinstance(run, Run) and isinstance(run.work, p.SetStatus)
    assert sent(s.done(run.work)) == [{"op": "ack", "ref": 7}]
    [run2] = s.receive('{"op":"status","status":"busy"}', 1.0)
    assert isinstance(run2, Run)
    assert s.done(run2.work) == []


def test_a_bad_frame_is_answered_with_an_error_naming_it_and_its_ref():
    """An unknown op or a bad field is an error frame with the ref; the session goes on."""
    s = opened()
    [err] = sent(s.receive('{"op":"dance","ref":"x"}', 1.0))
    assert err == {"op": "error", "code": "unknown_op", "message": "unknown op 'dance'",
                   "ref": "x"}  # fmt: skip
    [err2] = sent(s.receive('{"op":"status","status":"asleep","ref":2}', 1.0))
    assert err2["code"] == "bad_field" and err2["ref"] == 2 and "asleep" in err2["message"]
    [err3] = sent(s.receive(hello(ref=3), 1.0))
    assert err3["code"] == "bad_frame" and err3["ref"] == 3
    assert s.state is State.OPEN


def test_a_failed_run_is_an_error_with_the_ref():
    """failed() answers with the error code and message, and the frame's ref."""
    s = opened()
    [run] = s.receive('{"op":"status","text":"hi","ref":"q"}', 1.0)
    assert isinstance(run, Run)
    [err] = sent(s.failed(run.work, p.ErrorCode.UNAVAILABLE, "presence store unreachable"))
    assert err == {"op": "error", "code": "unavailable",
                   "message": "presence store unreachable", "ref": "q"}  # fmt: skip


# -- scopes -----------------------------------------------------------------------------------


def test_unsub_of_a_scope_not_subscribed_is_an_error_and_a_sub_makes_it_known():
    """unsub before sub -> not_subscribed; after sub it runs; a failed sub is no scope."""
    s = opened()
    assert scopes(s) is None, "an idle session holds no scope dict"
    [err] = sent(s.receive('{"op":"unsub","all":true,"ref":1}', 1.0))
    assert err["code"] == "not_subscribed" and err["ref"] == 1
    [sub] = s.receive('{"op":"sub","users":["b","a"]}', 1.0)
    assert isinstance(sub, Run) and scopes(s) is not None
    [unsub] = s.receive('{"op":"unsub","users":["a","b"]}', 1.0)
    assert isinstance(unsub, Run), "the same set of users is the same scope"
    [sub2] = s.receive('{"op":"sub","all":true}', 1.0)
    assert isinstance(sub2, Run)
    s.failed(sub2.work, p.ErrorCode.UNAVAILABLE, "down")
    [err2] = sent(s.receive('{"op":"unsub","all":true}', 1.0))
    assert err2["code"] == "not_subscribed"


# -- limits -----------------------------------------------------------------------------------


def test_a_frame_over_the_size_limit_closes_1009():
    """A frame larger than max_frame_bytes closes 1009 naming the limit."""
    s = opened()
    [close] = s.receive('{"op":"status","text":"' + "x" * 2000 + '"}', 1.0)
    assert close == Close(1009, "frame larger than 1024 bytes")


def test_the_rate_limit_allows_bursts_of_twice_the_rate_then_closes_4008():
    """20 frames at once pass (rate 10/s, burst 20); the 21st closes 4008; time refills."""
    s = opened(now=0.0)  # hello used one token
    for _ in range(19):
        assert s.receive('{"op":"ping"}', 0.0) != [Close(4008, "too many frames")]
    assert s.receive('{"op":"ping"}', 0.0) == [Close(4008, "too many frames")]
    slow = opened(now=0.0)
    for i in range(200):  # one frame every 0.1 s is exactly the rate: never closed
        [pong] = slow.receive('{"op":"ping"}', i * 0.1)
        assert isinstance(pong, Send)
