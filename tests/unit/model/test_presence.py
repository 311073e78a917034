"""The pure presence model: the effective-status rule, ``at`` stamping, grace and merge.

The property tests drive :class:`hub.model.presence.UserPresence` with random sequences of
operations and compare it after every step with :class:`Model`, a deliberately plain
reimplementation of DESIGN.md's rules written from the text, not from the code.
"""

from __future__ import annotations

import contextlib
import random
import warnings
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.model.presence import (
    MAX_TEXT,
    MAX_UNTIL_AHEAD_MS,
    Entry,
    UserPresence,
    check_state,
    check_status,
    check_text,
    check_until,
    effective_status,
    in_window,
    merge,
    next_stamp,
)

# Hypothesis renders a failing example through libcst, whose import warns (deprecated
# mypy_extensions API): with warnings as errors that would hide the failure behind an
# INTERNALERROR, so the module is imported here once, quietly.
with warnings.catch_warnings(), contextlib.suppress(ImportError):
    warnings.simplefilter("ignore", DeprecationWarning)
    import hypothesis.extra._patching  # noqa: F401

#: No example database on disk, no per-example deadline (a loaded machine is slow).
PROPERTY = settings(database=None, deadline=None, max_examples=300)

CONNS = ["c1", "c2", "c3"]
STATES = ["online", "away"]
CHOSEN = ["online", "away", "busy", "offline"]
TEXTS = ["", "lunch", "in a meeting"]
NAMES = ["", "Ann", "Bob"]
GRACE_MS = 1_000


# -- the independent model -------------------------------------------------------------


@dataclass
class Model:
    """DESIGN.md's presence rules, as plainly as possible."""

    connections: dict[str, str] = field(default_factory=dict)
    chosen: str = "online"
    text: str = ""
    name: str = ""
    username: str = ""
    grace_until: int | None = None
    frozen: str = "offline"  # the status shown during the grace

    def status(self) -> str:
        if not self.connections:
            # During the offline grace the user keeps its last effective status.
            return self.frozen if self.grace_until is not None else "offline"
        if self.chosen != "online":
            return self.chosen  # away, busy or offline (invisible) override
        return "online" if "online" in self.connections.values() else "away"

    def visible(self) -> tuple[str, str, str, str]:
        return (self.status(), self.text, self.name, self.username)


def apply_model(m: Model, op: tuple[Any, ...], now: int) -> None:
    kind = op[0]
    if kind == "connect":
        _, conn, state, username, name = op
        m.connections[conn] = state
        m.grace_until = None  # a reconnect inside the grace cancels the pending offline
        if username:
            m.username = username
        if name:
            m.name = name
    elif kind == "disconnect":
        _, conn, grace = op
        if conn not in m.connections:
            return  # closing a connection the user does not hold changes nothing
        shown = m.status()
        del m.connections[conn]
        if not m.connections:
            if grace and shown != "offline":
                m.grace_until, m.frozen = now + GRACE_MS, shown
            else:
                m.grace_until = None
    elif kind == "activity":
        _, conn, state = op
        if conn in m.connections:
            m.connections[conn] = state
    elif kind == "status":
        _, chosen, text = op
        if chosen is not None:
            m.chosen = chosen
        if text is not None:
            m.text = text
    elif kind == "profile":
        _, username, name = op
        if username is not None:
            m.username = username
        if name is not None:
            m.name = name
    elif kind == "expire":
        if m.grace_until is not None and m.grace_until <= now and not m.connections:
            m.grace_until = None
    elif kind == "drop_all":
        m.connections.clear()
        m.grace_until = None


def apply_real(u: UserPresence, op: tuple[Any, ...], now: int) -> bool:
    kind = op[0]
    if kind == "connect":
        _, conn, state, username, name = op
        return u.connect(conn, state, now, username=username or None, name=name or None)
    if kind == "disconnect":
        _, conn, grace = op
        return u.disconnect(conn, now, grace_ms=GRACE_MS if grace else 0)
    if kind == "activity":
        _, conn, state = op
        return u.activity(conn, state, now)
    if kind == "status":
        _, chosen, text = op
        return u.set_status(now, status=chosen, text=text)
    if kind == "profile":
        _, username, name = op
        return u.set_profile(now, username=username, name=name)
    if kind == "expire":
        return u.expire_grace(now)
    assert kind == "drop_all"
    return u.drop_all(now)


conns = st.sampled_from(CONNS)
operations = st.one_of(
    st.tuples(
        st.just("connect"), conns, st.sampled_from(STATES),
        st.sampled_from(NAMES), st.sampled_from(NAMES),
    ),
    st.tuples(st.just("disconnect"), conns, st.booleans()),
    st.tuples(st.just("activity"), conns, st.sampled_from(STATES)),
    st.tuples(
        st.just("status"), st.none() | st.sampled_from(CHOSEN), st.none() | st.sampled_from(TEXTS)
    ),
    st.tuples(st.just("profile"), st.none() | st.sampled_from(NAMES),
              st.none() | st.sampled_from(NAMES)),
    st.tuples(st.just("expire")),
    st.tuples(st.just("drop_all")),
)  # fmt: skip
# Time between two operations: often none (two changes in one millisecond), sometimes
# more than the grace.
steps = st.lists(
    st.tuples(operations, st.sampled_from([0, 0, 1, 7, 400, GRACE_MS, 2 * GRACE_MS])),
    max_size=60,
)


def run(ops: list[tuple[tuple[Any, ...], int]], start: int = 1_000_000):
    """Drive the model and the real user side by side, yielding both after each step."""
    user, model, now = UserPresence(id="u1"), Model(), start
    for op, dt in ops:
        now += dt
        before_at, before_visible = user.at, model.visible()
        changed = apply_real(user, op, now)
        apply_model(model, op, now)
        yield user, model, op, now, changed, before_at, before_visible


# -- property tests --------------------------------------------------------------------


@PROPERTY
@given(steps)
def test_effective_status_matches_the_model(ops):
    """After any sequence of operations the status equals the plain model's effective status."""
    for user, model, op, _now, _changed, _at, _before in run(ops):
        assert user.status == model.status(), f"after {op}: {user!r} vs {model!r}"
        assert (user.text, user.name, user.username) == (model.text, model.name, model.username)


@PROPERTY
@given(steps)
def test_at_changes_exactly_when_the_visible_tuple_changes(ops):
    """``at`` strictly increases on every visible change, never moves otherwise, and the
    method's return value says which happened."""
    for user, model, op, now, changed, before_at, before_visible in run(ops):
        visible_changed = model.visible() != before_visible
        assert changed is visible_changed, f"{op} returned {changed}"
        if visible_changed:
            assert user.at > before_at, f"{op} changed {before_visible} but at did not grow"
            assert user.at >= now, "a change is stamped no earlier than the store clock"
        else:
            assert user.at == before_at, f"{op} changed nothing but restamped at"


@PROPERTY
@given(steps)
def test_entry_is_the_visible_tuple_with_its_stamp(ops):
    """``entry()`` carries exactly the visible fields and the current ``at``, and an offline
    one the stamp of its last change to offline as ``lastSeen``."""
    last_seen = 0
    for user, model, _op, _now, _changed, _at, before in run(ops):
        status, text, name, username = model.visible()
        if status == "offline" and before[0] != "offline":
            last_seen = user.at
        expected: dict[str, Any] = {
            "id": "u1", "username": username, "name": name,
            "status": status, "text": text, "at": user.at,
        }  # fmt: skip
        if status == "offline" and last_seen:
            expected["lastSeen"] = last_seen
        assert user.entry() == expected
        assert "lastSeen" not in user.entry(show_last_seen=False)


@PROPERTY
@given(steps, st.randoms(use_true_random=False))
def test_consumer_merging_deltas_in_any_order_ends_at_the_latest_state(ops, rnd):
    """Every published entry, shuffled and duplicated, merges to the user's final entry."""
    published: list[Entry] = []
    user = None
    for user, _m, _op, _now, changed, _at, _v in run(ops):
        if changed:
            published.append(user.entry())
    if not published:
        return
    assert user is not None
    stream = published + rnd.sample(published, len(published) // 2)
    rnd.shuffle(stream)
    assert merge({}, stream) == {"u1": user.entry()}


entries = st.builds(
    lambda uid, at: {"id": uid, "username": uid, "name": uid, "status": "online",
                     "text": f"t{at}", "at": at},
    st.sampled_from(["a", "b", "c", "d"]),
    st.integers(0, 50),
)  # fmt: skip


@PROPERTY
@given(st.lists(entries, max_size=30), st.randoms(use_true_random=False))
def test_merge_is_order_independent(incoming, rnd):
    """merge() keeps, per user, the entry with the largest ``at`` whatever the order."""
    # A user's (id, at) names one state (at strictly increases per user), so a duplicate
    # pair is a duplicate message.
    shuffled = list(incoming)
    rnd.shuffle(shuffled)
    expected: dict[str, Entry] = {}
    for e in incoming:
        if e["id"] not in expected or e["at"] > expected[e["id"]]["at"]:
            expected[e["id"]] = e
    assert merge({}, incoming) == expected
    assert merge({}, shuffled) == expected
    half = len(shuffled) // 2
    assert merge(merge({}, shuffled[half:]), shuffled[:half]) == expected


@PROPERTY
@given(st.lists(entries, max_size=20))
def test_merge_is_idempotent_and_leaves_its_input_alone(incoming):
    """Merging the same entries twice changes nothing, and the given map is not mutated."""
    base: dict[str, Entry] = {
        "z": {"id": "z", "username": "z", "name": "z", "status": "away", "text": "", "at": 3}
    }
    once = merge(base, incoming)
    assert merge(once, incoming) == once
    assert base == {
        "z": {"id": "z", "username": "z", "name": "z", "status": "away", "text": "", "at": 3}
    }
    assert once["z"] == base["z"]


@PROPERTY
@given(st.integers(-(10**6), 10**6), st.integers(0, 10**6))
def test_next_stamp_is_never_at_or_below_the_previous(now, previous):
    """A stamp is ``now`` when the clock is ahead, else one past the previous stamp."""
    stamp = next_stamp(now, previous)
    assert stamp > previous
    assert stamp == max(now, previous + 1)


# -- examples that name the rules ------------------------------------------------------


def test_new_connection_is_online_and_stamped_with_now():
    """A user's first connection makes it online at exactly ``now``."""
    user = UserPresence(id="u1")
    assert user.connect("c1", "online", 5_000, username="ann", name="Ann")
    assert user.entry() == {
        "id": "u1",
        "username": "ann",
        "name": "Ann",
        "status": "online",
        "text": "",
        "at": 5_000,
    }


def test_all_connections_away_makes_the_user_away():
    """Online if any connection is online, away when every connection is away."""
    user = UserPresence(id="u1")
    user.connect("c1", "online", 1)
    user.connect("c2", "away", 2)
    assert user.status == "online"
    assert user.activity("c1", "away", 3)
    assert user.status == "away"
    assert user.activity("c2", "online", 4)
    assert user.status == "online"


@pytest.mark.parametrize("chosen", ["away", "busy", "offline"])
def test_chosen_status_overrides_connections(chosen):
    """A chosen away, busy or offline (invisible) wins over online connections."""
    user = UserPresence(id="u1")
    user.connect("c1", "online", 1)
    user.set_status(2, status=chosen)
    assert user.status == chosen
    assert not user.activity("c1", "away", 3), "an idle change under the override is no change"


def test_chosen_status_without_connection_stays_offline():
    """Choosing busy while not connected changes nothing visible: offline without a connection."""
    user = UserPresence(id="u1")
    assert not user.set_status(1, status="busy")
    assert user.status == "offline" and user.at == 0
    assert user.connect("c1", "online", 2)
    assert user.status == "busy", "the chosen status persists across connections"


def test_grace_keeps_the_last_status_until_it_expires():
    """The last connection closing starts the grace; only its expiry makes the user offline."""
    user = UserPresence(id="u1")
    user.connect("c1", "online", 1_000)
    assert not user.disconnect("c1", 2_000, grace_ms=500)
    assert user.status == "online" and user.grace_until == 2_500
    assert not user.expire_grace(2_499), "the grace is not over one millisecond early"
    assert user.expire_grace(2_500)
    assert user.status == "offline" and user.at == 2_500


def test_reconnect_inside_grace_publishes_nothing():
    """A reconnect inside the grace cancels the pending offline without any visible change."""
    user = UserPresence(id="u1")
    user.connect("c1", "online", 1_000)
    at = user.at
    assert not user.disconnect("c1", 2_000, grace_ms=500)
    assert not user.connect("c2", "online", 2_100)
    assert not user.expire_grace(3_000)
    assert (user.status, user.at) == ("online", at)


def test_disconnect_without_grace_and_drop_all_are_immediate():
    """grace_ms=0 (forced disconnect) and drop_all (kick, reaping) skip the grace."""
    user = UserPresence(id="u1")
    user.connect("c1", "online", 1)
    assert user.disconnect("c1", 2, grace_ms=0)
    assert user.status == "offline"
    user.connect("c1", "online", 3)
    user.connect("c2", "away", 4)
    assert user.disconnect("c1", 5, grace_ms=1_000), "the online connection went: away"
    assert (user.status, user.grace_until) == ("away", None), "no grace while one is left"
    assert user.drop_all(6)
    assert (user.status, user.connections, user.grace_until) == ("offline", {}, None)


def test_status_text_change_is_visible_whatever_the_status():
    """The status text is part of the visible tuple, even for an offline user."""
    user = UserPresence(id="u1")
    assert user.set_status(10, text="on holiday")
    assert (user.status, user.text, user.at) == ("offline", "on holiday", 10)
    assert not user.set_status(11, text="on holiday")


def test_two_changes_in_one_millisecond_get_distinct_stamps():
    """Two changes at the same ``now`` are stamped ``now`` and ``now + 1``."""
    user = UserPresence(id="u1")
    user.connect("c1", "online", 100)
    user.set_status(100, status="busy")
    assert user.at == 101


def test_window_edge_is_inside():
    """A cursor exactly one window old is inside the window; one millisecond older is not."""
    assert in_window(9_000, 10_000, 1_000)
    assert not in_window(8_999, 10_000, 1_000)
    assert in_window(10_500, 10_000, 1_000), "a cursor in the future is inside"
    assert not in_window(None, 10_000, 1_000)


def test_effective_status_function_rule():
    """effective_status() follows the documented rule for each case."""
    assert effective_status("online", [], in_grace=False, last="busy") == "offline"
    assert effective_status("online", [], in_grace=True, last="busy") == "busy"
    assert effective_status("busy", ["online"], in_grace=False, last="offline") == "busy"
    assert effective_status("online", ["away", "online"], in_grace=False, last="") == "online"
    assert effective_status("online", ["away", "away"], in_grace=False, last="") == "away"


def test_validators_name_the_field_and_the_limit():
    """check_status/text/state accept the documented values and name what was wrong."""
    for value in CHOSEN:
        assert check_status(value) == value
    with pytest.raises(ValueError, match=r"presence must be one of online, away, busy, offline"):
        check_status("dnd", field_name="presence")
    assert check_text("x" * MAX_TEXT) == "x" * MAX_TEXT
    with pytest.raises(ValueError, match=r"message must be at most 120 characters, got 121"):
        check_text("x" * 121, field_name="message")
    with pytest.raises(ValueError, match="text must be a string"):
        check_text(5)
    assert check_state("away") == "away"
    with pytest.raises(ValueError, match="state must be online or away"):
        check_state("busy")


def test_random_long_run_against_the_model():
    """A long seeded random walk (10 000 steps) never leaves the model."""
    rnd = random.Random(4)
    user, model, now = UserPresence(id="u1"), Model(), 0
    for _ in range(10_000):
        kind = rnd.choice(["connect", "disconnect", "activity", "status", "expire", "drop_all"])
        op: tuple[Any, ...]
        if kind == "connect":
            op = ("connect", rnd.choice(CONNS), rnd.choice(STATES), "", "")
        elif kind == "disconnect":
            op = ("disconnect", rnd.choice(CONNS), rnd.random() < 0.7)
        elif kind == "activity":
            op = ("activity", rnd.choice(CONNS), rnd.choice(STATES))
        elif kind == "status":
            op = ("status", rnd.choice([None, *CHOSEN]), rnd.choice([None, *TEXTS]))
        else:
            op = (kind,)
        now += rnd.choice([0, 1, 300, 1_500])
        before, at = model.visible(), user.at
        changed = apply_real(user, op, now)
        apply_model(model, op, now)
        assert user.status == model.status()
        assert changed is (model.visible() != before)
        assert (user.at > at) if changed else (user.at == at)


def test_infer_chosen_explains_the_status_from_the_connections() -> None:
    """infer_chosen() gives back a choice that, with these connections, yields the status."""
    from hub.model.presence import infer_chosen

    cases = [
        ("online", ["online"], "online"),
        ("busy", ["online", "away"], "busy"),
        ("offline", ["online"], "offline"),
        ("away", ["away", "away"], "online"),
        ("away", ["online"], "away"),
        ("away", [], "online"),
    ]
    for status, states, chosen in cases:
        assert infer_chosen(status, states) == chosen, (status, states)
        if states:
            assert effective_status(chosen, states, in_grace=False, last="offline") == status


# -- last seen and status expiry ---------------------------------------------------------


def test_going_offline_stamps_last_seen_and_only_offline_entries_carry_it():
    """The change to offline is last seen; an online entry never carries it."""
    user = UserPresence(id="u1")
    user.connect("c1", "online", 1_000)
    assert "lastSeen" not in user.entry()
    assert user.disconnect("c1", 2_000, grace_ms=0)
    assert user.entry()["lastSeen"] == user.at == 2_000
    user.connect("c1", "online", 3_000)
    assert "lastSeen" not in user.entry() and user.last_seen == 2_000


def test_invisible_keeps_the_last_seen_of_the_moment_it_went_invisible():
    """Choosing offline is going offline; staying connected invisibly moves nothing."""
    user = UserPresence(id="u1")
    user.connect("c1", "online", 1_000)
    assert user.set_status(2_000, status="offline")
    assert user.entry()["lastSeen"] == 2_000
    assert not user.activity("c1", "away", 3_000)
    assert not user.connect("c2", "online", 4_000)
    assert not user.disconnect_many(["c1", "c2"], 5_000, grace_ms=0)
    assert user.entry()["lastSeen"] == 2_000


def test_hiding_last_seen_is_a_visible_change_only_when_offline():
    """The user's own choice removes lastSeen from its entries, stamped like any change."""
    user = UserPresence(id="u1")
    user.connect("c1", "online", 1_000)
    assert not user.set_status(1_500, hide_last_seen=True)
    assert user.disconnect("c1", 2_000, grace_ms=0)
    assert "lastSeen" not in user.entry()
    assert user.set_status(3_000, hide_last_seen=False)
    assert user.entry()["lastSeen"] == 2_000 and user.at == 3_000


def test_status_expiry_returns_to_automatic_and_clears_the_text():
    """At ``until`` the chosen status goes back to online and the text clears."""
    user = UserPresence(id="u1")
    user.connect("c1", "online", 1_000)
    assert user.set_status(2_000, status="busy", text="In a meeting", until=5_000)
    assert user.entry()["until"] == 5_000
    assert not user.expire_status(4_999)
    assert user.expire_status(5_000)
    entry = user.entry()
    assert (entry["status"], entry["text"], "until" in entry) == ("online", "", False)
    assert user.chosen == "online" and user.at == 5_000


def test_a_status_without_until_clears_the_expiry_and_privacy_alone_keeps_it():
    """A status or text replaces the expiry; a privacy change alone does not touch it."""
    user = UserPresence(id="u1")
    user.connect("c1", "online", 1_000)
    user.set_status(2_000, status="busy", until=9_000)
    user.set_status(2_500, hide_last_seen=True)
    assert user.until == 9_000
    assert user.set_status(3_000, status="away")
    assert user.until == 0 and "until" not in user.entry()
    assert not user.expire_status(9_000)


def test_an_invisible_user_entry_does_not_show_its_expiry():
    """``until`` would tell others a status was chosen, so offline entries leave it out."""
    user = UserPresence(id="u1")
    user.connect("c1", "online", 1_000)
    user.set_status(2_000, status="offline", until=9_000)
    assert "until" not in user.entry()
    assert user.expire_status(9_000)
    assert user.entry()["status"] == "online"


def test_check_until_names_the_field_and_bounds_it():
    """``until`` must be an integer ms time ahead of now by at most a year."""
    assert check_until(2_000, 1_000) == 2_000
    for bad in (True, "soon", 1.5, 0, -3):
        with pytest.raises(ValueError, match="until must be a time in ms"):
            check_until(bad)
    with pytest.raises(ValueError, match="until must be in the future"):
        check_until(1_000, 1_000)
    with pytest.raises(ValueError, match="expiresAt must be at most a year ahead"):
        check_until(1_000 + MAX_UNTIL_AHEAD_MS + 1, 1_000, field_name="expiresAt")
