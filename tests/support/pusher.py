"""Helpers for the Pusher tests: the Node driver of the real clients, an auth endpoint and a
webhook receiver (both signing and checking with PyPI's ``pusher`` SDK)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pusher

JS_DIR = Path(__file__).resolve().parents[1] / "pusher" / "js"
APP_ID, APP_KEY, APP_SECRET = "4242", "app-key-4242", "app-secret-0123456789"
APPS_ENV = f"{APP_ID}:{APP_KEY}:{APP_SECRET}"
WAIT_S = 20.0

Event = dict[str, Any]


_SDKS: dict[tuple[int, str], pusher.Pusher] = {}


def sdk(port: int, secret: str = APP_SECRET) -> pusher.Pusher:
    """PyPI's server SDK pointed at a hub (one per port, closed by :func:`close_sdks`)."""
    client = _SDKS.get((port, secret))
    if client is None:
        client = pusher.Pusher(APP_ID, APP_KEY, secret, ssl=False, host="127.0.0.1", port=port)
        _SDKS[(port, secret)] = client
    return client


def close_sdks() -> None:
    for client in _SDKS.values():
        client._pusher_client.http.session.close()
    _SDKS.clear()


def node_sdk(port: int, *calls: dict[str, Any], secret: str = APP_SECRET) -> list[dict[str, Any]]:
    """Calls of the npm ``pusher`` server SDK on a hub: ``{"fn", "args"}`` in, one
    ``{"fn", "status", "body"}`` (or ``"error"``) out per call."""
    spec = {"port": port, "appId": APP_ID, "key": APP_KEY, "secret": secret, "calls": list(calls)}
    done = subprocess.run(
        [node_binary(), str(JS_DIR / "server_sdk.mjs"), json.dumps(spec)],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def node_binary() -> str:
    node = shutil.which("node")
    assert node, "node is not installed (the Pusher tests need Node 18 or later)"
    assert (JS_DIR / "node_modules" / "pusher-js").is_dir(), (
        f"run `npm ci` in {JS_DIR} (scripts/test does)"
    )
    return node


class Driver:
    """``node driver.mjs``: commands in, JSON events out (kept for :meth:`wait`)."""

    def __init__(self, log_path: Path) -> None:
        self.events: list[Event] = []
        self._cond = threading.Condition()
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [node_binary(), str(JS_DIR / "driver.mjs")],
            cwd=JS_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait(lambda e: e.get("ev") == "ready")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            self._log.write(line)
            with self._cond:
                self.events.append(event)
                self._cond.notify_all()

    def send(self, **cmd: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(cmd) + "\n")
        self.process.stdin.flush()

    def wait(
        self, match: Callable[[Event], bool], timeout: float = WAIT_S, after: int = 0
    ) -> Event:
        """The first event (from index ``after``) that matches, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events[after:]:
                    if event.get("ev") == "driver_error":
                        raise AssertionError(f"driver error: {event}")
                    if match(event):
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no matching event within {timeout} s; got {self.events[after:][-20:]}"
                    )
                self._cond.wait(left)

    def mark(self) -> int:
        with self._cond:
            return len(self.events)

    def seen(self, match: Callable[[Event], bool], after: int = 0) -> list[Event]:
        with self._cond:
            return [e for e in self.events[after:] if match(e)]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.send(op="exit")
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self._reader.join(timeout=5)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        self._log.close()


def ev(id_: str, kind: str, **fields: Any) -> Callable[[Event], bool]:
    return lambda e: (
        e.get("id") == id_ and e.get("ev") == kind and all(e.get(k) == v for k, v in fields.items())
    )


class Helper(ThreadingHTTPServer):
    """``POST /auth`` (pusher-js's auth endpoint), ``POST /user-auth`` (its user
    authentication endpoint: ``user_id``, a JSON ``watchlist``, ``forge`` to sign with a
    wrong secret) and ``POST /webhook`` (a receiver)."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, hub_port: int) -> None:
        self.hub_port = hub_port or 80
        self.client = sdk(self.hub_port)
        super().__init__(("127.0.0.1", 0), _Handler)
        self.webhooks: list[dict[str, Any]] = []
        self.rejected = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def webhook_events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [e for body in self.webhooks for e in body["events"]]


class _Handler(BaseHTTPRequestHandler):
    server: Helper

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/auth":
            form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}
            channel, socket_id = form["channel_name"], form["socket_id"]
            user = form.get("user_id", "")
            custom = None
            if channel.startswith("presence-"):
                custom = {"user_id": user, "user_info": {"id": user, "name": f"User {user}"}}
            reply = json.dumps(self.server.client.authenticate(channel, socket_id, custom))
            self._answer(200, reply.encode())
        elif self.path == "/user-auth":
            form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}
            user = form.get("user_id", "")
            user_data: dict[str, Any] = {"id": user, "user_info": {"name": f"User {user}"}}
            watchlist = json.loads(form.get("watchlist") or "[]")
            if watchlist:
                user_data["watchlist"] = watchlist
            signer = sdk(self.server.hub_port, "not-the-secret") if form.get("forge") else None
            signed = (signer or self.server.client).authenticate_user(form["socket_id"], user_data)
            self._answer(200, json.dumps(signed).encode())
        elif self.path == "/webhook":
            checked = self.server.client.validate_webhook(
                self.headers.get("X-Pusher-Key", ""),
                self.headers.get("X-Pusher-Signature", ""),
                body.decode(),
            )
            with self.server.lock:
                if checked is None:
                    self.server.rejected += 1
                else:
                    self.server.webhooks.append(json.loads(body))
            self._answer(200, b"{}")
        else:
            self._answer(404, b"{}")

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
        self.wfile.write(body)


@contextlib.contextmanager
def helper(hub_port: int) -> Iterator[Helper]:
    server = Helper(hub_port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def store_env(url: str, prefix: str) -> dict[str, str]:
    """The environment that puts a test's hubs on one Redis, under the test's own keys."""
    return {"HUB_STORE": url, "HUB_KEY_PREFIX": prefix, "HUB_CHANNEL": f"{prefix}presence"}


def apps_file(path: Path, webhook_url: str, events: tuple[str, ...] = (), **options: Any) -> Path:
    """A ``HUB_PUSHER_APPS_FILE`` with the test app posting to ``webhook_url`` the member,
    channel and client events (and ``events``), with the app ``options`` given."""
    types = ["channel_occupied", "channel_vacated", "member_added", "member_removed",
             "client_event", *events]  # fmt: skip
    app = {
        "id": APP_ID,
        "key": APP_KEY,
        "secret": APP_SECRET,
        "client_events": True,
        "member_limit": 10_000,
        "webhooks": [{"url": webhook_url, "event_types": types}],
        **options,
    }
    path.write_text(json.dumps([app]))
    return path


def wait_until(check: Callable[[], bool], timeout: float = WAIT_S, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {what}")
        time.sleep(0.05)


os.environ.setdefault("NODE_NO_WARNINGS", "1")


async def room_entry(
    client: Any, room: str, user: str, *, after: int = 0, **want: Any
) -> dict[str, Any]:
    """Wait for a ``/ws`` room-scope entry about ``user`` with the fields in ``want``."""

    def matches(frame: dict[str, Any]) -> bool:
        return (
            frame.get("op") in ("snapshot", "delta")
            and frame.get("scope") == {"room": room}
            and any(
                u["id"] == user and all(u.get(k) == v for k, v in want.items())
                for u in frame["users"]
            )
        )

    frame = await client.wait_for(matches, after=after, what=f"{user} {want} in {room}")
    entry: dict[str, Any] = next(u for u in frame["users"] if u["id"] == user)
    return entry
