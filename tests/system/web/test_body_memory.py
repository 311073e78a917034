"""A request body's memory, measured on a real hub process: a huge chunked body is refused
while it streams, and the process's peak RSS (``VmHWM``) shows it was never held. Measured
on a process of its own, since the test process's peak says nothing about the hub's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support.hubproc import HubProcess, hub_fixture

hub = hub_fixture({"HUB_OFFLINE_GRACE_S": "0"})


@pytest.fixture
async def http(hub: HubProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hub.url, timeout=30, trust_env=False) as client:
        yield client


def peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")


async def chunks(total: int, size: int = 1 << 20) -> AsyncIterator[bytes]:
    yield b'{"api_key":"'
    for _ in range(total // size):
        yield b"k" * size
    yield b'"}'


async def test_a_huge_chunked_body_is_413_without_being_held(
    hub: HubProcess, http: httpx.AsyncClient
) -> None:
    """64 MB sent chunked (no Content-Length) is refused while streaming: the hub's peak
    memory does not grow by anything like the body's size."""
    before = peak_rss_kb(hub.pid)
    response = await http.post(
        "/api/1.1/users/list",
        content=chunks(64 << 20),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413, response.text
    grown_mb = (peak_rss_kb(hub.pid) - before) / 1024
    assert grown_mb < 24, f"peak RSS grew by {grown_mb:.0f} MB for a refused 64 MB body"
    assert (await http.get("/healthz")).status_code == 200
