"""The Python SDK: a websocket client that keeps a live, self-healing copy of presence.

::

    from hub.clients.ws import connect

    async with connect("http://localhost:8000", token) as hub:
        await hub.set_status("busy", "in a meeting")      # returns once the hub acked it
        async for entry in hub.changes("all"):            # the current state, then changes
            print(entry["id"], entry["status"], entry["text"])

A :class:`Client` holds one websocket (``hub.v1.json`` or ``hub.v1.msgpack``). Every frame it
sends carries a ``ref``, so each call returns when the hub answered it, or raises
:class:`FrameError` with the hub's ``code`` and ``message``. Each subscription keeps a state
map (per user, the entry with the larger ``at``; a full snapshot replaces it), readable at
any time with :meth:`Client.state`.

When the connection drops, the client reconnects with exponential backoff and jitter, says
``hello`` again, restores what the connection carried (idle state, rooms joined) and
resubscribes every scope with ``since`` = its last cursor, so it receives only what changed
while it was away (or a full snapshot when that is older than the hub's window). Requests
that were waiting for their ``ack`` are sent again (they are idempotent states). Close
codes 4001 (not authenticated), 4003 (deactivated) and 4004 (disconnected by an admin) are
final: the client raises :class:`NotAuthenticated`, :class:`Deactivated` or
:class:`DisconnectedByAdmin` from every pending call and iterator, and does not reconnect.
1012 (node restarting) reconnects at once, anything else after a backoff.

The first connection is not retried: :func:`connect` raises :class:`HubUnreachable` when the
hub cannot be reached, so a misconfigured URL fails fast.

Rooms of any size: :meth:`Client.counts` keeps a room's numbers (or everyone's),
:meth:`Client.members` a window of its ordered members (:mod:`hub.clients.views`). A
``users`` subscription tells a known user who is offline (an entry with ``status:
offline`` and, when shown, ``lastSeen``) from an id the hub never saw
(:meth:`Client.get` answers :class:`~hub.clients.views.Unknown`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import logging
import random
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, cast
from urllib.parse import urlsplit, urlunsplit

import msgpack
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.typing import Subprotocol

from hub import __version__
from hub.clients.views import Counts, CountsView, Unknown, WindowView
from hub.model.presence import (
    Entry,
    check_audience,
    check_state,
    check_status,
    check_text,
    check_until,
)
from hub.wire.hub import (
    ECHO_IDS,
    JSON,
    MSGPACK,
    CloseCode,
    ProtocolError,
    Scope,
    decode,
    parse_scope,
    parse_window,
)

__all__ = [
    "Client",
    "ClientClosed",
    "ConnectionLost",
    "Counts",
    "CountsView",
    "Deactivated",
    "DisconnectedByAdmin",
    "FrameError",
    "HubClosed",
    "HubError",
    "HubUnreachable",
    "NotAuthenticated",
    "Unknown",
    "WindowView",
    "connect",
    "scope_of",
    "ws_url",
]

log = logging.getLogger("hub.client")

#: How far before its last cursor a resubscription reads: cursors of cluster buckets may
#: differ by a little, and seeing a state twice is harmless.
RESUME_SLACK_MS = 2_000
#: Close codes after which reconnecting cannot help.
FINAL_CODES = frozenset(
    {CloseCode.NOT_AUTHENTICATED, CloseCode.DEACTIVATED, CloseCode.DISCONNECTED}
)

ScopeLike = str | Scope | Mapping[str, Any]


# -- errors --------------------------------------------------------------------------------


class HubError(Exception):
    """Base class of everything the SDK raises."""


class FrameError(HubError):
    """The hub answered a frame with ``error``; ``code`` is the hub's error code."""

    def __init__(self, code: str, message: str, ref: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.ref = ref


class HubUnreachable(HubError):
    """The first connection could not be made (wrong URL, hub down, not a hub)."""


class ClientClosed(HubError):
    """The client was closed; nothing more can be sent or received."""


class ConnectionLost(HubError):
    """The connection dropped while a non-idempotent call (``ping``) waited for its answer."""


class HubClosed(HubError):
    """The hub closed the connection with a code after which the client does not reconnect."""

    def __init__(self, code: int, reason: str) -> None:
        what = _CLOSE_MEANING.get(code, "connection closed")
        super().__init__(f"{what} (close code {code}): {reason or 'no reason given'}")
        self.code = code
        self.reason = reason


class NotAuthenticated(HubClosed):
    """4001: the token is missing, invalid or expired."""


class Deactivated(HubClosed):
    """4003: the user is deactivated (banned)."""


class DisconnectedByAdmin(HubClosed):
    """4004: an admin disconnected this user."""


_CLOSE_MEANING: dict[int, str] = {
    CloseCode.NOT_AUTHENTICATED: "not authenticated",
    CloseCode.DEACTIVATED: "user deactivated",
    CloseCode.DISCONNECTED: "disconnected by an admin",
}


def closed_error(code: int, reason: str) -> HubClosed:
    """The exception for a final close code."""
    if code == CloseCode.NOT_AUTHENTICATED:
        return NotAuthenticated(code, reason)
    if code == CloseCode.DEACTIVATED:
        return Deactivated(code, reason)
    if code == CloseCode.DISCONNECTED:
        return DisconnectedByAdmin(code, reason)
    return HubClosed(code, reason)


class _Retry(Exception):
    """Internal: the connection dropped before the answer; send the frame again."""


class _Transient(Exception):
    """Internal: a (re)connection attempt failed in a way a later attempt may not."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason


# -- small helpers -------------------------------------------------------------------------


def ws_url(url: str) -> str:
    """``http://host:8000`` -> ``ws://host:8000/ws``; ``ws(s)://`` URLs with a path are kept."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None:
        raise ValueError(f"hub URL must be http(s):// or ws(s)://, got {url!r}")
    path = parts.path.rstrip("/")
    if not path.endswith("/ws"):
        path += "/ws"
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def scope_of(value: ScopeLike) -> Scope:
    """A scope from ``"all"``, ``"users:a,b"``, ``"room:x"``, a wire map or a Scope."""
    if isinstance(value, Scope):
        return value
    if isinstance(value, str):
        kind, _, rest = value.partition(":")
        if kind == "all" and not rest:
            return parse_scope({"all": True}, None)
        if kind == "users":
            return parse_scope({"users": [u for u in rest.split(",") if u]}, None)
        if kind == "room":
            return parse_scope({"room": rest}, None)
        raise ValueError(f"scope must be all, users:a,b or room:name, got {value!r}")
    return parse_scope(dict(value), None)


def _entry(raw: Any) -> Entry | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        return None
    at = raw.get("at")
    if not isinstance(at, int) or isinstance(at, bool):
        return None
    return cast(Entry, raw)


# -- subscriptions -------------------------------------------------------------------------


class _Listener:
    """One ``changes()`` iterator: the entries it has not yielded yet, coalesced per user."""

    def __init__(self, initial: Iterable[Entry]) -> None:
        self.pending: dict[str, Entry] = {e["id"]: e for e in initial}
        self.wake = asyncio.Event()
        self.error: BaseException | None = None
        self.ended = False
        if self.pending:
            self.wake.set()

    def push(self, entries: Iterable[Entry]) -> None:
        for e in entries:
            # Re-inserting moves the user to the end: changes come out in arrival order.
            self.pending.pop(e["id"], None)
            self.pending[e["id"]] = e
        if self.pending:
            self.wake.set()

    def end(self, error: BaseException | None) -> None:
        self.error = error
        self.ended = True
        self.wake.set()

    async def next(self) -> Entry | None:
        while not self.pending:
            if self.error is not None:
                raise self.error
            if self.ended:
                return None
            self.wake.clear()
            await self.wake.wait()
        uid = next(iter(self.pending))
        return self.pending.pop(uid)


@dataclass(eq=False)
class Subscription:
    """One scope's state: per user, the entry with the larger ``at``.

    A full snapshot lists everyone in the scope who is not offline, so a user the client
    knew and the snapshot leaves out becomes ``offline`` (stamped with the snapshot's
    cursor, which covers its real offline transition). A room member who left comes once
    more with ``member: false`` and leaves the state.
    """

    scope: Scope
    entries: dict[str, Entry] = field(default_factory=dict)
    cursor: int | None = None
    requested: bool = False
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    listeners: set[_Listener] = field(default_factory=set)
    full_snapshots: int = 0
    delta_snapshots: int = 0
    slack_ms: int = RESUME_SLACK_MS
    #: Ids of a ``users`` scope the hub never saw (its snapshot's ``unknown``).
    unknown: set[str] = field(default_factory=set)
    _synthetic: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._ids = frozenset(self.scope.users) if self.scope.kind == "users" else None

    def get(self, user: str) -> Entry | Unknown | None:
        """``user``'s entry (offline ones too), :class:`Unknown` for an id the hub never
        saw, or None when this scope says nothing of it."""
        entry = self.state().get(user)
        if entry is not None:
            return entry
        return Unknown(user) if user in self.unknown else None

    def state(self) -> dict[str, Entry]:
        return {uid: e for uid, e in self.entries.items() if e.get("member", True) is not False}

    def frame(self, ref: int) -> dict[str, Any]:
        frame: dict[str, Any] = {"op": "sub", **self.scope.wire(), "ref": ref}
        if self.cursor is not None:
            frame["since"] = max(0, self.cursor - self.slack_ms)
        return frame

    def _newer(self, e: Entry, cur: Entry | None) -> bool:
        if cur is None or e["at"] > cur["at"]:
            return True
        # Leaving a room does not change presence, so ``at`` may be the same: the
        # membership flag decides. Offline entries the client made up never lose to it.
        return (
            e["at"] == cur["at"]
            and e["id"] not in self._synthetic
            and e.get("member", True) != cur.get("member", True)
        )

    def merge(self, entries: Iterable[Entry]) -> list[Entry]:
        changed = []
        for e in entries:
            if self._ids is not None and e["id"] not in self._ids:
                continue  # a long watchlist's delta carries other watchlists' users too
            self.unknown.discard(e["id"])
            if self._newer(e, self.entries.get(e["id"])):
                self.entries[e["id"]] = e
                self._synthetic.discard(e["id"])
                changed.append(e)
        return changed

    def apply(self, frame: Mapping[str, Any]) -> list[Entry]:
        """Apply a ``snapshot`` or ``delta``; the entries that changed the state."""
        users = [e for e in map(_entry, frame.get("users") or ()) if e is not None]
        cursor = frame.get("cursor")
        changed: list[Entry] = []
        if frame.get("op") == "snapshot":
            unknown = frame.get("unknown")
            if isinstance(unknown, list):
                self.unknown = {u for u in unknown if isinstance(u, str)}
            if frame.get("full"):
                self.full_snapshots += 1
                listed = {e["id"] for e in users}
                stamp = cursor if isinstance(cursor, int) else 0
                for uid, cur in list(self.entries.items()):
                    if uid in listed or cur["at"] > stamp:
                        continue
                    gone = cast(Entry, {**cur, "status": "offline", "at": stamp})
                    gone.pop("member", None)
                    self.entries[uid] = gone
                    self._synthetic.add(uid)
                    if cur.get("status") != "offline" and cur.get("member", True):
                        changed.append(gone)
            else:
                self.delta_snapshots += 1
            self.synced.set()
        # A member who left stays in ``entries`` (hidden from ``state()``) so a late copy
        # of an older entry cannot bring it back.
        changed.extend(self.merge(users))
        if isinstance(cursor, int) and (self.cursor is None or cursor > self.cursor):
            self.cursor = cursor
        for listener in self.listeners:
            listener.push(changed)
        return changed

    def end(self, error: BaseException | None) -> None:
        for listener in self.listeners:
            listener.end(error)


# -- the client ----------------------------------------------------------------------------


class Client:
    """One hub connection that reconnects and resumes by itself. Use :func:`connect`."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        codec: Literal["json", "msgpack"] = "json",
        backoff_min_s: float = 0.25,
        backoff_max_s: float = 10.0,
        open_timeout_s: float = 10.0,
        ping_interval_s: float | None = 20.0,
        max_size: int = 16 * 2**20,
        resume_slack_ms: int = RESUME_SLACK_MS,
    ) -> None:
        if codec not in ("json", "msgpack"):
            raise ValueError(f"codec must be json or msgpack, got {codec!r}")
        self.url = ws_url(url)
        self._token = token
        self.subprotocol = MSGPACK if codec == "msgpack" else JSON
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.open_timeout_s = open_timeout_s
        self.ping_interval_s = ping_interval_s
        self.max_size = max_size
        self.resume_slack_ms = resume_slack_ms
        #: The last ``ready`` frame: ``conn``, ``user`` (own entry), ``cursor``, ``window``.
        self.ready: dict[str, Any] = {}
        #: How many times the connection was re-established.
        self.reconnects = 0
        #: The close code and reason of the last dropped connection.
        self.last_close: tuple[int, str] | None = None
        self._ws: ClientConnection | None = None
        self._refs = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._subs: dict[tuple[str, ...], Subscription] = {}
        self._views: dict[tuple[str, ...], CountsView | WindowView] = {}
        self._rooms: set[str] = set()
        self._activity = "online"
        self._connected = asyncio.Event()
        self._closing = False
        self._failure: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self._done = asyncio.Event()

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Client:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Open the first connection (not retried: raises :class:`HubUnreachable` or
        :class:`HubClosed`), then keep it up in the background."""
        if self._task is not None:
            raise RuntimeError("the client is already started")
        try:
            ws = await self._open()
        except _Transient as exc:
            raise HubUnreachable(
                f"the hub at {self.url} closed the connection: {exc.code} {exc.reason}"
            ) from None
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            raise HubUnreachable(f"cannot connect to {self.url}: {exc}") from exc
        self._task = asyncio.create_task(self._supervise(ws), name="hub-client")

    async def close(self) -> None:
        """Close the connection; pending calls raise :class:`ClientClosed`, iterators end."""
        if self._closing:
            return
        self._closing = True
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._ws is not None and self._ws is not ws:
            with contextlib.suppress(Exception):
                await self._ws.close()
        self._finish(None)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def user(self) -> Entry:
        """This user's own presence as the hub reported it in ``ready``."""
        return cast(Entry, self.ready.get("user") or {})

    async def wait_connected(self) -> None:
        """Return once a connection is up (at once when it is)."""
        while not self._connected.is_set():
            self._check()
            waiter = asyncio.ensure_future(self._connected.wait())
            done = asyncio.ensure_future(self._done.wait())
            try:
                await asyncio.wait({waiter, done}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                done.cancel()
        self._check()

    async def wait_closed(self) -> None:
        """Return when the client stopped for good; raise what stopped it, if anything."""
        await self._done.wait()
        if self._failure is not None:
            raise self._failure

    # -- calls ---------------------------------------------------------------------------

    async def set_status(
        self,
        status: str | None = None,
        text: str | None = None,
        *,
        until: int | None = None,
        last_seen: str | None = None,
    ) -> None:
        """Set the chosen status (``online`` = automatic, ``away``, ``busy``, ``offline`` =
        invisible) and/or the status text; returns once the hub applied it. ``until`` (ms
        on the hub's clock) makes it expire back to automatic with no text; ``last_seen``
        (``everyone`` or ``nobody``) is who sees this user's last seen."""
        frame: dict[str, Any] = {"op": "status"}
        if status is not None:
            frame["status"] = check_status(status)
        if text is not None:
            frame["text"] = check_text(text)
        if until is not None:
            frame["until"] = check_until(until)
        if last_seen is not None:
            frame["lastSeen"] = check_audience(last_seen)
        if len(frame) == 1 or (until is not None and status is None and text is None):
            raise ValueError("set_status needs a status and/or a text (or last_seen)")
        await self._request(frame)

    async def activity(self, state: str) -> None:
        """Report this connection idle (``away``) or active (``online``); restored after a
        reconnect."""
        self._activity = check_state(state)
        await self._request({"op": "activity", "state": state})

    async def join(self, room: str) -> None:
        """Make this connection a member of ``room`` (rejoined after a reconnect)."""
        self._rooms.add(room)
        await self._request({"op": "join", "room": room})

    async def leave(self, room: str) -> None:
        self._rooms.discard(room)
        await self._request({"op": "leave", "room": room})

    async def ping(self) -> float:
        """Round trip to the hub in seconds (raises :class:`ConnectionLost` on a drop)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        await self._request({"op": "ping"}, retry=False)
        return loop.time() - started

    async def subscribe(self, scope: ScopeLike = "all") -> dict[str, Entry]:
        """Subscribe (once per scope) and return its state when the first snapshot is in."""
        sub = self._subscription(scope_of(scope))
        if not sub.requested:
            sub.requested = True
            try:
                await self._request_sub(sub)
            except BaseException:
                sub.requested = False
                raise
        await self._until(sub.synced)
        return sub.state()

    async def counts(self, room: str | None = None) -> CountsView:
        """A room's numbers (``room=None``: everyone's), once its first frame is in; the
        view's ``value`` stays current and ``changes()`` yields each update."""
        scope = parse_scope({"all": True, "counts": True} if room is None
                            else {"room": room, "counts": True}, None)  # fmt: skip
        view = self._views.get(scope.key())
        if not isinstance(view, CountsView):
            view = self._views[scope.key()] = CountsView(scope)
        await self._request_view(view, {"op": "sub", **scope.wire()})
        return view

    async def members(self, room: str, first: int, last: int) -> WindowView:
        """A window of members ``first`` to ``last`` of ``room`` in the hub's order, once
        its snapshot is in; ``users`` stays exact and ``changes()`` yields each update.
        Asking again with another range moves the window."""
        window = parse_window([first, last], None)
        scope = parse_scope({"room": room, "range": list(window)}, None)
        view = self._views.get(scope.key())
        if isinstance(view, WindowView) and view.requested and view.range != window:
            await self.move(room, first, last)
            return view
        if not isinstance(view, WindowView):
            view = self._views[scope.key()] = WindowView(scope, range=window)
        await self._request_view(view, view.frame())
        return view

    async def move(self, room: str, first: int, last: int) -> WindowView:
        """Move this client's window of ``room``; returns once the new range's snapshot
        is in."""
        window = parse_window([first, last], None)
        scope = parse_scope({"room": room, "range": list(window)}, None)
        view = self._views.get(scope.key())
        if not isinstance(view, WindowView):
            raise FrameError("not_subscribed", f"no window of room {room!r}: call members()")
        view.move(*window)
        view.synced.clear()
        await self._request({"op": "range", "room": room, "range": list(window)})
        await self._until(view.synced)
        return view

    async def _request_view(self, view: CountsView | WindowView, frame: dict[str, Any]) -> None:
        if not view.requested:
            view.requested = True
            try:
                await self._request(frame)
            except BaseException:
                view.requested = False
                self._views.pop(view.scope.key(), None)
                raise
        await self._until(view.synced)

    def get(self, scope: ScopeLike, user: str) -> Entry | Unknown | None:
        """What a subscribed scope says of ``user``: its entry (``status: offline`` and,
        when shown, ``lastSeen`` for a known user who is offline), :class:`Unknown` for an
        id the hub never saw, or None."""
        sub = self._subs.get(scope_of(scope).key())
        return None if sub is None else sub.get(user)

    def unknown(self, scope: ScopeLike) -> set[str]:
        """The ids of a subscribed ``users`` scope the hub never saw."""
        sub = self._subs.get(scope_of(scope).key())
        return set() if sub is None else set(sub.unknown)

    async def unsubscribe(self, scope: ScopeLike) -> None:
        """Stop a subscription; its iterators end."""
        s = scope_of(scope)
        view = self._views.pop(s.key(), None)
        if view is not None:
            view.end(None)
            if view.requested and self.connected:
                wire = view.frame() if isinstance(view, WindowView) else {**view.scope.wire()}
                wire = {k: v for k, v in wire.items() if k != "op"}
                with contextlib.suppress(FrameError):
                    await self._request({"op": "unsub", **wire}, retry=False)
            return
        sub = self._subs.pop(s.key(), None)
        if sub is None:
            return
        sub.end(None)
        if sub.requested and self.connected:
            with contextlib.suppress(FrameError):
                await self._request({"op": "unsub", **s.wire()}, retry=False)

    def state(self, scope: ScopeLike = "all") -> dict[str, Entry]:
        """The current state of a subscribed scope: user id -> latest entry (offline users the
        client has seen are included with ``status: offline``)."""
        sub = self._subs.get(scope_of(scope).key())
        return {} if sub is None else sub.state()

    def subscription(self, scope: ScopeLike = "all") -> Subscription | None:
        """The subscription object (cursor, snapshot counts), or None."""
        return self._subs.get(scope_of(scope).key())

    async def changes(
        self, scope: ScopeLike = "all", *, initial: bool = True
    ) -> AsyncIterator[Entry]:
        """Every entry of ``scope`` as it changes: first the current state, then each change.

        Subscribes when needed. With ``initial=False`` the state as it is now is skipped
        (after :meth:`subscribe`, only what changes from then on). A consumer slower than the
        changes sees the latest entry of each user (states, not events). Ends when the client
        or the subscription is closed; raises :class:`HubClosed` when the hub ended the
        session for good.
        """
        s = scope_of(scope)
        sub = self._subscription(s)
        listener = _Listener(sub.state().values() if initial else ())
        sub.listeners.add(listener)
        try:
            self._check()
            await self.subscribe(s)
            while True:
                entry = await listener.next()
                if entry is None:
                    return
                yield entry
        finally:
            sub.listeners.discard(listener)

    # -- internals: requests -------------------------------------------------------------

    def _check(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._closing:
            raise ClientClosed("the client is closed")

    def _subscription(self, scope: Scope) -> Subscription:
        sub = self._subs.get(scope.key())
        if sub is None:
            sub = self._subs[scope.key()] = Subscription(scope, slack_ms=self.resume_slack_ms)
        return sub

    async def _until(self, event: asyncio.Event) -> None:
        """Wait for ``event``, or raise when the client stops first."""
        if event.is_set():
            return
        waiter = asyncio.ensure_future(event.wait())
        done = asyncio.ensure_future(self._done.wait())
        try:
            await asyncio.wait({waiter, done}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            done.cancel()
        if not event.is_set():
            self._check()

    async def _request_sub(self, sub: Subscription) -> None:
        while True:
            self._check()
            await self.wait_connected()
            ref = next(self._refs)
            try:
                await self._exchange(sub.frame(ref), ref)
                return
            except _Retry:
                continue

    async def _request(self, frame: dict[str, Any], *, retry: bool = True) -> dict[str, Any]:
        """Send ``frame`` with a fresh ``ref`` and wait for the answer; after a drop, send it
        again on the next connection (or raise :class:`ConnectionLost` without ``retry``)."""
        while True:
            self._check()
            await self.wait_connected()
            ref = next(self._refs)
            try:
                return await self._exchange({**frame, "ref": ref}, ref)
            except _Retry:
                if not retry:
                    raise ConnectionLost("the connection dropped before the answer") from None

    async def _exchange(self, frame: dict[str, Any], ref: int) -> dict[str, Any]:
        ws = self._ws
        if ws is None:
            raise _Retry()
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ref] = future
        try:
            try:
                await ws.send(self._encode(frame))
            except ConnectionClosed:
                raise _Retry() from None
            return await future
        finally:
            self._pending.pop(ref, None)

    def _encode(self, frame: dict[str, Any]) -> str | bytes:
        if self.subprotocol == MSGPACK:
            packed: bytes = msgpack.packb(frame, use_bin_type=True)
            return packed
        return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)

    def _decode(self, data: str | bytes) -> dict[str, Any] | None:
        try:
            value = decode(data)
        except ProtocolError:
            log.warning("ignored a frame that does not decode (%d bytes)", len(data))
            return None
        return value if isinstance(value, dict) else None

    # -- internals: the connection -------------------------------------------------------

    async def _open(self) -> ClientConnection:
        """Connect, say hello, wait for ready, restore what the connection carried."""
        ws = await ws_connect(
            self.url,
            subprotocols=[Subprotocol(self.subprotocol)],
            open_timeout=self.open_timeout_s,
            ping_interval=self.ping_interval_s,
            max_size=self.max_size,
            compression=None,
            proxy=None,
            user_agent_header=f"presence-hub-sdk/{__version__}",
        )
        try:
            self.ready = await self._hello(ws)
            self._ws = ws
            await self._restore(ws)
        except BaseException:
            self._ws = None
            with contextlib.suppress(Exception):
                await ws.close()
            raise
        self._connected.set()
        return ws

    async def _hello(self, ws: ClientConnection) -> dict[str, Any]:
        try:
            await ws.send(self._encode({"op": "hello", "token": self._token}))
            async with asyncio.timeout(self.open_timeout_s):
                while True:
                    frame = self._decode(await ws.recv())
                    if frame is None:
                        continue
                    if frame.get("op") == "ready":
                        return frame
                    if frame.get("op") == "error":
                        log.warning("the hub refused the session: %s", frame.get("message"))
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else 1006
            reason = exc.rcvd.reason if exc.rcvd is not None else ""
            if code in FINAL_CODES:
                raise closed_error(code, reason) from None
            raise _Transient(code, reason) from None

    async def _restore(self, ws: ClientConnection) -> None:
        """Send what a new connection must carry before any queued call goes out: the idle
        state, the rooms, and every subscription resumed from its cursor."""
        frames: list[dict[str, Any]] = []
        if self._activity != "online":
            frames.append({"op": "activity", "state": self._activity})
        frames.extend({"op": "join", "room": room} for room in sorted(self._rooms))
        for sub in self._subs.values():
            if sub.requested and sub.synced.is_set():
                frames.append(sub.frame(0))
        for view in self._views.values():
            if view.requested:
                frames.append(view.frame() if isinstance(view, WindowView)
                              else {"op": "sub", **view.scope.wire()})  # fmt: skip
        for frame in frames:
            ref = next(self._refs)
            frame["ref"] = ref
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._pending[ref] = future
            future.add_done_callback(functools.partial(self._restored, frame=frame))
            await ws.send(self._encode(frame))

    def _restored(self, future: asyncio.Future[dict[str, Any]], *, frame: dict[str, Any]) -> None:
        self._pending.pop(frame["ref"], None)
        if future.cancelled():
            return
        exc = future.exception()
        if exc is None or isinstance(exc, (_Retry, ClientClosed, HubClosed)):
            return
        log.warning("the hub refused %s after reconnecting: %s", frame.get("op"), exc)
        if frame["op"] == "sub":
            key = scope_of(
                {k: v for k, v in frame.items() if k not in ("op", "ref", "since")}
            ).key()
            sub = self._subs.pop(key, None)
            if sub is not None:
                sub.end(exc)
            view = self._views.pop(key, None)
            if view is not None:
                view.end(exc)

    async def _supervise(self, ws: ClientConnection) -> None:
        """Read until the connection drops, then reconnect (or stop on a final close)."""
        try:
            while True:
                code, reason = await self._read(ws)
                self._lost(code, reason)
                if self._closing:
                    return
                if code in FINAL_CODES:
                    self._finish(closed_error(code, reason))
                    return
                log.info("connection to the hub lost (%s %s); reconnecting", code, reason)
                ws = await self._reconnect(code)
                self.reconnects += 1
                log.info("reconnected to the hub (conn %s)", self.ready.get("conn"))
        except HubClosed as exc:
            self._finish(exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not leave callers waiting forever
            log.exception("hub client stopped")
            self._finish(exc)

    async def _reconnect(self, code: int) -> ClientConnection:
        attempt = 0
        while True:
            await asyncio.sleep(self._delay(attempt, code))
            try:
                return await self._open()
            except _Transient as exc:
                code = exc.code
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
                code = 1006
                log.debug("reconnect attempt %d failed: %s", attempt + 1, exc)
            attempt += 1

    def _delay(self, attempt: int, code: int) -> float:
        """Exponential backoff with full jitter; a restarting node (1012) is left at once."""
        if attempt == 0 and code == CloseCode.RESTARTING:
            return random.uniform(0, min(0.1, self.backoff_min_s))
        cap = min(self.backoff_max_s, self.backoff_min_s * 2**attempt)
        return random.uniform(self.backoff_min_s / 2, max(self.backoff_min_s / 2, cap))

    async def _read(self, ws: ClientConnection) -> tuple[int, str]:
        try:
            async for data in ws:
                frame = self._decode(data)
                if frame is not None:
                    await self._dispatch(ws, frame)
        except ConnectionClosed:
            pass
        code = ws.close_code if ws.close_code is not None else 1006
        return code, ws.close_reason or ""

    async def _dispatch(self, ws: ClientConnection, frame: dict[str, Any]) -> None:
        op = frame.get("op")
        scope = frame.get("scope")
        if op == "delta" and isinstance(scope, dict) and scope.get("users") is True:
            # A long watchlist's delta: for each long users subscription, its own ids.
            for watchlist in self._subs.values():
                if watchlist.scope.kind == "users" and len(watchlist.scope.users) > ECHO_IDS:
                    watchlist.apply(frame)
        elif op in ("snapshot", "delta", "counts", "window"):
            try:
                key = parse_scope(scope or {}, None).key()
            except ValueError:
                return
            if op in ("counts", "window") or (isinstance(scope, dict) and "range" in scope):
                view = self._views.get(key)
                if view is not None:
                    view.apply(frame)
                return
            sub = self._subs.get(key)
            if sub is not None:
                sub.apply(frame)
        elif op in ("ack", "pong"):
            ref = frame.get("ref")
            future = self._pending.get(ref) if isinstance(ref, int) else None
            if future is not None and not future.done():
                future.set_result(frame)
        elif op == "error":
            ref = frame.get("ref")
            error = FrameError(str(frame.get("code")), str(frame.get("message")), ref)
            future = self._pending.get(ref) if isinstance(ref, int) else None
            if future is not None and not future.done():
                future.set_exception(error)
            else:
                log.warning("the hub reported an error: %s", error)
        elif op == "ping":
            reply: dict[str, Any] = {"op": "pong"}
            if frame.get("ref") is not None:
                reply["ref"] = frame["ref"]
            with contextlib.suppress(ConnectionClosed):
                await ws.send(self._encode(reply))
        elif op == "ready":
            self.ready = frame

    def _lost(self, code: int, reason: str) -> None:
        """The connection dropped: waiting calls go again on the next one."""
        self.last_close = (code, reason)
        self._connected.clear()
        self._ws = None
        for future in list(self._pending.values()):
            if not future.done():
                future.set_exception(_Retry())
        self._pending.clear()

    def _finish(self, error: BaseException | None) -> None:
        """Stop for good: wake every waiter, end every iterator."""
        if self._done.is_set():
            return
        self._failure = error
        self._connected.clear()
        final = error if error is not None else ClientClosed("the client is closed")
        for future in list(self._pending.values()):
            if not future.done():
                future.set_exception(final)
                # Retrieved here so an unawaited restore frame does not warn.
                future.exception()
        self._pending.clear()
        for sub in self._subs.values():
            sub.end(error)
        for view in self._views.values():
            view.end(error)
        self._done.set()


def connect(
    url: str,
    token: str,
    *,
    codec: Literal["json", "msgpack"] = "json",
    backoff_min_s: float = 0.25,
    backoff_max_s: float = 10.0,
    open_timeout_s: float = 10.0,
    resume_slack_ms: int = RESUME_SLACK_MS,
) -> Client:
    """A :class:`Client` for ``async with``: ``url`` is the hub's base URL (``http://host:port``)
    or its websocket URL; ``token`` a user token (HS256 JWT signed with ``HUB_SECRET``).

    ``resume_slack_ms``: how far before its last cursor a resubscription reads. The default
    covers clock differences between Redis Cluster shards; with one Redis or the memory
    store, 0 is exact."""
    return Client(
        url,
        token,
        codec=codec,
        backoff_min_s=backoff_min_s,
        backoff_max_s=backoff_max_s,
        open_timeout_s=open_timeout_s,
        resume_slack_ms=resume_slack_ms,
    )
