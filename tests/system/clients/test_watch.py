"""``presence-hub watch`` run as a user runs it (its own process) against a real hub:
--once, the line feed on a pipe, the screen on a terminal (a real pty), and the errors a
user can run into. The hub is served in process where it is never killed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from hub.clients.ws import connect
from tests.support.hubproc import TEST_SECRET, start_hub, user_token
from tests.support.inproc import InProcessHub, inproc_hub_fixture

TIMEOUT_S = 15.0


hub = inproc_hub_fixture({"HUB_OFFLINE_GRACE_S": "0.2"})


def uid(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:6]}"


def watch_env(tmp_path: Path) -> dict[str, str]:
    # The watcher signs its own token with HUB_SECRET; no developer dev-keys file is read.
    env = {**os.environ, "HUB_SECRET": TEST_SECRET, "XDG_STATE_HOME": str(tmp_path)}
    env.pop("PORT", None)
    env.pop("HUB_PORT", None)
    return env


async def run_watch(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub", "watch", *args, env=watch_env(tmp_path),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), TIMEOUT_S)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_pipe_marks_the_list_stale_while_the_hub_is_down(tmp_path: Path) -> None:
    """On a pipe, a dropped connection prints a stale marker line, and a live one when back."""
    own = start_hub(tmp_path, {"HUB_OFFLINE_GRACE_S": "0.2"}, name="own")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub", "watch", "--url", own.url, "--as", uid("viewer"),
        env=watch_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    try:

        async def line_with(*words: str) -> str:
            while True:
                assert process.stdout is not None
                raw = await asyncio.wait_for(process.stdout.readline(), TIMEOUT_S)
                assert raw, "watch ended early"
                if all(w in raw.decode() for w in words):
                    return raw.decode()

        await line_with("STATUS", "USER")
        own.kill()
        await line_with("disconnected", "stale")
        await asyncio.to_thread(own.start)
        await line_with("live again")
    finally:
        process.kill()
        await process.wait()
        own.stop()


async def test_once_prints_who_is_online_and_exits(hub: InProcessHub, tmp_path: Path) -> None:
    """--once prints the table of users not offline (never the watcher itself) and exits 0."""
    alice, bob = uid("alice"), uid("bob")
    async with connect(hub.url, user_token(alice, name="Alice")), \
            connect(hub.url, user_token(bob, name="Bob")) as b:  # fmt: skip
        await b.set_status("busy", "in a meeting")
        code, out, err = await run_watch(tmp_path, "--url", hub.url, "--once")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["STATUS", "USER", "NAME", "SINCE", "TEXT"]
    rows = {line.split()[1]: line for line in lines[1:-1]}
    assert rows[alice].split()[:3] == ["online", alice, "Alice"]
    assert rows[bob].split()[:3] == ["busy", bob, "Bob"] and rows[bob].endswith("in a meeting")
    assert "presence-hub-watch" not in out
    assert "\x1b[" not in out  # not a terminal: no escapes
    assert "online" in lines[-1] and "busy" in lines[-1]


async def test_scope_users_and_msgpack(hub: InProcessHub, tmp_path: Path) -> None:
    """--scope users:... lists only those users; --codec msgpack works the same."""
    alice, bob = uid("alice"), uid("bob")
    async with connect(hub.url, user_token(alice)), connect(hub.url, user_token(bob)):
        code, out, err = await run_watch(
            tmp_path, "--url", hub.url, "--once", "--scope", f"users:{alice}", "--codec", "msgpack"
        )
    assert code == 0, err
    assert alice in out and bob not in out


async def test_pipe_prints_one_line_per_change(hub: InProcessHub, tmp_path: Path) -> None:
    """On a pipe, after the table, every change is one line: who, before -> after, text."""
    alice = uid("alice")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub", "watch", "--url", hub.url, "--as", uid("viewer"),
        env=watch_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    try:

        async def line_with(*words: str) -> str:
            while True:
                assert process.stdout is not None
                raw = await asyncio.wait_for(process.stdout.readline(), TIMEOUT_S)
                assert raw, "watch ended early"
                if all(w in raw.decode() for w in words):
                    return raw.decode()

        await line_with("STATUS", "USER")
        async with connect(hub.url, user_token(alice, name="Alice")) as a:
            await line_with(alice, "-> online")
            await a.set_status("away", "lunch")
            line = await line_with(alice, "online -> away")
            assert line.rstrip().endswith('"lunch"')
        assert "away -> offline" in await line_with(alice, "offline")
    finally:
        process.kill()
        await process.wait()


async def test_terminal_screen(hub: InProcessHub, tmp_path: Path) -> None:
    """On a terminal it redraws a screen: title, coloured table, recent changes."""
    alice = uid("alice")
    primary, secondary = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub", "watch", "--url", hub.url,
        env={**watch_env(tmp_path), "COLUMNS": "120", "LINES": "40"},
        stdout=secondary, stderr=subprocess.PIPE,
    )  # fmt: skip
    os.close(secondary)
    screen = b""
    loop = asyncio.get_running_loop()
    arrived = asyncio.Event()

    def readable() -> None:
        nonlocal screen
        with contextlib.suppress(OSError):
            screen += os.read(primary, 65536)
        arrived.set()

    loop.add_reader(primary, readable)

    async def shows(*parts: bytes) -> None:
        async def check() -> None:
            while not all(p in screen for p in parts):
                arrived.clear()
                await arrived.wait()

        await asyncio.wait_for(check(), TIMEOUT_S)

    try:
        await shows(b"\x1b[?1049h", b"Presence Hub", b"STATUS")
        async with connect(hub.url, user_token(alice)) as a:
            await a.set_status("busy", "deep work")
            await shows(b"\x1b[31m\xe2\x97\x8f", alice.encode(), b"deep work", b"Recent changes")
    finally:
        loop.remove_reader(primary)
        process.terminate()
        await process.wait()
        os.close(primary)


async def test_errors_are_clear(hub: InProcessHub, tmp_path: Path) -> None:
    """A bad token says 4001; an unreachable hub says so; both exit 1. A bad scope exits 2."""
    code, _, err = await run_watch(tmp_path, "--url", hub.url, "--token", "nope", "--once")
    assert code == 1 and "not authenticated (close code 4001)" in err
    code, _, err = await run_watch(tmp_path, "--url", "http://127.0.0.1:9", "--once")
    assert code == 1 and "cannot connect" in err
    code, _, err = await run_watch(tmp_path, "--url", hub.url, "--scope", "everyone", "--once")
    assert code == 2 and "scope must be" in err


def test_without_a_secret_watch_explains(tmp_path: Path) -> None:
    """No token and nothing to sign one with: a message saying what to give."""
    env = {**watch_env(tmp_path), "HUB_SECRET": ""}
    result = subprocess.run(
        [sys.executable, "-m", "hub", "watch", "--url", "http://127.0.0.1:9", "--once"],
        env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "--token" in result.stderr


@pytest.mark.parametrize("flag", ["--help"])
def test_help_lists_the_options(flag: str) -> None:
    """presence-hub watch --help documents every option."""
    result = subprocess.run([sys.executable, "-m", "hub", "watch", flag], capture_output=True,
                            text=True, timeout=TIMEOUT_S, check=True)  # fmt: skip
    for option in ("--url", "--token", "--as", "--scope", "--once", "--codec"):
        assert option in result.stdout
