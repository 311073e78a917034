"""The pure Pusher modules: frames, signatures (checked against PyPI's ``pusher`` SDK),
app configuration and the per-connection rules."""

from __future__ import annotations

import json
import time

import pusher
import pytest

from hub.model.pusher_auth import SignatureError, channel_auth, check_request, sign_request
from hub.ops import apps as apps_mod
from hub.ops.config import ConfigError
from hub.session import rules_pusher as s
from hub.session.core import Close, Limits, Run, Send, Session
from hub.wire import pusher as p

KEY, SECRET = "key-1", "secret-0123456789"
APP = apps_mod.App("1", KEY, SECRET)
SDK = pusher.Pusher("1", KEY, SECRET, ssl=False, host="127.0.0.1", port=80)


def test_channel_auth_matches_the_server_sdk():
    assert (
        channel_auth(KEY, SECRET, "123.456", "private-a")
        == SDK.authenticate("private-a", "123.456")["auth"]
    )
    data = {"user_id": "7", "user_info": {"name": "Seven"}}
    signed = SDK.authenticate("presence-a", "123.456", data)
    assert (
        channel_auth(KEY, SECRET, "123.456", "presence-a", signed["channel_data"]) == signed["auth"]
    )


def _signed(
    params: dict[str, str], body: bytes = b"", path: str = "/apps/1/events"
) -> dict[str, str]:
    out = {
        "auth_key": KEY,
        "auth_timestamp": str(int(time.time())),
        "auth_version": "1.0",
        **params,
    }
    if body:
        from hub.model.pusher_auth import body_md5

        out["body_md5"] = body_md5(body)
    out["auth_signature"] = sign_request(SECRET, "POST", path, out)
    return out


def test_request_signing_rejects_each_kind_of_mistake():
    body = b'{"name":"e","channels":["c"],"data":"x"}'
    good = _signed({}, body)
    check_request(KEY, SECRET, "POST", "/apps/1/events", good, body, time.time())
    cases = {
        "auth_key": {**good, "auth_key": "other"},
        "auth_timestamp": {**good, "auth_timestamp": "nope"},
        "body_md5": {**good, "body_md5": "0" * 32},
        "invalid signature": {**good, "auth_signature": "0" * 64},
    }
    for expected, params in cases.items():
        with pytest.raises(SignatureError, match=expected):
            check_request(KEY, SECRET, "POST", "/apps/1/events", params, body, time.time())
    with pytest.raises(SignatureError, match="600 s"):
        check_request(KEY, SECRET, "POST", "/apps/1/events", good, body, time.time() + 601)
    with pytest.raises(SignatureError, match="invalid signature"):
        check_request(KEY, SECRET, "POST", "/apps/2/events", good, body, time.time())


def test_channel_names_and_channel_data_follow_pushers_rules():
    assert p.check_channel("private-a_b-c=d@e,f.g;h") == "private-a_b-c=d@e,f.g;h"
    for bad in ("", "a b", "a/b", "é", "x" * 165, None, 5):
        with pytest.raises(p.FrameError):
            p.check_channel(bad)
    assert p.check_channel("x" * 164)
    member = p.parse_channel_data(json.dumps({"user_id": 42, "user_info": {"n": 1}}))
    assert member == p.ChannelMember("42", {"n": 1})
    for bad in (
        '{"user_info": {}}',
        '{"user_id": ""}',
        '{"user_id": true}',
        "[]",
        "nope",
        json.dumps({"user_id": "u", "user_info": {"x": "y" * 1100}}),
        json.dumps({"user_id": "u" * 129}),
    ):
        with pytest.raises(p.FrameError):
            p.parse_channel_data(bad)


def test_apps_from_env_and_file(tmp_path):
    apps = apps_mod.parse_env("1:key-a:secret-aaaa, 2:key-b:secret-bbbb")
    assert [a.id for a in apps] == ["1", "2"]
    assert apps[0].member_limit >= 10_000 and apps[0].client_events
    for bad in ("1:key", "1::secret-aaaa", "1:key a:secret-aaaa", "1:key:short"):
        with pytest.raises(ConfigError, match="HUB_PUSHER_APPS"):
            apps_mod.parse_env(bad)
    path = tmp_path / "apps.json"
    path.write_text(
        json.dumps(
            [
                {
                    "id": "3",
                    "key": "k3",
                    "secret": "secret-cccc",
                    "client_events": False,
                    "member_limit": 50,
                    "webhooks": [{"url": "http://h/w", "event_types": ["member_added"]}],
                }
            ]
        )
    )
    (app,) = apps_mod.parse_file(str(path))
    assert (app.client_events, app.member_limit) == (False, 50)
    assert app.webhooks[0].event_types == frozenset({"member_added"})
    for bad, message in (
        ([{"id": "3", "key": "k3", "secret": "secret-cccc", "extra": 1}], "unknown fields"),
        ([{"id": "3", "key": "k3", "secret": "secret-cccc", "member_limit": 0}], "member_limit"),
        (
            [{"id": "3", "key": "k3", "secret": "secret-cccc", "webhooks": [{"url": "ftp://x"}]}],
            "http",
        ),
        (
            [
                {
                    "id": "3",
                    "key": "k3",
                    "secret": "secret-cccc",
                    "webhooks": [{"url": "http://x", "event_types": ["nope"]}],
                }
            ],
            "unknown event",
        ),
        ({"id": "3"}, "list"),
    ):
        path.write_text(json.dumps(bad))
        with pytest.raises(ConfigError, match=message):
            apps_mod.parse_file(str(path))
    with pytest.raises(ConfigError, match="distinct"):
        apps_mod.Apps(apps_mod.parse_env("1:k:secret-aaaa,1:k2:secret-bbbb"))


def _session(app: apps_mod.App = APP) -> Session:
    """An admitted Pusher session (socket id 1.2, activity timeout 120 s), opened at 0."""
    rules = s.PusherRules(app, "1.2", 120)
    session = Session(rules, Limits(secret="", rate_per_s=100, burst=1000), now=0.0)
    session.opened()
    session.admitted("1.2")
    return session


def _frame(event: str, data: object = None, channel: str | None = None) -> str:
    return json.dumps({"event": event, "data": data, "channel": channel})


def _text(action: object) -> str:
    assert isinstance(action, Send) and isinstance(action.data, str), action
    return action.data


def test_subscriptions_check_signatures_and_channel_data():
    session = _session()
    (sub,) = session.receive(_frame("pusher:subscribe", {"channel": "news"}), 1.0)
    assert sub == Run(s.Subscribe("news"))
    (err,) = session.receive(
        _frame("pusher:subscribe", {"channel": "private-x", "auth": f"{KEY}:00"}), 1.0
    )
    assert isinstance(err, Send)
    sent = json.loads(_text(err))
    assert sent["event"] == "pusher:subscription_error" and sent["data"]["status"] == 401
    data = json.dumps({"user_id": "u1"})
    auth = channel_auth(KEY, SECRET, "1.2", "presence-r", data)
    (ok,) = session.receive(
        _frame("pusher:subscribe", {"channel": "presence-r", "auth": auth, "channel_data": data}),
        1.0,
    )
    assert ok == Run(s.Subscribe("presence-r", p.ChannelMember("u1", None)))
    # Tampered channel_data no longer matches the signature.
    (bad,) = session.receive(
        _frame(
            "pusher:subscribe",
            {"channel": "presence-q", "auth": auth, "channel_data": json.dumps({"user_id": "u2"})},
        ),
        1.0,
    )
    assert json.loads(_text(bad))["data"]["status"] == 401
    (err,) = session.receive("not json", 1.0)
    assert json.loads(_text(err))["event"] == "pusher:error"


def test_client_events_need_a_private_subscription_permission_and_rate():
    session = _session()
    session.done(s.Subscribe("private-a", None))
    session.done(s.Subscribe("news", None))
    (e,) = session.receive(_frame("client-x", {"a": 1}, "private-a"), 1.0)
    assert e == Run(s.ClientEvent("private-a", "client-x", {"a": 1}, None))
    for channel in ("news", "private-b"):
        (err,) = session.receive(_frame("client-x", {}, channel), 1.0)
        assert json.loads(_text(err))["event"] == "pusher:error"
    actions = [session.receive(_frame("client-x", {}, "private-a"), 2.0)[0] for _ in range(12)]
    rejected = [a for a in actions if isinstance(a, Send)]
    assert len(rejected) == 2  # 10 a second: the bucket is full again a second later
    assert json.loads(_text(rejected[0]))["data"]["code"] == 4301
    off = _session(apps_mod.App("1", KEY, SECRET, client_events=False))
    off.done(s.Subscribe("private-a", None))
    (err,) = off.receive(_frame("client-x", {}, "private-a"), 1.0)
    assert "not enabled" in _text(err)


def test_ping_pong_both_ways():
    session = _session()
    (pong,) = session.receive(_frame("pusher:ping", {}), 1.0)
    assert json.loads(_text(pong))["event"] == "pusher:pong"
    assert session.tick(100.0) == []
    (ping,) = session.tick(121.0)
    assert json.loads(_text(ping))["event"] == "pusher:ping"
    assert session.tick(140.0) == []
    (close,) = session.tick(151.0)
    assert close == Close(p.CloseCode.PONG_NOT_RECEIVED, "pong not received")
    fresh = _session()
    fresh.tick(121.0)
    fresh.receive(_frame("pusher:pong", {}), 125.0)
    assert fresh.tick(151.0) == []


def test_presence_frame_assembled_from_stored_json_equals_the_encoded_one():
    members = {"1": {"name": 'Ann \u00e9"x'}, 'b"2': None, "\u00fc3": [1, {"k": "v"}]}
    stored = {uid: p.dumps(info) for uid, info in members.items()}
    fast = json.loads(p.presence_succeeded("presence-r", stored))
    slow = json.loads(p.subscription_succeeded("presence-r", p.presence_data(members)))
    assert fast == slow
    assert json.loads(fast["data"]) == {
        "presence": {"ids": ["1", 'b"2', "\u00fc3"], "hash": members, "count": 3}
    }
