"""A connection's frames about a channel whose subscription is still in flight: a client
hears ``subscription_succeeded`` before the node's work returns, so its client events and
its unsubscribe then are carried out after the subscription, in order, not refused."""

from __future__ import annotations

import json

from hub.model.pusher_auth import channel_auth
from hub.ops import apps as apps_mod
from hub.session import rules_pusher as s
from hub.session.core import Run, Send

KEY, SECRET = "key-1", "secret-0123456789"
APP = apps_mod.App("1", KEY, SECRET)


def _frame(rules: s.PusherRules, event: str, data: object, channel: str | None = None) -> list:
    frame: dict[str, object] = {"event": event, "data": data}
    if channel is not None:
        frame["channel"] = channel
    return list(rules.frame(json.dumps(frame), 0.0))


def _subscribe_presence(rules: s.PusherRules, channel: str, user: str) -> s.Subscribe:
    data = json.dumps({"user_id": user})
    auth = channel_auth(KEY, SECRET, rules.socket_id, channel, data)
    (action,) = _frame(rules, "pusher:subscribe",
                       {"channel": channel, "auth": auth, "channel_data": data})  # fmt: skip
    assert isinstance(action, Run) and isinstance(action.work, s.Subscribe)
    return action.work


def test_a_client_event_on_a_pending_channel_is_work_with_its_member():
    """The event becomes work (the node checks the subscription took effect), with the
    presence member's user id."""
    rules = s.PusherRules(APP, "1.2", 120.0)
    _subscribe_presence(rules, "presence-room", "ann")
    (action,) = _frame(rules, "client-typing", {"on": True}, "presence-room")
    assert isinstance(action, Run) and action.work == s.ClientEvent(
        "presence-room", "client-typing", {"on": True}, "ann"
    )
    (refused,) = _frame(rules, "client-typing", {}, "presence-other")
    assert isinstance(refused, Send) and s.NOT_SUBSCRIBED in str(refused.data)


def test_leaving_a_pending_channel_is_carried_out_after_it_and_may_be_joined_again():
    """The unsubscribe runs after the subscription and ends it; a subscribe after it is
    new work, and the channel is the connection's once that is done."""
    rules = s.PusherRules(APP, "1.2", 120.0)
    first = _subscribe_presence(rules, "presence-room", "ann")
    (leave,) = _frame(rules, "pusher:unsubscribe", {"channel": "presence-room"})
    assert isinstance(leave, Run) and leave.work == s.Unsubscribe("presence-room")
    again = _subscribe_presence(rules, "presence-room", "ann")
    rules.done(first)
    rules.done(leave.work)
    assert "presence-room" not in rules.channels
    rules.done(again)
    assert "presence-room" in rules.channels and not rules.pending
