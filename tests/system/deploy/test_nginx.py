"""The shipped nginx site (deploy/nginx/presence-hub.conf) with the real nginx in front of
two hubs on one Redis: it loads inside ``http {}``, carries websockets and REST, and a
SIGTERM drain of one hub moves that hub's clients to the other, each in a single reconnect
(the draining hub answers the handshake with 503 and nginx passes it on), without an
offline flap, while REST (and /readyz) answers from the hub that is not draining.

nginx runs in the foreground (``daemon off``) with its own prefix, pid, temp and log files
in this test's temporary directory, on a free port; the site is copied there with its
upstream servers, listen address and log path rewritten. A missing nginx fails the test.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import eventually
from tests.support.faults import RawWsClient, close_all
from tests.support.hubproc import (
    ADMIN_HEADERS,
    HubProcess,
    free_port,
    rc_headers,
    start_hub,
    user_token,
)
from tests.support.wsclient import WsClient, connect_user

pytestmark = [pytest.mark.redis, pytest.mark.slow]

SITE = Path(__file__).resolve().parents[3] / "deploy" / "nginx" / "presence-hub.conf"
NGINX = "/usr/sbin/nginx"
START_TIMEOUT_S = 10.0
CLIENTS = 12
GRACE_S = 5.0


def nginx_binary() -> str:
    path = shutil.which("nginx") or (NGINX if Path(NGINX).exists() else None)
    if path is None:
        raise RuntimeError("nginx not found: the deploy tests need it (apt-get install nginx)")
    return path


def site_for(upstreams: list[int], listen: int, logs: Path) -> str:
    """The shipped site with this test's upstream ports, listen port and log path."""
    text = SITE.read_text()
    servers = [m for m in re.finditer(r"^\s*server 127\.0\.0\.1:\d+ (.*);$", text, re.M)]
    assert servers, "the shipped site has no upstream servers to rewrite"
    options = servers[0].group(1)
    block = "".join(f"    server 127.0.0.1:{port} {options};\n" for port in upstreams)
    text = text[: servers[0].start()] + "\n" + block.rstrip("\n") + text[servers[-1].end() :]
    text, listens = re.subn(r"^(\s*)listen 80;", rf"\g<1>listen 127.0.0.1:{listen};", text,
                            flags=re.M)  # fmt: skip
    assert listens == 1, "the shipped site's listen directive changed; update this test"
    text, logs_set = re.subn(r"/var/log/nginx/presence-hub\.log", str(logs / "access.log"), text)
    assert logs_set == 1
    return text


@dataclass
class Nginx:
    prefix: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def main_conf(self) -> Path:
        """A minimal nginx.conf that includes the site inside http {}, as Debian does."""
        p = self.prefix
        for sub in ("temp", "logs"):
            (p / sub).mkdir(exist_ok=True)
            (p / sub).chmod(0o777)  # workers may run as another user when started by root
        conf = p / "nginx.conf"
        conf.write_text(
            f"daemon off;\nworker_processes 1;\npid {p}/nginx.pid;\n"
            f"error_log {p}/logs/error.log info;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            f"    client_body_temp_path {p}/temp/body;\n    proxy_temp_path {p}/temp/proxy;\n"
            f"    fastcgi_temp_path {p}/temp/fastcgi;\n    uwsgi_temp_path {p}/temp/uwsgi;\n"
            f"    scgi_temp_path {p}/temp/scgi;\n    access_log off;\n"
            f"    include {p}/presence-hub.conf;\n"
            "}\n"
        )
        return conf

    def check(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [nginx_binary(), "-t", "-p", str(self.prefix), "-c", str(self.main_conf()),
             "-e", str(self.prefix / "logs" / "error.log")],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip

    def start(self) -> Nginx:
        conf = self.main_conf()
        with (self.prefix / "logs" / "stderr.log").open("ab") as log:
            self.process = subprocess.Popen(
                [nginx_binary(), "-p", str(self.prefix), "-c", str(conf),
                 "-e", str(self.prefix / "logs" / "error.log")],
                stdout=log, stderr=log,
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = (self.prefix / "logs" / "error.log").read_text(errors="replace")
                raise RuntimeError(f"nginx exited during start-up:\n{error[-2000:]}")
            try:
                httpx.get(self.url + "/healthz", timeout=1, trust_env=False)
                return self
            except httpx.HTTPError:
                time.sleep(0.02)
        raise RuntimeError("nginx did not answer in time")

    def access_log(self) -> list[str]:
        path = self.prefix / "logs" / "access.log"
        return path.read_text().splitlines() if path.exists() else []

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.send_signal(signal.SIGQUIT)  # graceful: workers finish, then exit
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def write_site(prefix: Path, upstreams: list[int], listen: int) -> None:
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    (prefix / "presence-hub.conf").write_text(site_for(upstreams, listen, prefix / "logs"))


def test_the_shipped_site_loads_inside_http(tmp_path: Path) -> None:
    """``nginx -t`` with the site included in http {} (it failed: "log_format" directive
    is not allowed here, since it sat in server {})."""
    write_site(tmp_path, [free_port(), free_port()], free_port())
    result = Nginx(tmp_path, 0).check()
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@pytest.fixture
def two_hubs(tmp_path: Path, redis_url: str, key_prefix: str) -> Iterator[list[HubProcess]]:
    env = {
        "HUB_STORE": redis_url,
        "HUB_KEY_PREFIX": key_prefix,
        "HUB_CHANNEL": f"{key_prefix}presence",
        "HUB_OFFLINE_GRACE_S": str(GRACE_S),
    }
    hubs: list[HubProcess] = []
    try:
        for name in ("hubA", "hubB"):
            hubs.append(start_hub(tmp_path, {**env, "HUB_NODE_ID": name}, name=name))
        yield hubs
    finally:
        for hub in hubs:
            hub.stop()
    for hub in hubs:
        hub.assert_no_tracebacks()


@pytest.fixture
def nginx(tmp_path: Path, two_hubs: list[HubProcess]) -> Iterator[Nginx]:
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    port = free_port()
    write_site(prefix, [hub.port for hub in two_hubs], port)
    server = Nginx(prefix, port).start()
    try:
        yield server
    finally:
        server.stop()


def node_of(client: WsClient) -> str:
    """The hub a client landed on: connection ids start with the node id."""
    assert client.ready is not None
    return str(client.ready["conn"]).split(".", 1)[0]


async def reconnect_once(url: str, token: str) -> WsClient:
    """One reconnect, as a client does after a 1012: open and hello, no second try. It
    lands on a live hub only if nginx moved it there (a draining hub answers the handshake
    with 503 before any upgrade, and proxy_next_upstream passes it on)."""
    client = await WsClient.open(url)
    try:
        await client.hello(token, timeout=5)
    except BaseException:
        await client.close()
        raise
    return client


async def test_websockets_and_rest_through_nginx_and_a_drain_moves_clients(
    two_hubs: list[HubProcess], nginx: Nginx
) -> None:
    hub_a, hub_b = two_hubs
    users = [f"n-{uuid.uuid4().hex[:8]}" for _ in range(CLIENTS)]
    tokens = {u: user_token(u) for u in users}
    # The watcher is on hub B directly: it must see no one go offline.
    watcher = await connect_user(hub_b.ws_url, user_token("watcher-" + users[0]),
                                 subscribe=True)  # fmt: skip
    clients: dict[str, WsClient] = {}
    moved: list[WsClient] = []
    holder: RawWsClient | None = None
    async with httpx.AsyncClient(base_url=nginx.url, trust_env=False, timeout=10) as http:
        try:
            for user in users:
                clients[user] = await connect_user(nginx.ws_url, tokens[user])
            landed = {node_of(c) for c in clients.values()}
            assert landed == {"hubA", "hubB"}, f"least_conn spread clients over {landed}"

            # REST through nginx: a user's own presence, and the admin's listing.
            reply = await http.get("/api/v1/users.presence", headers=ADMIN_HEADERS)
            assert reply.status_code == 200, reply.text
            reply = await http.get("/api/v1/users.getPresence", params={"userId": users[0]},
                                   headers=rc_headers(users[0]))  # fmt: skip
            assert reply.status_code == 200 and reply.json()["presence"] == "online"
            for user in users:
                await watcher.wait_status(user, "online")
            # A status change through nginx reaches the watcher on hub B.
            await clients[users[0]].request({"op": "status", "status": "busy"})
            await watcher.wait_status(users[0], "busy")
            await clients[users[0]].request({"op": "status", "status": "online"})
            await watcher.wait_status(users[0], "online")

            on_a = [u for u, c in clients.items() if node_of(c) == "hubA"]
            mark = watcher.mark()
            log_mark = len(nginx.access_log())
            answers: list[int] = []
            stop = asyncio.Event()

            async def poll_rest() -> None:
                while not stop.is_set():
                    for path in ("/readyz", "/api/v1/users.presence"):
                        reply = await http.get(path, headers=ADMIN_HEADERS)
                        answers.append(reply.status_code)
                    await asyncio.sleep(0.005)

            # A client of hub A that answers no close handshake holds A's drain open for
            # its bound (DRAIN_CLOSE_S): the reconnects below reach A's handshake while it
            # drains, whatever the machine's speed.
            holder = await RawWsClient.open("127.0.0.1", hub_a.port)
            await holder.send({"op": "hello", "token": user_token(f"holder-{users[0]}")})
            ready = await asyncio.wait_for(holder.read_frame(), 10)
            assert ready is not None and ready["op"] == "ready", ready
            # Three pollers, so some call lands on hub A in the moment it drains.
            pollers = [asyncio.create_task(poll_rest()) for _ in range(3)]
            await asyncio.sleep(0.05)  # a few polls before the drain (not synchronisation)
            drained_at = time.monotonic()
            assert hub_a.process is not None
            hub_a.process.send_signal(signal.SIGTERM)

            async def back(user: str) -> WsClient:
                old = clients[user]
                code = await old.wait_closed(timeout=15)
                assert code == 1012, f"{user} closed with {code}, not 1012"
                # least_conn prefers hub A now (its sockets are gone): the single attempt
                # reaches hub A's handshake while it drains.
                return await reconnect_once(nginx.ws_url, tokens[user])

            results = await asyncio.gather(*(back(u) for u in on_a), return_exceptions=True)
            moved = [r for r in results if isinstance(r, WsClient)]
            failed = [r for r in results if not isinstance(r, WsClient)]
            assert not failed, f"{len(failed)} of {len(on_a)} single reconnects failed: {failed}"
            took = time.monotonic() - drained_at
            assert all(node_of(c) == "hubB" for c in moved)
            assert took < GRACE_S, f"clients took {took:.2f} s to move, past the grace"
            exit_code = await asyncio.to_thread(hub_a.process.wait, 20)
            assert exit_code == 0
            await asyncio.sleep(0.2)  # polls after hub A is gone (not synchronisation)
            stop.set()
            await asyncio.gather(*pollers)

            # No offline flap: the watcher saw none of the moved users go offline.
            for user in on_a:
                flaps = [e for e in watcher.entries(user, after=mark) if e["status"] != "online"]
                assert flaps == [], f"{user} flapped: {flaps}"
            assert not watcher.closed

            # REST kept answering through nginx: never a 5xx, /readyz included.
            assert answers and all(code == 200 for code in answers), sorted(set(answers))
            # Whatever reached hub A while it drained answered 503 and nginx passed the
            # request on to hub B; once A was gone everything went to B.
            lines = [ln for ln in nginx.access_log()[log_mark:] if '"GET /ws"' not in ln]
            port_a, port_b = f"127.0.0.1:{hub_a.port}", f"127.0.0.1:{hub_b.port}"
            for line in lines:
                upstream = re.search(r"upstream=(\S.*?) upstream_status=(.*)$", line)
                assert upstream, line
                tried = [a.strip() for a in upstream.group(1).split(",")]
                statuses = [s.strip() for s in upstream.group(2).split(",")]
                if tried[-1] == port_a:
                    assert statuses[-1] == "200", line
                for address, status in zip(tried, statuses, strict=True):
                    if address == port_a and status == "503":
                        assert tried[-1] == port_b and statuses[-1] == "200", line
            steered = [ln for ln in lines if f"{port_a}, {port_b}" in ln]
            if not steered:
                # The reconnects' 503s can mark hub A failed (max_fails) before a REST call
                # reaches it: then the steering shows on the websockets, which nginx logs
                # when they end.
                await close_all(moved)

                async def passed_on() -> list[str]:
                    ws = [ln for ln in nginx.access_log()[log_mark:] if '"GET /ws"' in ln]
                    return [ln for ln in ws if f"upstream={port_a}, {port_b} " in ln]

                steered = await eventually(passed_on)
            assert steered, "no call reached hub A while it drained; nothing was steered"
            print(f"\nnginx: {len(on_a)} clients moved from the draining hub in {took:.2f} s; "
                  f"{len(answers)} REST answers through nginx, all 200; "
                  f"{len(steered)} passed on from hub A to hub B")  # fmt: skip
        finally:
            if holder is not None:
                await holder.close()
            await close_all([watcher, *clients.values(), *moved])


async def test_one_reconnect_during_a_drain_is_passed_on_to_the_live_hub(
    two_hubs: list[HubProcess], nginx: Nginx
) -> None:
    """SIGTERM to hub A: each of its clients reconnects once through nginx and lands on hub
    B. least_conn sends the first reconnect to A (it has no sockets left), whose handshake
    answers 503 before any upgrade, and nginx passes it on (503, then 101 from B)."""
    hub_a, hub_b = two_hubs
    users = [f"d-{uuid.uuid4().hex[:8]}" for _ in range(CLIENTS)]
    tokens = {u: user_token(u) for u in users}
    clients = {u: await connect_user(nginx.ws_url, tokens[u]) for u in users}
    moved: list[WsClient] = []
    holder = await RawWsClient.open("127.0.0.1", hub_a.port)
    try:
        on_a = [u for u, c in clients.items() if node_of(c) == "hubA"]
        assert on_a, "least_conn put no client on hub A"
        # A client that answers no close handshake holds A's drain open (DRAIN_CLOSE_S),
        # so the reconnects reach A while it drains, whatever the machine's speed.
        await holder.send({"op": "hello", "token": user_token(f"holder-{users[0]}")})
        ready = await asyncio.wait_for(holder.read_frame(), 10)
        assert ready is not None and ready["op"] == "ready", ready
        log_mark = len(nginx.access_log())
        assert hub_a.process is not None
        hub_a.process.send_signal(signal.SIGTERM)

        async def back(user: str) -> WsClient:
            assert await clients[user].wait_closed(timeout=15) == 1012
            return await reconnect_once(nginx.ws_url, tokens[user])

        results = await asyncio.gather(*(back(u) for u in on_a), return_exceptions=True)
        moved = [r for r in results if isinstance(r, WsClient)]
        failed = [r for r in results if not isinstance(r, WsClient)]
        assert not failed, f"{len(failed)} of {len(on_a)} single reconnects failed: {failed}"
        assert all(node_of(c) == "hubB" for c in moved)
        # nginx logs a websocket when it ends: close the moved ones, then read the log.
        await close_all(moved)
        port_a, port_b = f"127.0.0.1:{hub_a.port}", f"127.0.0.1:{hub_b.port}"

        async def passed_on() -> list[str]:
            ws = [ln for ln in nginx.access_log()[log_mark:] if '"GET /ws"' in ln]
            return [ln for ln in ws if f"upstream={port_a}, {port_b} " in ln]

        for line in await eventually(passed_on):
            assert line.endswith("upstream_status=503, 101"), line
    finally:
        await holder.close()
        await close_all([*clients.values(), *moved])
