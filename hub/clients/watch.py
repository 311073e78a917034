"""``presence-hub watch``: a live terminal view of who is online, from the websocket.

On a terminal it keeps a table of the users who are not offline (a coloured dot per
status, name, status text, how long ago they changed) above a feed of the latest changes,
redrawn in place with plain ANSI escapes. When stdout is not a terminal (a pipe, a file,
``--once``), it prints lines instead: the table once, then one line per change, so the
output can be grepped, logged or tested.

It connects as a user like any client: ``--token`` gives a token, ``--as USER`` signs one
with ``HUB_SECRET`` (or with the development keys a local ``presence-hub serve`` saved).
Without either it signs for a dedicated ``presence-hub-watch`` user, which it makes
invisible (chosen status ``offline``) so that watching does not show up as a user online.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import shutil
import sys
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import IO, Any

from hub.clients.ws import Client, HubClosed, HubError, HubUnreachable, scope_of
from hub.model.presence import Entry
from hub.ops.config import ConfigError, Settings

HELP = "watch presence live in the terminal (or print it once with --once)"

#: The user ``watch`` signs a token for when neither --token nor --as is given.
WATCHER = "presence-hub-watch"
#: Sort order and colours of the statuses (ANSI SGR codes).
ORDER = {"online": 0, "busy": 1, "away": 2, "offline": 3}
COLOURS = {"online": "32", "away": "33", "busy": "31", "offline": "90"}
DOT = "\u25cf"


# -- pure formatting -----------------------------------------------------------------------


def age(ms: int) -> str:
    """A duration in milliseconds as ``now``, ``12s``, ``5m``, ``3h`` or ``2d``."""
    seconds = max(0, ms) // 1000
    if seconds < 1:
        return "now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def paint(text: str, status: str, colour: bool) -> str:
    if not colour:
        return text
    return f"\x1b[{COLOURS.get(status, '0')}m{text}\x1b[0m"


_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _cut(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters: cut at a word boundary when there is one
    in the second half, else mid-word, with an ellipsis either way."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "\u2026"[:width]
    head = text[: width - 1]
    space = head.rfind(" ")
    if space >= width // 2:
        head = head[:space]
    return head.rstrip() + "\u2026"


def fit(line: str, width: int) -> str:
    """A line with ANSI colours, cut to ``width`` visible characters so the terminal never
    wraps it (a wrap splits words and pushes the screen down); cut at a word boundary."""
    plain = _ESCAPE.sub("", line)
    if len(plain) <= width:
        return line
    keep = len(_cut(plain, width)) - 1  # visible characters kept before the ellipsis
    out: list[str] = []
    shown = 0
    at = 0
    while at < len(line) and shown < keep:
        match = _ESCAPE.match(line, at)
        if match:
            out.append(match.group())
            at = match.end()
            continue
        out.append(line[at])
        shown += 1
        at += 1
    coloured = "\x1b[" in line
    return "".join(out).rstrip() + "\u2026" + ("\x1b[0m" if coloured else "")


def other_name(e: Entry) -> str:
    """The display name when it says more than the id (the hub fills a missing name claim
    with the username or the id: showing it again would read "bob bob")."""
    name = e.get("name") or ""
    return "" if name == e["id"] else name


def visible(entries: Iterable[Entry]) -> list[Entry]:
    """Users not offline (and still members), by status then name."""
    shown = [
        e for e in entries if e.get("status") != "offline" and e.get("member", True) is not False
    ]
    return sorted(
        shown,
        key=lambda e: (ORDER.get(e.get("status", ""), 9), (e.get("name") or e["id"]).lower()),
    )


def counts(entries: Iterable[Entry]) -> str:
    """``3 online, 1 busy, 2 away`` (``nobody online`` when empty)."""
    tally: dict[str, int] = {}
    for e in visible(entries):
        tally[e["status"]] = tally.get(e["status"], 0) + 1
    parts = [f"{n} {status}" for status, n in sorted(tally.items(), key=lambda i: ORDER[i[0]])]
    return ", ".join(parts) if parts else "nobody online"


def table(entries: Iterable[Entry], now_ms: int, *, width: int = 100, colour: bool) -> list[str]:
    """The users not offline as table lines, a header first."""
    rows = visible(entries)
    uw = max([4, *(len(e["id"]) for e in rows)])
    uw = min(uw, 24)
    nw = min(max([4, *(len(other_name(e)) for e in rows)]), 24)
    head = f"  {'STATUS':<8}{'USER':<{uw}}  {'NAME':<{nw}}  {'SINCE':>5}  TEXT"
    lines = [head]
    for e in rows:
        status = e.get("status", "")
        dot = paint(DOT, status, colour) if colour else " "
        text_width = max(8, width - (2 + 8 + uw + 2 + nw + 2 + 5 + 2))
        lines.append(
            f"{dot} {paint(f'{status:<8}', status, colour)}{_cut(e['id'], uw):<{uw}}  "
            f"{_cut(other_name(e), nw):<{nw}}  {age(now_ms - e['at']):>5}  "
            f"{_cut(e.get('text') or '', text_width)}".rstrip()
        )
    return lines


def change_line(previous: Entry | None, entry: Entry, *, colour: bool) -> str:
    """One change: ``21:04:05  alice  online -> busy  "in a meeting"``."""
    stamp = time.strftime("%H:%M:%S", time.localtime(entry["at"] / 1000))
    status = entry.get("status", "")
    who = entry["id"]
    if other_name(entry):
        who += f" ({other_name(entry)})"
    if entry.get("member", True) is False:
        what = "left the room"
    elif previous is None or previous.get("member", True) is False:
        what = f"-> {paint(status, status, colour)}"
    elif previous.get("status") != status:
        before = previous.get("status", "")
        what = f"{paint(before, before, colour)} -> {paint(status, status, colour)}"
    else:
        what = paint(status, status, colour)
    text = entry.get("text") or ""
    if text and (previous is None or previous.get("text") != text):
        what += f"  {json.dumps(text, ensure_ascii=False)}"
    elif previous is not None and previous.get("text") and not text:
        what += "  (text cleared)"
    return f"{stamp}  {who}  {what}"


# -- the command ---------------------------------------------------------------------------


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--url", help="the hub's URL (default http://localhost:<PORT or HUB_PORT or 8000>)"
    )
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--token", help="a user token to connect with")
    who.add_argument(
        "--as",
        dest="as_user",
        metavar="USER",
        help="sign a token for USER with HUB_SECRET (or the local development keys)",
    )
    parser.add_argument(
        "--scope",
        default="all",
        help="all (default), users:a,b or room:name",
    )
    parser.add_argument("--once", action="store_true", help="print who is online now and exit")
    parser.add_argument(
        "--codec", choices=("json", "msgpack"), default="json", help="websocket subprotocol"
    )
    parser.add_argument(
        "--feed", type=int, default=12, metavar="N", help="changes kept under the table (tty)"
    )
    parser.add_argument(
        "--no-color", action="store_true", help="no ANSI colours, even on a terminal"
    )
    parser.set_defaults(func=run)


def _token(args: argparse.Namespace, settings: Settings) -> tuple[str, bool]:
    """The token to connect with, and whether it is the invisible watcher's."""
    if args.token:
        return str(args.token), False
    from hub.model.auth import issue_token
    from hub.ops.cli import dev_keys_path

    secret = settings.secret
    if not secret:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            secret = str(json.loads(dev_keys_path().read_text()).get("secret") or "")
    if not secret:
        raise ConfigError(
            "watch needs --token, or HUB_SECRET (or a local dev hub's keys) to sign one"
        )
    user = args.as_user or WATCHER
    name = "Presence Hub watch" if user == WATCHER else ""
    return issue_token(secret, user, name=name, username=user, ttl_s=7 * 86400), (
        args.as_user is None
    )


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    try:
        scope = scope_of(args.scope)
    except ValueError as exc:
        print(f"presence-hub watch: {exc}", file=sys.stderr)
        return 2
    url = args.url or f"http://localhost:{settings.port}"
    token, invisible = _token(args, settings)
    out = sys.stdout
    tty = out.isatty() and not args.once
    colour = out.isatty() and not args.no_color
    view = View(out, scope.wire(), url, tty=tty, colour=colour, feed=args.feed)
    try:
        return asyncio.run(
            _watch(url, token, args.scope, view, once=args.once, codec=args.codec,
                   invisible=invisible)
        )  # fmt: skip
    except KeyboardInterrupt:
        return 0
    except HubUnreachable as exc:
        print(f"presence-hub watch: {exc}", file=sys.stderr)
        return 1
    except HubClosed as exc:
        print(f"presence-hub watch: {exc}", file=sys.stderr)
        return 1
    except HubError as exc:
        print(f"presence-hub watch: {exc}", file=sys.stderr)
        return 1
    finally:
        view.restore()


async def _watch(
    url: str,
    token: str,
    scope: str,
    view: View,
    *,
    once: bool,
    codec: str,
    invisible: bool,
) -> int:
    async with Client(url, token, codec="msgpack" if codec == "msgpack" else "json") as client:
        if invisible:
            view.hidden.add(client.user.get("id", WATCHER))
            if client.user.get("status") != "offline":
                # The watcher is a user like any other: keep it out of everyone's list.
                await client.set_status("offline")
        state = await client.subscribe(scope)
        view.snapshot(state)
        if once:
            return 0
        redraw = asyncio.Event()

        async def follow() -> None:
            async for entry in client.changes(scope, initial=False):
                view.change(entry)
                redraw.set()

        follower = asyncio.create_task(follow())
        try:
            while not follower.done():
                view.tick(client.connected)
                redraw.clear()
                waiter = asyncio.ensure_future(redraw.wait())
                # A second's timeout refreshes the ages and notices a dropped connection
                # even when nothing changes.
                await asyncio.wait({waiter, follower}, timeout=1.0,
                                   return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
                waiter.cancel()
            follower.result()
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError, HubError):
                await follower
    return 0


class View:
    """What ``watch`` shows: a redrawn screen on a tty, appended lines otherwise."""

    def __init__(
        self,
        out: IO[str],
        scope: Mapping[str, Any],
        url: str,
        *,
        tty: bool,
        colour: bool,
        feed: int,
    ) -> None:
        self.out = out
        self.scope = scope
        self.url = url
        self.tty = tty
        self.colour = colour
        self.users: dict[str, Entry] = {}
        #: Users left out of the feed (the invisible watcher itself).
        self.hidden: set[str] = set()
        self.feed: deque[str] = deque(maxlen=max(1, feed))
        self._screen = False
        #: When the connection dropped (ms), while it is down: the table is stale.
        self.stale_since: int | None = None

    def _now(self) -> int:
        return int(time.time() * 1000)

    def _width(self) -> int:
        return shutil.get_terminal_size((100, 30)).columns

    def snapshot(self, state: Mapping[str, Entry]) -> None:
        self.users = dict(state)
        if self.tty:
            return
        for line in table(self.users.values(), self._now(), width=self._width(),
                          colour=self.colour):  # fmt: skip
            self.out.write(line + "\n")
        self.out.write(counts(self.users.values()) + "\n")
        self.out.flush()

    def change(self, entry: Entry) -> None:
        if entry["id"] in self.hidden:
            return
        previous = self.users.get(entry["id"])
        self.users[entry["id"]] = entry
        line = change_line(previous, entry, colour=self.colour)
        if self.tty:
            self.feed.appendleft(line)
        else:
            self.out.write(line + "\n")
            self.out.flush()

    def link(self, connected: bool) -> None:
        """Track the connection: while it is down the table is the last known state."""
        if connected == (self.stale_since is None):
            return
        self.stale_since = None if connected else self._now()
        if self.tty:
            return
        stamp = time.strftime("%H:%M:%S")
        if connected:
            self.out.write(f"{stamp}  -- live again\n")
        else:
            self.out.write(f"{stamp}  -- disconnected, reconnecting; the list is stale\n")
        self.out.flush()

    def stale_line(self) -> str:
        """``STALE since 12:01:02 (40s): the last known presence`` while disconnected."""
        if self.stale_since is None:
            return ""
        since = time.strftime("%H:%M:%S", time.localtime(self.stale_since / 1000))
        text = f"STALE since {since} ({age(self._now() - self.stale_since)}): last known presence"
        return paint(text, "away", self.colour)

    def tick(self, connected: bool) -> None:
        """Redraw the screen (a tty only)."""
        self.link(connected)
        if not self.tty:
            return
        if not self._screen:
            self.out.write("\x1b[?1049h\x1b[?25l")  # alternate screen, hide the cursor
            self._screen = True
        width, height = shutil.get_terminal_size((100, 30))
        scope = json.dumps(dict(self.scope), separators=(",", ":"))
        link = "live" if connected else paint("reconnecting\u2026", "busy", self.colour)
        stale = self.stale_line()
        lines = [
            f"\x1b[1mPresence Hub\x1b[0m  {self.url}  scope {scope}  {link}",
            counts(self.users.values()) + (f"  {stale}" if stale else ""),
            "",
            *table(self.users.values(), self._now(), width=width, colour=self.colour),
        ]
        room = max(0, height - len(lines) - 3)
        if len(lines) > height - 3:
            lines = [*lines[: max(4, height - 3)], "  \u2026"]
            room = 0
        if room and self.feed:
            lines += ["", "\x1b[1mRecent changes\x1b[0m", *list(self.feed)[: room - 1]]
        lines = [fit(line, width) for line in lines]
        self.out.write("\x1b[H\x1b[2J" + "\n".join(lines) + "\n")
        self.out.flush()

    def restore(self) -> None:
        if self._screen:
            self.out.write("\x1b[?25h\x1b[?1049l")
            self.out.flush()
            self._screen = False
