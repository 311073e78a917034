"""A consumer of the hub's Redis pub/sub channel for other services, with gap recovery.

Every change the hub makes is published, msgpack-encoded, on one channel (default
``hub:presence``) as ``{v: 1, cursor, users: [...]}``. Pub/sub is at-most-once: while the
consumer's Redis connection is down, messages are lost. :class:`PubSubConsumer` notices
every (re)subscription and then asks the hub's REST API what changed since its last cursor
(``GET /api/v1/users.presence?from=<ISO of cursor minus a slack>``), so its state is exact
again; an answer with ``full: true`` replaces the state (whoever it leaves out is offline).

::

    from hub.clients.pubsub import PubSubConsumer

    async with PubSubConsumer("redis://localhost:6379/0", api_url="http://localhost:8000",
                              api_key=ADMIN_KEY) as presence:
        async for entry in presence.changes():
            print(entry["id"], entry["status"])

Ordering argument, for the curious: once SUBSCRIBE is confirmed, every later change reaches
the consumer, in order. The REST call is made after the confirmation and before the next
message is read, so its answer is at least as new as anything published before it, and any
message read after it is at least as new as the REST entry of its user, or the message of a
change the answer already holds. So: a REST entry replaces what the consumer had; a pub/sub
message replaces a REST entry; between pub/sub messages the larger ``at`` wins. A REST
entry carries no ``at``: the consumer gives it a lower bound (the answer's ``Date`` minus a
second), good for consumers who merge by ``at`` themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, cast
from urllib.parse import urlencode

import msgpack
from redis import exceptions as rex
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from hub.model.presence import Entry
from hub.stores.feed import close_pubsub

__all__ = ["PubSubConsumer", "RecoveryFailed", "RecoveryRefused", "decode_message", "iso_ms"]

log = logging.getLogger("hub.client.pubsub")

#: How far before the last cursor a recovery reads (states are idempotent: a little
#: overlap is free, a hole is not).
RECOVERY_SLACK_MS = 2_000


class RecoveryFailed(RuntimeError):
    """The REST API did not answer a gap recovery; retried with backoff."""


class RecoveryRefused(RecoveryFailed):
    """The REST API refused the consumer's credentials (401, 403) or has no such path (404):
    retrying cannot help, so the consumer stops with this error."""


def iso_ms(ms: int) -> str:
    """Milliseconds since the epoch -> ``2019-05-22T12:11:45.392Z``."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def decode_message(data: bytes) -> tuple[int, list[Entry]]:
    """A channel message -> (cursor, entries); ValueError when it is not one."""
    try:
        payload = msgpack.unpackb(data, raw=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise ValueError(f"not msgpack: {exc}") from None
    if not isinstance(payload, dict) or payload.get("v") != 1:
        raise ValueError("not a v1 presence message (a map with v: 1)")
    cursor = payload.get("cursor")
    users = payload.get("users")
    if not isinstance(cursor, int) or not isinstance(users, list | dict):
        raise ValueError("a v1 message needs an integer cursor and a list of users")
    # Lua's cmsgpack packs an empty table as a map: an empty batch.
    entries = [u for u in (users if isinstance(users, list) else []) if _valid(u)]
    return cursor, cast(list[Entry], entries)


def _valid(raw: Any) -> bool:
    return (
        isinstance(raw, dict)
        and isinstance(raw.get("id"), str)
        and isinstance(raw.get("at"), int)
        and isinstance(raw.get("status"), str)
    )


def _rest_entry(raw: Mapping[str, Any], at: int) -> Entry | None:
    """A ``users.presence`` user (Rocket.Chat shape) as a hub entry."""
    uid = raw.get("_id")
    if not isinstance(uid, str):
        return None
    return {
        "id": uid,
        "username": str(raw.get("username") or ""),
        "name": str(raw.get("name") or ""),
        "status": str(raw.get("status") or "offline"),
        "text": str(raw.get("statusText") or ""),
        "at": at,
    }


class _Listener:
    def __init__(self, initial: Iterable[Entry]) -> None:
        self.pending: dict[str, Entry] = {e["id"]: e for e in initial}
        self.wake = asyncio.Event()
        self.ended = False
        self.error: BaseException | None = None
        if self.pending:
            self.wake.set()

    def push(self, entries: Iterable[Entry]) -> None:
        for e in entries:
            self.pending.pop(e["id"], None)
            self.pending[e["id"]] = e
        if self.pending:
            self.wake.set()

    async def next(self) -> Entry | None:
        while not self.pending:
            if self.error is not None:
                raise self.error
            if self.ended:
                return None
            self.wake.clear()
            await self.wake.wait()
        return self.pending.pop(next(iter(self.pending)))


class PubSubConsumer:
    """Reads the hub's pub/sub channel into a state map, recovering gaps through REST.

    ``api_url`` is the hub's base URL; ``api_key`` goes in ``Authorization: Bearer`` (the
    admin key, or a user token: then that user is left out of deltas, as in Rocket.Chat).
    Without ``api_url`` the consumer still works but cannot recover: it counts its
    :attr:`gaps` and logs them.
    """

    def __init__(
        self,
        redis_url: str,
        *,
        channel: str = "hub:presence",
        api_url: str | None = None,
        api_key: str | None = None,
        slack_ms: int = RECOVERY_SLACK_MS,
        backoff_min_s: float = 0.1,
        backoff_max_s: float = 5.0,
        http_timeout_s: float = 10.0,
    ) -> None:
        self.redis_url = redis_url
        self.channel = channel
        self.api_url = api_url.rstrip("/") if api_url else None
        self._api_key = api_key
        self.slack_ms = slack_ms
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.http_timeout_s = http_timeout_s
        #: user id -> latest entry (offline users seen are kept, with ``status: offline``).
        self.state: dict[str, Entry] = {}
        #: The newest cursor seen (message cursors, or the REST answer's time).
        self.cursor: int | None = None
        #: How many times the subscription was (re)established after the first.
        self.gaps = 0
        #: How many REST recoveries succeeded (the first load included).
        self.recoveries = 0
        #: Messages read from the channel.
        self.messages = 0
        self._provisional: set[str] = set()
        self._listeners: set[_Listener] = set()
        self._subscribed = asyncio.Event()
        self._recovered = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._failure: BaseException | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> PubSubConsumer:
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
        """Start reading; returns once subscribed (and, with an API, the state loaded)."""
        if self._task is not None:
            raise RuntimeError("the consumer is already started")
        self._task = asyncio.create_task(self._run(), name="hub-pubsub-consumer")
        waiter = asyncio.ensure_future(self._recovered.wait())
        try:
            await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if self._task.done():
            self._task.result()

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            # A failure was already raised by start() or the iterators; closing is quiet.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for listener in self._listeners:
            listener.ended = True
            listener.wake.set()

    async def wait_recovered(self) -> None:
        """Return when the current subscription is live and its gap recovered."""
        await self._recovered.wait()

    async def changes(self) -> AsyncIterator[Entry]:
        """Every entry as it changes: first the current state, then each change."""
        listener = _Listener(self.state.values())
        self._listeners.add(listener)
        try:
            while True:
                entry = await listener.next()
                if entry is None:
                    return
                yield entry
        finally:
            self._listeners.discard(listener)

    # -- applying --------------------------------------------------------------------------

    def _publish(self, changed: list[Entry]) -> None:
        if changed:
            for listener in self._listeners:
                listener.push(changed)

    def apply_message(self, cursor: int, entries: Iterable[Entry]) -> list[Entry]:
        """A pub/sub batch: the larger ``at`` wins; any message beats a REST entry."""
        changed = []
        for e in entries:
            cur = self.state.get(e["id"])
            if cur is None or e["id"] in self._provisional or e["at"] > cur["at"]:
                self.state[e["id"]] = e
                self._provisional.discard(e["id"])
                changed.append(e)
        if self.cursor is None or cursor > self.cursor:
            self.cursor = cursor
        self._publish(changed)
        return changed

    def apply_rest(self, users: list[Mapping[str, Any]], full: bool, at: int) -> list[Entry]:
        """A ``users.presence`` answer: it replaces what it covers (everything when full)."""
        changed = []
        listed: set[str] = set()
        for raw in users:
            e = _rest_entry(raw, at)
            if e is None:
                continue
            listed.add(e["id"])
            cur = self.state.get(e["id"])
            self.state[e["id"]] = e
            self._provisional.add(e["id"])
            if cur is None or _visible(cur) != _visible(e):
                changed.append(e)
        if full:
            for uid, cur in list(self.state.items()):
                if uid in listed or cur["status"] == "offline":
                    continue
                gone = cast(Entry, {**cur, "status": "offline", "at": max(at, cur["at"])})
                self.state[uid] = gone
                self._provisional.add(uid)
                changed.append(gone)
        if self.cursor is None or at > self.cursor:
            self.cursor = at
        self._publish(changed)
        return changed

    # -- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        first = True
        try:
            while not self._closing:
                await self._session(first)
                first = False
                attempt += 1
                await asyncio.sleep(self._delay(attempt))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._failure = exc
            for listener in self._listeners:
                listener.error = exc
                listener.wake.set()
            raise

    async def _session(self, first: bool) -> None:
        """One Redis connection: subscribe, recover, read until it fails for good."""
        client = Redis.from_url(self.redis_url, socket_connect_timeout=5, health_check_interval=10)
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            await self._listen(pubsub, first)
        except (rex.ConnectionError, rex.TimeoutError, OSError) as exc:
            if first and not self._subscribed.is_set():
                raise  # the very first connection: a wrong URL fails start() at once
            log.warning("pub/sub connection lost (%s); reconnecting", exc)
        finally:
            self._subscribed.clear()
            self._recovered.clear()
            with contextlib.suppress(Exception):
                await close_pubsub(pubsub)
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _listen(self, pubsub: PubSub, first: bool) -> None:
        retry_at: float | None = None
        attempt = 0
        while True:
            timeout = 1.0 if retry_at is None else max(0.0, retry_at - time.monotonic())
            message = await pubsub.get_message(timeout=timeout)
            if retry_at is not None and time.monotonic() >= retry_at:
                retry_at = None
                if not await self._recover_or_later():
                    attempt += 1
                    retry_at = time.monotonic() + self._delay(attempt)
                else:
                    attempt = 0
            if message is None:
                continue
            kind = message["type"]
            if kind == "subscribe":
                # The first confirmation, or redis-py resubscribing after it reconnected on
                # its own: either way, what was published before it is lost to us.
                self._subscribed.set()
                if not first:
                    self.gaps += 1
                    log.info("pub/sub (re)subscribed after a gap; recovering by cursor")
                first = False
                self._recovered.clear()
                if not await self._recover_or_later():
                    attempt = 1
                    retry_at = time.monotonic() + self._delay(attempt)
            elif kind == "message":
                self.messages += 1
                try:
                    cursor, entries = decode_message(message["data"])
                except ValueError as exc:
                    log.warning("ignored a message on %s: %s", self.channel, exc)
                    continue
                self.apply_message(cursor, entries)

    async def _recover_or_later(self) -> bool:
        """Recover from REST; False (retry later) when the API did not answer."""
        if self.api_url is None:
            if self.recoveries or self.gaps:
                log.warning("pub/sub gap: changes may be lost (no api_url to recover from)")
            self._recovered.set()
            return True
        try:
            users, full, at = await self._fetch()
        except RecoveryRefused:
            raise
        except RecoveryFailed as exc:
            log.warning("gap recovery failed (%s); retrying", exc)
            return False
        self.apply_rest(users, full, at)
        self.recoveries += 1
        self._recovered.set()
        return True

    async def _fetch(self) -> tuple[list[Mapping[str, Any]], bool, int]:
        assert self.api_url is not None
        params = {}
        if self.cursor is not None:
            params["from"] = iso_ms(max(0, self.cursor - self.slack_ms))
        url = f"{self.api_url}/api/v1/users.presence"
        if params:
            url += "?" + urlencode(params)
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(url, headers=headers)
        return await asyncio.to_thread(self._get, request)

    def _get(self, request: urllib.request.Request) -> tuple[list[Mapping[str, Any]], bool, int]:
        try:
            with urllib.request.urlopen(request, timeout=self.http_timeout_s) as response:
                body = json.loads(response.read())
                date = response.headers.get("Date")
        except urllib.error.HTTPError as exc:
            exc.close()  # it holds the response's socket
            if exc.code in (401, 403, 404):
                raise RecoveryRefused(
                    f"{request.full_url.split('?')[0]} answered {exc.code}: check api_url and "
                    "api_key (the admin key, or a user token)"
                ) from None
            raise RecoveryFailed(f"users.presence answered {exc.code}") from None
        except (OSError, ValueError) as exc:
            raise RecoveryFailed(f"users.presence: {exc}") from None
        if not isinstance(body, dict) or not isinstance(body.get("users"), list):
            raise RecoveryFailed("users.presence answered without a users list")
        return body["users"], bool(body.get("full")), _lower_bound(date)

    def _delay(self, attempt: int) -> float:
        cap = min(self.backoff_max_s, self.backoff_min_s * 2 ** max(0, attempt - 1))
        return random.uniform(self.backoff_min_s / 2, max(self.backoff_min_s / 2, cap))


def _visible(e: Entry) -> tuple[Any, ...]:
    return (e.get("status"), e.get("text"), e.get("name"), e.get("username"))


def _lower_bound(date: str | None) -> int:
    """A time the answer's state is surely newer than: its ``Date`` header minus a second
    (``Date`` has whole seconds), or this machine's clock minus a second."""
    if date:
        with contextlib.suppress(TypeError, ValueError):
            return int(parsedate_to_datetime(date).timestamp() * 1000) - 1000
    return int(time.time() * 1000) - 1000
