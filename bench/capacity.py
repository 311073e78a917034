"""Capacity figures for the Redis store, measured on this machine (a script, not a test).

    python bench/capacity.py                 # everything, about a minute and a half
    python bench/capacity.py --users 5000    # quicker, rougher
    python bench/capacity.py --json /tmp/capacity.json

It starts its own ``redis-server`` processes (from PATH, free ports, no persistence) and,
for the hub figures, real ``python -m hub serve`` processes, and measures:

1. **Redis memory** per online user (one connection) and per extra connection: ``INFO
   memory`` ``used_memory`` before and after registering ``--users`` users through
   :class:`hub.stores.presence.redis.RedisStore` directly (no websockets), then a second connection
   each, then every connection closed (what an offline user still costs).
2. **Pub/sub bytes per change**: the size of one published batch (one change: a connect),
   and per change inside a large batch (reaping a node's connections publishes batches of
   up to ``REAP_BATCH`` users).
3. **Redis time per operation**: connect + disconnect pairs from one process at
   ``--concurrency`` in flight: wall rate, Redis CPU (``INFO cpu``) per script call, and
   ``INFO commandstats`` ``usec_per_call`` of EVALSHA; with 0 and with ``--subscribers``
   hubs' worth of channel subscribers (every PUBLISH is copied to each), whose difference
   is what one more subscribed hub costs per published change.
4. **One hub's demand on Redis**: ``--hub-sockets`` websocket connections opened against a
   hub process (the reconnect-storm client, ``tests/support/storm.py``): sockets per second
   one hub process sustains, and the Redis CPU that costs, hence how many hub processes one
   Redis shard (one core) carries at full connect speed.
5. **Cluster bus bytes per change** on a three-master cluster: PUBLISH (what the hub does:
   a cluster broadcasts it to every node) versus SPUBLISH (sharded: stays in the shard).

Then it extrapolates to 1M online users (``--online``) with the churn model printed with
the table. Every figure is from this machine; see docs/capacity.md for a recorded run and
the caveats.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import msgpack  # noqa: E402
from redis.asyncio import Redis  # noqa: E402
from redis.exceptions import ResponseError  # noqa: E402

from hub.stores.presence.base import Profile  # noqa: E402
from hub.stores.presence.redis import RedisStore  # noqa: E402
from tests.support.hubproc import TEST_SECRET, HubProcess  # noqa: E402
from tests.support.redis_server import RedisServer, start_cluster, start_server  # noqa: E402

CHANNEL = "hub:presence"


# -- helpers ---------------------------------------------------------------------------------


async def info(redis: Redis, section: str) -> dict[str, Any]:
    reply: dict[str, Any] = await redis.info(section)
    return reply


async def used_memory(redis: Redis) -> int:
    return int((await info(redis, "memory"))["used_memory"])


async def redis_cpu(redis: Redis) -> float:
    cpu = await info(redis, "cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


async def evalsha_stats(redis: Redis) -> tuple[int, float]:
    row = (await info(redis, "commandstats")).get("cmdstat_evalsha", {})
    return int(row.get("calls", 0)), float(row.get("usec", 0))


async def bounded(calls: list[Callable[[], Awaitable[Any]]], concurrency: int) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(call: Callable[[], Awaitable[Any]]) -> None:
        async with gate:
            await call()

    await asyncio.gather(*(one(c) for c in calls))


def proc_cpu_s(pid: int) -> float:
    """user + system CPU seconds of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    server = start_server()
    try:
        yield server
    finally:
        server.cleanup()


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1024
    return f"{n:.1f} TB"


# -- 1 + 2: memory and pub/sub bytes ---------------------------------------------------------


async def memory_and_bytes(url: str, users: int, concurrency: int) -> dict[str, Any]:
    store = RedisStore(url, key_prefix="cap:", channel=CHANNEL)
    await store.start()
    redis = Redis.from_url(url)
    sub = redis.pubsub()
    await sub.subscribe(CHANNEL)
    await sub.get_message(timeout=1)
    try:
        ids = [f"user-{i:07d}" for i in range(users)]
        await store.connect("warm", "warm.1", Profile(id="warm-up"), "online")
        await store.disconnect("warm", "warm.1", "warm-up", grace=False)
        await drain(sub)
        base = await used_memory(redis)

        # One change, one message: the batch a single connect publishes.
        await store.connect("node-a", "c0.1", Profile(id=ids[0], username=ids[0],
                                                      name="User 0"), "online")  # fmt: skip
        single = [len(m) for m in await drain(sub)]

        def profile(uid: str) -> Profile:
            return Profile(id=uid, username=uid, name=f"Name {uid}")

        await bounded(
            [lambda u=u: store.connect("node-a", f"{u}.1", profile(u), "online") for u in ids[1:]],
            concurrency,
        )
        await drain(sub)
        one_conn = await used_memory(redis)
        await bounded(
            [lambda u=u: store.connect("node-b", f"{u}.2", profile(u), "online") for u in ids],
            concurrency,
        )
        await drain(sub)
        two_conns = await used_memory(redis)

        # Reaping node b removes every second connection: nobody changes, nothing published.
        # Reaping node a then turns everyone offline in batches of about REAP_BATCH users.
        await store.remove_node("node-b", grace=False)
        await drain(sub)
        await store.remove_node("node-a", grace=False)
        batches = await drain(sub)
        offline = await used_memory(redis)
        entries = [len(msgpack.unpackb(m, raw=False)["users"]) for m in batches]
        return {
            "users": users,
            "memory_per_online_user_b": (one_conn - base) / users,
            "memory_per_extra_connection_b": (two_conns - one_conn) / users,
            "memory_per_offline_user_b": (offline - base) / users,
            "message_single_change_b": single[0] if single else 0,
            "batch_messages": len(batches),
            "batch_entries_mean": sum(entries) / max(1, len(entries)),
            "batch_bytes_per_change_b": sum(map(len, batches)) / max(1, sum(entries)),
        }
    finally:
        await sub.aclose()
        await redis.aclose()
        await store.close()


async def drain(sub: Any) -> list[bytes]:
    """Every message the subscription received until it has been quiet for 200 ms."""
    out: list[bytes] = []
    while True:
        message = await sub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if message is None:
            return out
        out.append(message["data"])


# -- 3: Redis time per operation -------------------------------------------------------------


async def op_cost(url: str, pairs: int, concurrency: int, subscribers: int) -> dict[str, Any]:
    store = RedisStore(url, key_prefix=f"ops{subscribers}:", channel=f"ops{subscribers}")
    await store.start()
    redis = Redis.from_url(url)
    listeners: list[asyncio.Task[None]] = []
    subs = []
    for _ in range(subscribers):
        client = Redis.from_url(url)
        pubsub = client.pubsub()
        await pubsub.subscribe(f"ops{subscribers}")
        subs.append((client, pubsub))
        listeners.append(asyncio.create_task(listen(pubsub)))
    try:
        ids = [f"u{i}" for i in range(pairs)]
        cpu0, (calls0, usec0) = await redis_cpu(redis), await evalsha_stats(redis)
        started = time.monotonic()

        async def pair(uid: str) -> None:
            await store.connect("node", f"{uid}.1", Profile(id=uid), "online")
            await store.disconnect("node", f"{uid}.1", uid, grace=False)

        await bounded([lambda u=u: pair(u) for u in ids], concurrency)
        wall = time.monotonic() - started
        cpu1, (calls1, usec1) = await redis_cpu(redis), await evalsha_stats(redis)
        ops = 2 * pairs
        return {
            "subscribers": subscribers,
            "ops": ops,
            "wall_ops_per_s": ops / wall,
            "redis_cpu_us_per_op": (cpu1 - cpu0) * 1e6 / ops,
            "evalsha_us_per_call": (usec1 - usec0) / max(1, calls1 - calls0),
        }
    finally:
        for task in listeners:
            task.cancel()
        for client, pubsub in subs:
            await pubsub.aclose()
            await client.aclose()
        await redis.aclose()
        await store.close()


async def listen(pubsub: Any) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        while True:
            await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)


# -- 4: one hub's demand on Redis ------------------------------------------------------------


async def hub_demand(server: RedisServer, sockets: int, workdir: Path) -> dict[str, Any]:
    env = {"HUB_STORE": server.url, "HUB_LOG_LEVEL": "warning", "HUB_OFFLINE_GRACE_S": "0"}
    hub = HubProcess(log_path=workdir / "capacity-hub.log", env=env).start()
    redis = Redis.from_url(server.url)
    storm = subprocess.Popen(
        [sys.executable, "-m", "tests.support.storm", "--secret", TEST_SECRET, "--conns",
         str(sockets), "--users", str(sockets), "--url", hub.ws_url, "--prefix", "cap"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert storm.stdout is not None and storm.stdin is not None
        # Phase 1: open every socket (hello + connect script + ready).
        hub_cpu0, redis_cpu0 = proc_cpu_s(hub.pid), await redis_cpu(redis)
        ready = json.loads(storm.stdout.readline())
        hub_cpu1, redis_cpu1 = proc_cpu_s(hub.pid), await redis_cpu(redis)
        # Phase 2: drop them all and reconnect (disconnect + connect per socket).
        storm.stdin.write("drop\n")
        storm.stdin.flush()
        json.loads(storm.stdout.readline())
        back = json.loads(storm.stdout.readline())
        hub_cpu2, redis_cpu2 = proc_cpu_s(hub.pid), await redis_cpu(redis)
        opened_s, reconnect_s = float(ready["s"]), float(back["s"])
        return {
            "sockets": sockets,
            "connects_per_s": sockets / opened_s,
            "hub_cpu_per_connect_us": (hub_cpu1 - hub_cpu0) * 1e6 / sockets,
            "redis_cpu_per_connect_us": (redis_cpu1 - redis_cpu0) * 1e6 / sockets,
            "reconnects_per_s": sockets / reconnect_s,
            "hub_cpu_per_reconnect_us": (hub_cpu2 - hub_cpu1) * 1e6 / sockets,
            "redis_cpu_per_reconnect_us": (redis_cpu2 - redis_cpu1) * 1e6 / sockets,
            "hub_rss_b": rss(hub.pid),
        }
    finally:
        with contextlib.suppress(OSError):
            assert storm.stdin is not None
            storm.stdin.write("quit\n")
            storm.stdin.flush()
        storm.wait(timeout=30)
        await redis.aclose()
        hub.stop()


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


# -- 5: cluster bus bytes per change ---------------------------------------------------------


def bus_bytes(bus_ports: list[int]) -> int:
    """Bytes received so far on every TCP socket of the cluster bus (ss -ti, loopback)."""
    query = " or ".join(f"sport = :{p} or dport = :{p}" for p in bus_ports)
    out = subprocess.run(["ss", "-tinH", "state", "established", f"( {query} )"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return sum(int(n) for n in re.findall(r"bytes_received:(\d+)", out))


async def cluster_bus(messages: int) -> dict[str, Any]:
    cluster = start_cluster()
    try:
        url = cluster.url
        store = RedisStore(url, key_prefix="bus:", channel=CHANNEL)
        await store.start()
        ports = [n.port + 10000 for n in cluster.nodes]
        # A real change batch (one user, as a connect publishes it), its size as published.
        sample = {"v": 1, "cursor": 1_700_000_000_000, "users": [{
            "id": "user-0000001", "username": "user-0000001", "name": "Name user-0000001",
            "status": "online", "text": "", "at": 1_700_000_000_000}]}  # fmt: skip
        payload = msgpack.packb(sample)
        node = Redis(host="127.0.0.1", port=cluster.nodes[0].port)
        # The shard channel must live on the node we publish to (its slot is served there).
        shard_channel = await own_slot_channel(node)

        async def measure(command: str, channel: str) -> float:
            # Gossip runs all the time: measure it over the same duration and subtract it.
            quiet0 = bus_bytes(ports)
            started = time.monotonic()
            for _ in range(messages):
                await node.execute_command(command, channel, payload)
            took = time.monotonic() - started
            await asyncio.sleep(0.3)  # let the last messages cross the bus
            busy = bus_bytes(ports) - quiet0
            base0 = bus_bytes(ports)
            await asyncio.sleep(took + 0.3)
            gossip = bus_bytes(ports) - base0
            return (busy - gossip) / messages

        publish = await measure("PUBLISH", CHANNEL)
        spublish = await measure("SPUBLISH", shard_channel)
        # And what the hub's scripts publish, end to end: connect + disconnect pairs.
        quiet0 = bus_bytes(ports)
        started = time.monotonic()
        for i in range(messages // 2):
            await store.connect("bus", f"b{i}", Profile(id=f"user-{i:07d}"), "online")
            await store.disconnect("bus", f"b{i}", f"user-{i:07d}", grace=False)
        took = time.monotonic() - started
        await asyncio.sleep(0.3)
        busy = bus_bytes(ports) - quiet0
        base0 = bus_bytes(ports)
        await asyncio.sleep(took + 0.3)
        gossip = bus_bytes(ports) - base0
        scripts = (busy - gossip) / (2 * (messages // 2))
        await node.aclose()
        await store.close()
        return {
            "masters": len(cluster.nodes),
            "payload_b": len(payload),
            "bus_bytes_per_publish": publish,
            "bus_bytes_per_spublish": spublish,
            "bus_bytes_per_hub_change": scripts,
        }
    finally:
        cluster.cleanup()


async def own_slot_channel(node: Redis) -> str:
    """A shard channel whose slot the given cluster node serves (others answer MOVED)."""
    for i in range(10_000):
        name = f"{{hub:b{i}}}:presence"
        try:
            await node.execute_command("SPUBLISH", name, b"probe")
        except ResponseError:
            continue
        return name
    raise RuntimeError("no slot served by the first node")


# -- extrapolation ---------------------------------------------------------------------------


def extrapolate(results: dict[str, Any], online: int, args: argparse.Namespace) -> dict[str, Any]:
    mem = results["memory"]
    ops_plain = results["ops"][0]
    ops_subs = results["ops"][1]
    demand = results["hub"]
    conns_per_user = args.conns_per_user
    # Redis memory for the online users, their extra connections and the offline users
    # still known (a window's worth of index entries, and their hashes).
    memory = online * (mem["memory_per_online_user_b"]
                       + (conns_per_user - 1) * mem["memory_per_extra_connection_b"])  # fmt: skip
    memory += args.known_offline * online * mem["memory_per_offline_user_b"]
    # Script calls per second in steady state, from the churn model (per online user/hour).
    per_user_hour = 2 * args.reconnects_per_hour + args.activity_per_hour + args.status_per_hour
    ops = online * per_user_hour / 3600
    # Each call costs Redis the measured CPU; each visible change also costs a copy of its
    # message per subscribed hub (measured: every op of the second run published one).
    per_sub_us = max(0.0, (ops_subs["redis_cpu_us_per_op"] - ops_plain["redis_cpu_us_per_op"])
                     / ops_subs["subscribers"])  # fmt: skip
    sockets_per_hub = args.sockets_per_hub
    hubs = math.ceil(online * conns_per_user / sockets_per_hub)
    # Visible changes: a reconnect inside the grace changes nothing; assume 1 in 5 does.
    change_rate = online * (args.reconnects_per_hour * 0.2 + args.activity_per_hour
                            + args.status_per_hour) / 3600  # fmt: skip
    scripts_us = ops * ops_plain["redis_cpu_us_per_op"]
    fanout_us = change_rate * hubs * per_sub_us
    redis_cpu = (scripts_us + fanout_us) / 1e6  # cores
    shards_cpu = math.ceil(redis_cpu / args.shard_cpu_budget)
    shards_mem = math.ceil(memory / (args.shard_memory_gb * 2**30))
    # Every hub receives every batch: pub/sub output of Redis, per hub and in total.
    per_hub_bytes = change_rate * (mem["message_single_change_b"] + 40)
    # In a reconnect storm every hub reconnects its sockets as fast as its one core allows
    # (the hub's CPU per reconnect); each reconnect costs Redis its own CPU. So one hub at
    # full speed keeps this share of a Redis core busy, and one shard core carries the
    # inverse in hubs (all storming at once), or the budgeted share of that.
    storm_core_per_hub = demand["redis_cpu_per_reconnect_us"] / demand["hub_cpu_per_reconnect_us"]
    hubs_per_shard_storm = 1 / storm_core_per_hub
    return {
        "online": online,
        "connections": online * conns_per_user,
        "redis_memory_b": memory,
        "script_calls_per_s": ops,
        "visible_changes_per_s": change_rate,
        "hub_processes": hubs,
        "redis_cpu_cores": redis_cpu,
        "redis_cpu_cores_scripts": scripts_us / 1e6,
        "redis_cpu_cores_fanout": fanout_us / 1e6,
        "redis_cpu_us_per_subscriber_copy": per_sub_us,
        "shards_for_cpu": shards_cpu,
        "shards_for_memory": shards_mem,
        "pubsub_bytes_per_s_per_hub": per_hub_bytes,
        "pubsub_bytes_per_s_total": per_hub_bytes * hubs,
        "storm_redis_cores_per_hub": storm_core_per_hub,
        "hubs_per_shard_in_a_storm": hubs_per_shard_storm,
    }


# -- main ------------------------------------------------------------------------------------


def table(results: dict[str, Any], args: argparse.Namespace) -> str:
    m, hub, bus, x = results["memory"], results["hub"], results.get("bus"), results["extrapolation"]
    rows = [
        ("Redis memory per online user (1 connection)", human(m["memory_per_online_user_b"])),
        ("Redis memory per extra connection", human(m["memory_per_extra_connection_b"])),
        ("Redis memory per offline (known) user", human(m["memory_per_offline_user_b"])),
        ("pub/sub message, one change", f"{m['message_single_change_b']} B"),
        (f"pub/sub per change in a batch of ~{m['batch_entries_mean']:.0f}",
         f"{m['batch_bytes_per_change_b']:.0f} B"),
    ]  # fmt: skip
    for op in results["ops"]:
        label = f"connect/disconnect, {op['subscribers']} channel subscribers"
        rows.append((f"{label}: ops/s (1 process)", f"{op['wall_ops_per_s']:,.0f}"))
        rows.append((f"{label}: Redis CPU per op", f"{op['redis_cpu_us_per_op']:.1f} us"))
        rows.append((f"{label}: EVALSHA usec_per_call", f"{op['evalsha_us_per_call']:.1f} us"))
    rows.append(
        (
            "Redis CPU per message copy to one subscriber",
            f"{results['extrapolation']['redis_cpu_us_per_subscriber_copy']:.2f} us",
        )
    )
    rows += [
        (f"one hub: sockets opened per s ({hub['sockets']})", f"{hub['connects_per_s']:,.0f}"),
        ("one hub: reconnects per s (drop all, come back)", f"{hub['reconnects_per_s']:,.0f}"),
        ("one hub: hub CPU per reconnect", f"{hub['hub_cpu_per_reconnect_us']:.0f} us"),
        ("one hub: Redis CPU per reconnect", f"{hub['redis_cpu_per_reconnect_us']:.0f} us"),
        ("one hub storming at one full core: Redis cores", f"{x['storm_redis_cores_per_hub']:.2f}"),
        ("hubs storming at once per Redis core (shard)", f"{x['hubs_per_shard_in_a_storm']:.1f}"),
        (
            f"  ... at the planned {args.shard_cpu_budget:.0%} of a core",
            f"{x['hubs_per_shard_in_a_storm'] * args.shard_cpu_budget:.1f}",
        ),
    ]
    if bus:
        rows += [
            (f"cluster bus per PUBLISH ({bus['masters']} masters, {bus['payload_b']} B payload)",
             f"{bus['bus_bytes_per_publish']:,.0f} B"),
            ("cluster bus per SPUBLISH (no replicas)", f"{bus['bus_bytes_per_spublish']:,.0f} B"),
            ("cluster bus per hub change (connect/disconnect)",
             f"{bus['bus_bytes_per_hub_change']:,.0f} B"),
        ]  # fmt: skip
    rows += [
        (f"{x['online']:,} online users, {args.conns_per_user} connections each", ""),
        ("  Redis memory", human(x["redis_memory_b"])),
        ("  script calls per s (churn model)", f"{x['script_calls_per_s']:,.0f}"),
        ("  visible changes per s", f"{x['visible_changes_per_s']:,.0f}"),
        (f"  hub processes ({args.sockets_per_hub:,} sockets each)", f"{x['hub_processes']}"),
        (
            "  Redis CPU (cores): scripts + copies to hubs",
            f"{x['redis_cpu_cores']:.2f} = {x['redis_cpu_cores_scripts']:.2f} + "
            f"{x['redis_cpu_cores_fanout']:.2f}",
        ),
        ("  shards needed for CPU / memory", f"{x['shards_for_cpu']} / {x['shards_for_memory']}"),
        ("  pub/sub to each hub", f"{human(x['pubsub_bytes_per_s_per_hub'])}/s"),
        ("  pub/sub out of Redis, all hubs", f"{human(x['pubsub_bytes_per_s_total'])}/s"),
    ]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with redis_server() as server:
        print(f"redis-server {server.url}; {args.users:,} users ...", flush=True)
        results["memory"] = await memory_and_bytes(server.url, args.users, args.concurrency)
        print("script cost ...", flush=True)
        results["ops"] = [
            await op_cost(server.url, args.pairs, args.concurrency, 0),
            await op_cost(server.url, args.pairs, args.concurrency, args.subscribers),
        ]
        print(f"one hub, {args.hub_sockets:,} sockets ...", flush=True)
        workdir = Path(os.environ.get("TMPDIR", "/tmp")) / "presence-hub-capacity"
        results["hub"] = await hub_demand(server, args.hub_sockets, workdir)
    if not args.no_cluster:
        print("cluster bus ...", flush=True)
        results["bus"] = await cluster_bus(args.bus_messages)
    results["extrapolation"] = extrapolate(results, args.online, args)
    results["model"] = {k: getattr(args, k) for k in (
        "conns_per_user", "reconnects_per_hour", "activity_per_hour", "status_per_hour",
        "known_offline", "sockets_per_hub", "shard_cpu_budget", "shard_memory_gb")}  # fmt: skip
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=20_000, help="users registered (memory)")
    parser.add_argument("--pairs", type=int, default=20_000, help="connect+disconnect pairs")
    parser.add_argument("--concurrency", type=int, default=64, help="store calls in flight")
    parser.add_argument(
        "--subscribers",
        type=int,
        default=50,
        help="channel subscribers for the second op-cost run (hubs)",
    )
    parser.add_argument("--hub-sockets", type=int, default=4000)
    parser.add_argument("--bus-messages", type=int, default=4000)
    parser.add_argument("--no-cluster", action="store_true", help="skip the cluster bus")
    parser.add_argument("--online", type=int, default=1_000_000)
    # The churn model for the extrapolation (per online user).
    parser.add_argument("--conns-per-user", type=float, default=1.5)
    parser.add_argument(
        "--reconnects-per-hour",
        type=float,
        default=4.0,
        help="socket closes + opens per user per hour (reloads, networks)",
    )
    parser.add_argument(
        "--activity-per-hour",
        type=float,
        default=6.0,
        help="idle/active switches per user per hour",
    )
    parser.add_argument("--status-per-hour", type=float, default=0.5)
    parser.add_argument(
        "--known-offline",
        type=float,
        default=2.0,
        help="offline users still in Redis, per online user",
    )
    parser.add_argument("--sockets-per-hub", type=int, default=20_000)
    parser.add_argument(
        "--shard-cpu-budget",
        type=float,
        default=0.5,
        help="share of one Redis core to plan for (headroom for storms)",
    )
    parser.add_argument("--shard-memory-gb", type=float, default=8.0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    started = time.monotonic()
    results = asyncio.run(run(args))
    print()
    print("$ python bench/capacity.py " + " ".join(sys.argv[1:]))
    print(table(results, args))
    print(f"\n({time.monotonic() - started:.0f} s on {os.cpu_count()} CPUs)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
