"""What a hub process writes: structured session logs (useful fields, never a token or a
query string), and ``presence-hub check`` run as a user runs it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect as ws_connect

from hub.clients.ws import connect
from tests.support import eventually
from tests.support.hubproc import HubProcess, hub_fixture, start_hub, user_token

hub = hub_fixture({"HUB_OFFLINE_GRACE_S": "0.2", "HUB_LOG_FORMAT": "json"})


async def test_session_logs_are_structured_and_keep_secrets_out(hub: HubProcess) -> None:
    """connect, disconnect and refusals are JSON lines with their fields; neither the token
    nor a query string is ever written."""
    token = user_token("log-user", name="Logger")
    url = f"ws://127.0.0.1:{hub.port}/ws?token=QUERYSECRET"
    async with ws_connect(url) as ws:
        await ws.send(json.dumps({"op": "hello", "token": token}))
        assert json.loads(await ws.recv())["op"] == "ready"
    async with ws_connect(url) as ws:
        await ws.send(json.dumps({"op": "hello", "token": "WRONGTOKEN"}))
        await ws.wait_closed()

    def records() -> list[dict[str, Any]]:
        out = []
        for line in hub.log().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    async def logged() -> list[dict[str, Any]]:
        found = [r for r in records() if r.get("user") == "log-user" or r.get("code") == 4001]
        events = {r.get("event") for r in found}
        assert {"ws.connect", "ws.disconnect", "ws.refused"} <= events, events
        return found

    found = await eventually(logged)
    connect_record = next(r for r in found if r["event"] == "ws.connect")
    assert connect_record["conn"] and connect_record["codec"] == "hub.v1.json"
    assert connect_record["peer"] == "127.0.0.1" and connect_record["level"] == "info"
    closed = next(r for r in found if r["event"] == "ws.disconnect")
    assert closed["conn"] == connect_record["conn"] and closed["duration_s"] >= 0
    refused = next(r for r in found if r["event"] == "ws.refused")
    assert refused["code"] == 4001 and "invalid token" in refused["reason"]
    log = hub.log()
    assert token not in log and "QUERYSECRET" not in log and "WRONGTOKEN" not in log
    assert "/ws?[redacted]" in log  # uvicorn's own line, with the query cut


@pytest.mark.redis
async def test_check_reports_progress_and_counts(
    redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    """check numbers its steps, counts users by status and live nodes, probes the hub, and
    exits 1 when the store is unreachable."""
    env = {"HUB_STORE": redis_url, "HUB_KEY_PREFIX": key_prefix,
           "HUB_CHANNEL": f"{key_prefix}presence"}  # fmt: skip
    node = start_hub(tmp_path, env)
    try:
        async with connect(node.url, user_token("k-one")), \
                connect(node.url, user_token("k-two")) as two:  # fmt: skip
            await two.set_status("busy")
            result = await _check(tmp_path, env, "--url", node.url)
        assert result.returncode == 0, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        assert [line[:5] for line in lines if line.startswith("[")] == [
            "[1/4]", "[2/4]", "[3/4]", "[4/4]"]  # fmt: skip
        counts = next(line for line in lines if line.startswith("[3/4]"))
        assert "2 users (1 online, 0 away, 1 busy)" in counts
        assert any(line.strip() == "1 hub nodes alive" for line in lines)
        hub_line = next(line for line in lines if line.startswith("[4/4]"))
        assert "healthy, ready" in hub_line
    finally:
        node.stop()
    down = await _check(tmp_path, {"HUB_STORE": "redis://:hunter2@127.0.0.1:9/0"})
    assert down.returncode == 1 and "UNREACHABLE" in down.stdout
    assert "hunter2" not in down.stdout and "redis://***@127.0.0.1:9/0" in down.stdout


async def _check(tmp_path: Path, env: dict[str, str], *args: str) -> Any:
    full = {**os.environ, "XDG_STATE_HOME": str(tmp_path), **env}
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "hub", "check", *args], env=full,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
