"""``presence-hub check``: the configuration, the store and (with ``--url``) a running hub.

Each step prints what it is doing before it does it (``[2/4] store ... ``) and what it
found after, with counts: users not offline by status and live nodes from the store, and
a running hub's health, readiness and headline metrics. The exit status is 0 when every
probe answered, 1 otherwise, so the command doubles as a deployment smoke test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.error
import urllib.request
from typing import Any

from hub.model.presence import Status
from hub.ops.cli import _redact
from hub.ops.config import Settings
from hub.ops.metrics import CountsNodes, parse
from hub.stores.presence import StoreUnavailable, open_store


def _say(text: str, end: str = "\n") -> None:
    print(text, end=end, flush=True)


def run_check(settings: Settings, url: str | None) -> int:
    steps = 3 if url is None else 4
    _say(f"[1/{steps}] configuration")
    _say(f"  store      {_redact(settings.store)}")
    _say(
        f"  window     {settings.window_s:g} s   grace {settings.offline_grace_s:g} s   "
        f"node TTL {settings.node_ttl_s:g} s   tick {settings.tick_ms} ms"
    )
    _say(f"  channel    {settings.channel}   key prefix {settings.key_prefix}")
    _say(f"  secret     {'set' if settings.secret else 'not set (serve generates one)'}")
    _say(f"  admin key  {'set' if settings.admin_key else 'not set (serve generates one)'}")
    ok = asyncio.run(_store(settings, steps))
    if url is not None:
        ok = _hub(url.rstrip("/"), steps) and ok
    return 0 if ok else 1


async def _store(settings: Settings, steps: int) -> bool:
    if settings.store.startswith("memory://"):
        _say(f"[2/{steps}] store      memory:// lives inside each hub process: nothing to probe")
        _say(f"[3/{steps}] counts     ask a running hub instead: presence-hub check --url URL")
        return True
    _say(f"[2/{steps}] store      connecting to {_redact(settings.store)} ... ", end="")
    store = open_store(settings)
    try:
        started = time.monotonic()
        await store.start()
        now = await store.now()
        latency = (time.monotonic() - started) * 1000
        _say(f"reachable in {latency:.1f} ms, clock {now}")
        _say(f"[3/{steps}] counts     reading the snapshot of users not offline ... ", end="")
        started = time.monotonic()
        snapshot = await store.changes(None)
        tally = dict.fromkeys((Status.ONLINE, Status.AWAY, Status.BUSY), 0)
        for user in snapshot.users:
            if user.status in tally:
                tally[Status(user.status)] += 1
        took = (time.monotonic() - started) * 1000
        parts = ", ".join(f"{n} {status.value}" for status, n in tally.items())
        _say(f"{len(snapshot.users)} users ({parts}) in {took:.0f} ms")
        if isinstance(store, CountsNodes):
            _say(f"             {await store.nodes_alive()} hub nodes alive")
        return True
    except StoreUnavailable as exc:
        _say(f"UNREACHABLE: {exc}")
        return False
    finally:
        with contextlib.suppress(StoreUnavailable):
            await store.close()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        with exc:  # it holds the response's socket
            return exc.code, exc.read()


def _hub(url: str, steps: int) -> bool:
    _say(f"[{steps}/{steps}] hub        {url} ... ", end="")
    try:
        health, _ = _get(f"{url}/healthz")
        ready_status, ready_body = _get(f"{url}/readyz")
        metrics_status, metrics_body = _get(f"{url}/metrics")
    except (OSError, ValueError) as exc:
        _say(f"UNREACHABLE: {exc}")
        return False
    ready: dict[str, Any] = {}
    with contextlib.suppress(ValueError):
        ready = json.loads(ready_body)
    state = "ready" if ready_status == 200 else f"NOT READY ({ready.get('status', ready_status)})"
    _say(f"{'healthy' if health == 200 else f'UNHEALTHY ({health})'}, {state}"
         + (f", node {ready['node']}" if "node" in ready else ""))  # fmt: skip
    if metrics_status == 200:
        samples = parse(metrics_body.decode("utf-8", "replace"))
        online = {
            status: int(samples.get(f'hub_online_users{{status="{status}"}}', 0))
            for status in ("online", "away", "busy")
        }
        nodes = samples.get("hub_nodes_alive")
        _say(
            f"             {int(samples.get('hub_connections', 0))} connections on this node, "
            f"{int(samples.get('hub_subscriptions', 0))} subscriptions; cluster: "
            + ", ".join(f"{n} {s}" for s, n in online.items())
            + (f"; {int(nodes)} nodes alive" if nodes is not None else "")
        )
    return health == 200 and ready_status == 200
