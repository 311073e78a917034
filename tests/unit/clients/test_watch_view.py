"""``presence-hub watch``'s view, with no socket: formatting, lines cut at words to the
terminal width, names, and the stale marker."""

from __future__ import annotations

import io
import re

from hub.clients.watch import View, age, change_line, counts, fit, table
from tests.support.hubproc import hub_fixture

hub = hub_fixture({"HUB_OFFLINE_GRACE_S": "0.2"})


def test_formatting() -> None:
    """Ages are short, changes read as before -> after, the table sorts by status."""
    assert [age(ms) for ms in (0, 999, 5_000, 125_000, 7_200_000, 200_000_000)] == [
        "now", "now", "5s", "2m", "2h", "2d"]  # fmt: skip
    alice = {"id": "alice", "name": "Alice", "status": "online", "text": "", "at": 0}
    busy = {**alice, "status": "busy", "text": "in a meeting", "at": 1000}
    line = change_line(alice, busy, colour=False)  # type: ignore[arg-type]
    assert line.endswith('alice (Alice)  online -> busy  "in a meeting"')
    assert "\x1b[31mbusy" in change_line(alice, busy, colour=True)  # type: ignore[arg-type]
    bob = {**alice, "id": "bob", "name": "Bob"}
    rows = [busy, bob, {**alice, "id": "zed", "status": "offline"}]
    lines = table(rows, 61_000, colour=False)  # type: ignore[arg-type]
    assert lines[0].split() == ["STATUS", "USER", "NAME", "SINCE", "TEXT"]
    assert [line.split()[:2] for line in lines[1:]] == [["online", "bob"], ["busy", "alice"]]
    assert lines[2].rstrip().endswith("1m  in a meeting")
    assert counts(rows) == "1 online, 1 busy"  # type: ignore[arg-type]


ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_lines_are_cut_at_words_to_the_terminal_width() -> None:
    """A line longer than the terminal is cut at a word with an ellipsis, colours kept and
    closed; the terminal never has to wrap (which split words mid-way)."""
    line = (
        "21:04:05  alice (Alice)  \x1b[32monline\x1b[0m -> \x1b[31mbusy\x1b[0m  "
        '"in a meeting about the roadmap"'
    )
    for width in (30, 45, 60):
        cut = fit(line, width)
        plain = ESCAPES.sub("", cut)
        assert len(plain) <= width, (width, plain)
        assert plain.endswith("\u2026")
        kept = plain[:-1].split()
        full = ESCAPES.sub("", line).split()
        assert kept == full[: len(kept)], f"a word was cut: {plain!r}"
        assert cut.endswith("\x1b[0m")
    assert fit("short", 40) == "short"
    rows = [{"id": "alice", "name": "Alice", "status": "busy", "at": 0,
             "text": "reviewing the quarterly roadmap with the platform team"}]  # fmt: skip
    row = table(rows, 1000, width=60, colour=False)[1]  # type: ignore[arg-type]
    assert len(row) <= 60 and row.endswith("\u2026")
    assert row.split("  ")[-1][:-1].strip() in rows[0]["text"]
    assert "reviewing the quarterly" in row and not row[:-1].endswith(" ")


def test_a_token_without_a_name_is_not_shown_twice() -> None:
    """The hub fills a missing name with the id: "bob", not "bob bob" or "bob (bob)"."""
    bob = {"id": "bob", "username": "bob", "name": "bob", "status": "online", "text": "", "at": 0}
    row = table([bob], 1000, colour=False)[1]  # type: ignore[list-item]
    assert row.split() == ["online", "bob", "1s"]
    line = change_line(None, bob, colour=False)  # type: ignore[arg-type]
    assert "bob (bob)" not in line and line.split()[1:] == ["bob", "->", "online"]
    named = {**bob, "name": "Bob Stone"}
    assert "bob (Bob Stone)" in change_line(None, named, colour=False)  # type: ignore[arg-type]


def test_the_screen_marks_a_stale_table() -> None:
    """While disconnected the screen says STALE since when; live again, the mark goes."""
    out = io.StringIO()
    view = View(out, {"all": True}, "http://hub", tty=True, colour=False, feed=5)
    view.snapshot(
        {"alice": {"id": "alice", "name": "Alice", "status": "online", "text": "", "at": 0}}
    )  # type: ignore[dict-item]
    view.tick(True)
    assert "STALE" not in out.getvalue()
    view.tick(False)
    screen = out.getvalue().rsplit("\x1b[2J", 1)[1]
    assert "reconnecting" in screen and "STALE since" in screen and "alice" in screen
    view.tick(True)
    assert "STALE" not in out.getvalue().rsplit("\x1b[2J", 1)[1]
