"""Real hub processes for end-to-end tests: ``python -m hub serve`` on a free port.

A :class:`HubProcess` runs the hub exactly as an operator would, with fixed test keys,
text logs and whatever ``HUB_*`` values a test needs (short grace, TTL, window). Start-up
is confirmed by polling ``GET /readyz`` against a deadline; between polls the helper waits
on the process itself, so a hub that dies during start-up is reported at once with the tail
of its log. Everything the hub writes goes to a log file kept for debugging.

``stop()`` sends SIGTERM and waits (the hub drains: 1012 to its sockets); ``kill()`` sends
SIGKILL, which is what the liveness tests need: no drain, no goodbye to the store.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest

from hub.model.auth import issue_token

#: Fixed keys for every test hub (HS256 wants at least 32 bytes, or PyJWT warns).
TEST_SECRET = "presence-hub-test-secret-0123456789abcdef"
TEST_ADMIN_KEY = "presence-hub-test-admin-key-0123456789"
#: How long a hub gets to answer ``/readyz`` with 200 (generous for a loaded machine).
START_TIMEOUT_S = 20.0
#: How long SIGTERM gets before the helper falls back to SIGKILL.
STOP_TIMEOUT_S = 15.0
#: Between two readiness polls the helper waits this long on the process's exit.
POLL_S = 0.02


class HubError(RuntimeError):
    """A hub process did not start or stop as expected; the message holds its log tail."""


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def user_token(user: str, *, ttl_s: float | None = 3600, **claims: Any) -> str:
    """A user token signed with :data:`TEST_SECRET` (``name``, ``username``, extra claims)."""
    name = str(claims.pop("name", ""))
    username = str(claims.pop("username", ""))
    return issue_token(
        TEST_SECRET, user, name=name, username=username, ttl_s=ttl_s, extra=claims or None
    )


def rc_headers(user: str, token: str | None = None) -> dict[str, str]:
    """Rocket.Chat credentials for ``user`` (a fresh user token unless one is given)."""
    return {"X-Auth-Token": token or user_token(user), "X-User-Id": user}


ADMIN_HEADERS = {"Authorization": f"Bearer {TEST_ADMIN_KEY}"}


@dataclass
class HubProcess:
    """One ``python -m hub serve`` process."""

    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    #: Wall clock (ms) when ``/readyz`` first answered 200: the store existed by then.
    ready_ms: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def pid(self) -> int:
        assert self.process is not None, "the hub is not running"
        return self.process.pid

    def log(self) -> str:
        """Everything the hub printed so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, chars: int = 4000) -> str:
        return self.log()[-chars:]

    def assert_no_tracebacks(self) -> None:
        """Fail when the hub logged an exception: a bug no client-side assertion saw."""
        log = self.log()
        at = log.find("Traceback (most recent call last)")
        assert at < 0, f"hub on port {self.port} logged an exception:\n{log[at:][:4000]}"

    def start(self) -> HubProcess:
        if self.process is not None:
            raise HubError(f"hub on port {self.port} is already running")
        self.port = self.port or free_port()
        env = {
            **os.environ,
            "HUB_SECRET": TEST_SECRET,
            "HUB_ADMIN_KEY": TEST_ADMIN_KEY,
            "HUB_LOG_FORMAT": "text",
            "HUB_STORE": "memory://",
            # A test hub must never pick up a developer's dev-keys file or port settings.
            "XDG_STATE_HOME": str(self.log_path.parent),
            **self.env,
        }
        env.pop("PORT", None)
        env.pop("HUB_PORT", None)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hub", "serve", "--host", "127.0.0.1",
                 "--port", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )  # fmt: skip
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        last = "no answer yet"
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                try:
                    response = client.get(f"{self.url}/readyz")
                    if response.status_code == 200:
                        self.ready_ms = time.time_ns() // 1_000_000
                        return
                    last = f"{response.status_code} {response.text[:200]}"
                except httpx.TransportError as exc:
                    last = repr(exc)
                try:
                    # Waiting on the process doubles as the poll interval and reports an
                    # early death at once.
                    code = self.process.wait(timeout=POLL_S)
                except subprocess.TimeoutExpired:
                    continue
                self.process = None
                raise HubError(
                    f"hub on port {self.port} exited with {code} during start-up:\n"
                    f"{self.log_tail()}"
                )
        self.kill()
        raise HubError(
            f"hub on port {self.port} not ready within {START_TIMEOUT_S} s ({last}):\n"
            f"{self.log_tail()}"
        )

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM and wait for the drain; returns the exit status (SIGKILL after ``timeout``)."""
        process, self.process = self.process, None
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)
            raise HubError(
                f"hub on port {self.port} ignored SIGTERM for {timeout} s:\n{self.log_tail()}"
            ) from None

    def kill(self) -> None:
        """SIGKILL: the process dies without draining or telling the store."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT_S)


def start_hub(
    log_dir: Path, env: Mapping[str, str] | None = None, *, name: str = "hub"
) -> HubProcess:
    """A running hub whose output goes to ``log_dir/<name>.log``."""
    return HubProcess(log_path=log_dir / f"{name}.log", env=dict(env or {})).start()


@contextlib.contextmanager
def running_hubs(
    log_dir: Path, env: Mapping[str, str], count: int = 2
) -> Iterator[tuple[HubProcess, ...]]:
    """``count`` hubs sharing ``env`` (``node1``, ``node2``, ...); all stopped at the end,
    then each fails the test if it logged a traceback."""
    hubs: list[HubProcess] = []
    try:
        for n in range(1, count + 1):
            hubs.append(start_hub(log_dir, env, name=f"node{n}"))
        yield tuple(hubs)
    finally:
        for hub in hubs:
            hub.stop()
    for hub in hubs:
        hub.assert_no_tracebacks()


def hub_fixture(
    env: Mapping[str, str] | None = None,
    *,
    scope: Literal["session", "package", "module", "class", "function"] = "module",
) -> Callable[..., Iterator[HubProcess]]:
    """A pytest fixture yielding one hub with ``env`` for the whole ``scope``."""

    @pytest.fixture(scope=scope)
    def _hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
        hub = start_hub(tmp_path_factory.mktemp("hub"), env)
        try:
            yield hub
        finally:
            hub.stop()
        hub.assert_no_tracebacks()

    return _hub
