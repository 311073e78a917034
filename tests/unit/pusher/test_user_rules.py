"""The pure parts of user authentication, cache channels and subscription counts: the
sign-in signature (checked against PyPI's ``pusher`` SDK), ``user_data``, the sign-in
rules of a connection, the new frames and the app option."""

from __future__ import annotations

import json

import pusher
import pytest

from hub.model.pusher_auth import SignatureError, check_user_auth, user_auth
from hub.ops import apps as apps_mod
from hub.ops.config import ConfigError
from hub.session import rules_pusher as s
from hub.session.core import Close, Run, Send
from hub.wire import pusher as p

KEY, SECRET = "key-1", "secret-0123456789"
APP = apps_mod.App("1", KEY, SECRET)
SDK = pusher.Pusher("1", KEY, SECRET, ssl=False, host="127.0.0.1", port=80)


def _rules() -> s.PusherRules:
    return s.PusherRules(APP, "123.456", 120.0)


def _signin(rules: s.PusherRules, user_data: str, secret: str = SECRET) -> list[object]:
    auth = user_auth(KEY, secret, rules.socket_id, user_data)
    frame = {"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}}
    return list(rules.frame(json.dumps(frame), 0.0))


def _error(actions: list[object]) -> str:
    assert isinstance(actions[0], Send), actions
    frame = json.loads(actions[0].data)
    assert frame["event"] == "pusher:error", frame
    message: str = frame["data"]["message"]
    return message


def test_user_auth_matches_the_server_sdk():
    """The hub's sign-in signature is the one PyPI's authenticate_user makes."""
    signed = SDK.authenticate_user("123.456", {"id": "7", "watchlist": ["8"]})
    assert user_auth(KEY, SECRET, "123.456", signed["user_data"]) == signed["auth"]
    check_user_auth(KEY, SECRET, "123.456", signed["auth"], signed["user_data"])
    for auth, user_data, why in (
        (signed["auth"], signed["user_data"].replace("7", "9"), "invalid signature"),
        (signed["auth"].replace(KEY, "other"), signed["user_data"], "another app key"),
        ("no-colon", signed["user_data"], "key:signature"),
        (f"{KEY}:é\udc80", signed["user_data"], "invalid signature"),
    ):
        with pytest.raises(SignatureError, match=why):
            check_user_auth(KEY, SECRET, "123.456", auth, user_data)


def test_user_data_is_checked_and_each_mistake_named():
    """An id (a non-empty string), a small user_info and at most 100 watched ids."""
    raw = json.dumps({"id": "a", "user_info": {"n": 1}, "watchlist": ["b", "b"]})
    user = p.parse_user_data(raw)
    assert (user.id, user.user_info, user.watchlist) == ("a", {"n": 1}, ("b",))
    assert p.parse_user_data('{"id":"a"}').watchlist == ()
    cases = {
        None: "must be a JSON string",
        "{": "not JSON",
        "[1]": "JSON object",
        "{}": "user_data has no id",
        '{"id": ""}': "user_data.id must be a string of 1 to 128",
        '{"id": 7}': "user_data.id must be a string",
        json.dumps({"id": "x" * 129}): "1 to 128",
        json.dumps({"id": "a", "user_info": "x" * 1100}): "user_info must be at most 1024",
        json.dumps({"id": "a", "watchlist": "b"}): "watchlist must be a list",
        json.dumps({"id": "a", "watchlist": [str(i) for i in range(101)]}): (
            "watchlist holds 101 ids; at most 100"
        ),
        json.dumps({"id": "a", "watchlist": ["b", 3]}): r"watchlist\[1\] must be a user id",
    }
    for raw, why in cases.items():
        with pytest.raises(p.FrameError, match=why):
            p.parse_user_data(raw)
    assert len(p.parse_user_data(json.dumps({"id": "a", "watchlist": list("x" * 100)})).watchlist)


def test_a_good_sign_in_becomes_work_and_a_second_is_refused():
    """A verified sign-in is one SignIn for the node; another on the same connection is a
    clear error, even before the first one's answer."""
    rules = _rules()
    raw = json.dumps({"id": "ann", "watchlist": ["bob"]})
    (action,) = _signin(rules, raw)
    assert isinstance(action, Run) and isinstance(action.work, s.SignIn)
    assert (action.work.user.id, action.work.user.watchlist, action.work.user.raw) == (
        "ann", ("bob",), raw,
    )  # fmt: skip
    assert "already signed in as 'ann'" in _error(_signin(rules, json.dumps({"id": "cy"})))
    # A sign-in that failed in the node leaves the connection free to sign in again.
    assert "sign-in failed: store down" in _error(rules.failed(action.work, "unavailable",
                                                               "store down"))  # fmt: skip
    assert isinstance(_signin(rules, json.dumps({"id": "cy"}))[0], Run)


def test_a_forged_sign_in_is_an_error_then_the_close_4009():
    """A signature made with another secret: pusher:error 4009, then close 4009."""
    rules = _rules()
    actions = _signin(rules, json.dumps({"id": "ann"}), secret="wrong-secret-000")
    assert "Invalid signature" in _error(actions)
    assert json.loads(actions[0].data)["data"]["code"] == 4009  # type: ignore[attr-defined]
    assert isinstance(actions[1], Close) and actions[1].code == p.CloseCode.UNAUTHORIZED
    assert rules.user is None


def test_bad_user_data_is_an_error_and_changes_nothing():
    """A well-signed user_data without id, or with 101 watched ids, is refused; the
    connection may still sign in."""
    rules = _rules()
    assert "user_data has no id" in _error(_signin(rules, json.dumps({"user_info": {}})))
    wide = json.dumps({"id": "a", "watchlist": [str(i) for i in range(101)]})
    assert "at most 100" in _error(_signin(rules, wide))
    missing = rules.frame(json.dumps({"event": "pusher:signin", "data": {"auth": "k:x"}}), 0)
    assert "user_data, a JSON string" in _error(list(missing))
    assert rules.user is None
    assert isinstance(_signin(rules, json.dumps({"id": "a"}))[0], Run)


def test_only_the_signed_in_user_may_subscribe_to_its_server_to_user_channel():
    """pusher-js subscribes to #server-to-user-<id> after signin_success: answered for the
    connection's own user, refused for anyone else's and before a sign-in."""

    def subscribe(rules: s.PusherRules, channel: str) -> dict[str, object]:
        frame = {"event": "pusher:subscribe", "data": {"channel": channel, "auth": ""}}
        (action,) = rules.frame(json.dumps(frame), 0.0)
        assert isinstance(action, Send)
        answer: dict[str, object] = json.loads(action.data)
        return answer

    rules = _rules()
    assert subscribe(rules, "#server-to-user-ann")["event"] == "pusher:subscription_error"
    _signin(rules, json.dumps({"id": "ann"}))
    ok = subscribe(rules, "#server-to-user-ann")
    assert (ok["event"], ok["channel"]) == ("pusher_internal:subscription_succeeded",
                                            "#server-to-user-ann")  # fmt: skip
    refused = subscribe(rules, "#server-to-user-bob")
    assert refused["event"] == "pusher:subscription_error"
    assert "only for the connection signed in as that user" in str(refused["data"])
    assert "#server-to-user-ann" not in rules.channels


def test_trigger_channels_cache_names_and_new_frames():
    """The HTTP API may publish to a user's channel; cache channels of every kind are
    known; the frames are Pusher's shapes, data as JSON strings."""
    assert p.check_trigger_channel("#server-to-user-ann") == "#server-to-user-ann"
    for bad in ("#server-to-user-", "#server-to-user-" + "x" * 129, "#other"):
        with pytest.raises(p.FrameError):
            p.check_trigger_channel(bad)
    with pytest.raises(p.FrameError, match="at most 164"):
        p.check_channel("private-cache-" + "x" * 151)
    for name in ("cache-a", "private-cache-a", "presence-cache-a", "private-encrypted-cache-a"):
        assert p.is_cache(name)
    for name in ("a-cache-", "private-a", "presence-cachex", "private-encrypted-a"):
        assert not p.is_cache(name)
    assert json.loads(p.signin_success('{"id":"a"}')) == {
        "event": "pusher:signin_success", "data": json.dumps({"user_data": '{"id":"a"}'},
                                                             separators=(",", ":")),
    }  # fmt: skip
    events = json.loads(json.loads(p.watchlist_events(["a"], ["b", "c"]))["data"])
    assert events == {"events": [{"name": "online", "user_ids": ["a"]},
                                 {"name": "offline", "user_ids": ["b", "c"]}]}  # fmt: skip
    assert json.loads(p.cache_miss("cache-a")) == {"event": "pusher:cache_miss",
                                                   "channel": "cache-a"}  # fmt: skip
    count = json.loads(p.subscription_count("news", 3))
    assert count["event"] == "pusher_internal:subscription_count"
    assert json.loads(count["data"]) == {"subscription_count": 3}


def test_the_subscription_count_option_is_per_app_and_never_on_presence(tmp_path):
    """subscription_count in the apps file: a boolean, off by default, never counting
    presence channels; the new webhook kinds are known."""
    path = tmp_path / "apps.json"
    path.write_text(json.dumps([
        {"id": "1", "key": "k1", "secret": "secret-0000", "subscription_count": True,
         "webhooks": [{"url": "http://h/w", "event_types": ["cache_miss", "subscription_count"]}]},
        {"id": "2", "key": "k2", "secret": "secret-0000"},
    ]))  # fmt: skip
    counted, plain = apps_mod.parse_file(str(path))
    assert counted.counts("news") and counted.counts("private-a")
    assert not counted.counts("presence-a") and not plain.counts("news")
    assert counted.webhooks[0].event_types == {"cache_miss", "subscription_count"}
    path.write_text(json.dumps([{"id": "1", "key": "k", "secret": "secret-0000",
                                 "subscription_count": "yes"}]))  # fmt: skip
    with pytest.raises(ConfigError, match="subscription_count must be true or false"):
        apps_mod.parse_file(str(path))
