"""Real ``redis-server`` processes for tests: one server, or a three-master cluster (with
one replica per master when asked, for failover tests).

Each server runs from the ``redis-server`` on PATH, on a free port (never 6379), in its own
temporary directory, with persistence off (``--save "" --appendonly no``). Start-up is
confirmed by polling PING against a deadline, never by sleeping. ``restart()`` brings a
server back EMPTY on the same port, which is what fault tests need: the store must notice
the lost data (heartbeat answers False) and reload its scripts on its own.

When ``redis-server`` or ``redis-cli`` is missing, the helpers raise: a test that needs
Redis must fail loudly, never skip.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

#: How long a server gets to answer PING, or a cluster to report ``cluster_state:ok``.
START_TIMEOUT_S = 20.0
#: Pause between two polls (a poll interval, not a synchronisation sleep).
POLL_S = 0.01
#: The port a developer's own Redis uses; tests stay away from it.
RESERVED_PORTS = frozenset({6379, 16379})


class RedisServerError(RuntimeError):
    """A test Redis could not be started; the message says what is missing or failed."""


def binary(name: str) -> str:
    """The full path of ``name`` on PATH, or raise (tests need a real Redis, no skipping)."""
    path = shutil.which(name)
    if path is None:
        raise RedisServerError(
            f"{name} not found on PATH: the store tests need a real Redis "
            f"(install redis-server, e.g. apt-get install redis-server)"
        )
    return path


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(*, with_bus: bool = False) -> int:
    """A port nobody listens on (and, for cluster nodes, its bus port ``port + 10000`` too)."""
    for _ in range(1000):
        # A random pick below 55000 leaves room for the cluster bus port.
        port = random.randint(20000, 54999)
        if port in RESERVED_PORTS:
            continue
        if _port_free(port) and (not with_bus or _port_free(port + 10000)):
            return port
    raise RedisServerError("no free TCP port found for a test redis-server")


def _command(port: int, *args: str, timeout: float = 1.0) -> bytes:
    """Send one RESP command over a fresh socket and return the raw reply."""
    payload = f"*{len(args)}\r\n".encode()
    for arg in args:
        data = arg.encode()
        payload += b"$%d\r\n%s\r\n" % (len(data), data)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        reply = b""
        while not reply.endswith(b"\r\n") or _incomplete(reply):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    return reply


def _incomplete(reply: bytes) -> bool:
    """True while a bulk-string reply has not fully arrived."""
    if not reply.startswith(b"$"):
        return False
    head, _, rest = reply.partition(b"\r\n")
    size = int(head[1:])
    return size >= 0 and len(rest) < size + 2


def _answers_ping(port: int) -> bool:
    try:
        return _command(port, "PING", timeout=0.5).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisServer:
    """One ``redis-server`` process; ``start`` / ``stop`` / ``restart`` (empty, same port)."""

    port: int = 0
    cluster: bool = False
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="hub-redis-")))
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self, *args: str) -> bytes:
        """One command on a throwaway socket (CLIENT KILL, INFO ...), raw RESP reply."""
        return _command(self.port, *args)

    def start(self) -> RedisServer:
        """Start on ``port``, or on a free port when it is 0 (retrying if another process
        takes the port between the check and the bind)."""
        if self.process is not None:
            raise RedisServerError(f"redis-server on port {self.port} is already running")
        if self.port:
            self._start()
            return self
        attempts = 5
        for attempt in range(attempts):
            self.port = free_port(with_bus=self.cluster)
            try:
                self._start()
                break
            except RedisServerError:
                if attempt == attempts - 1:
                    raise
        return self

    def _start(self) -> None:
        if self.port in RESERVED_PORTS:
            raise RedisServerError(f"port {self.port} is reserved for a developer's Redis")
        args = [
            binary("redis-server"),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--logfile", "redis.log",
            "--daemonize", "no",
        ]  # fmt: skip
        if self.cluster:
            # A fresh nodes.conf per start: a restarted node must not rejoin half-configured.
            (self.workdir / "nodes.conf").unlink(missing_ok=True)
            args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                     "--cluster-node-timeout", "2000"]  # fmt: skip
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.workdir
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                log = self.workdir / "redis.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                self.process = None
                raise RedisServerError(
                    f"redis-server on port {self.port} exited during start-up:\n{tail}"
                )
            if _answers_ping(self.port):
                return
            time.sleep(POLL_S)
        self.stop()
        raise RedisServerError(f"redis-server on port {self.port} did not answer PING in time")

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL); the port is free when this returns."""
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def kill(self) -> None:
        """kill -9: no shutdown, no goodbye to clients or the cluster bus."""
        process, self.process = self.process, None
        if process is None:
            return
        process.kill()
        process.wait(timeout=10)

    def info(self, section: str = "") -> dict[str, str]:
        """``INFO [section]`` as a map of its ``key:value`` lines."""
        raw = self.command("INFO", section) if section else self.command("INFO")
        out: dict[str, str] = {}
        for line in raw.decode(errors="replace").splitlines():
            key, sep, value = line.partition(":")
            if sep and not key.startswith("#"):
                out[key.strip()] = value.strip()
        return out

    def client_list(self) -> list[dict[str, str]]:
        """``CLIENT LIST``: one map of ``field=value`` per client connection."""
        raw = self.command("CLIENT", "LIST").decode(errors="replace")
        return [dict(f.split("=", 1) for f in line.split() if "=" in f)
                for line in raw.splitlines()[1:] if "=" in line]  # fmt: skip

    def restart(self) -> RedisServer:
        """Stop and start again on the same port, with no data (persistence is off)."""
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class ClusterServers:
    """Three masters (all 16384 slots assigned), each with ``replicas`` replicas."""

    nodes: list[RedisServer] = field(default_factory=list)
    replicas: int = 0

    @property
    def url(self) -> str:
        """Every node that runs, masters first (a client's start-up list)."""
        running = [node for node in self.nodes if node.process is not None]
        return "redis+cluster://" + ",".join(node.address for node in running)

    def masters(self) -> list[RedisServer]:
        """The running nodes that are masters now (a promoted replica is one)."""
        return [n for n in self.nodes if n.process is not None
                and n.info("replication").get("role") == "master"]  # fmt: skip

    def replicas_of(self, master: RedisServer) -> list[RedisServer]:
        out = []
        for node in self.nodes:
            if node is master or node.process is None:
                continue
            info = node.info("replication")
            if info.get("role") == "slave" and info.get("master_port") == str(master.port):
                out.append(node)
        return out

    def wait_promoted(self, dead: RedisServer, timeout: float = 60.0) -> float:
        """Poll until every running node reports ``cluster_state:ok`` with all slots
        served and a replica of ``dead`` is a master; the monotonic time it was seen."""
        deadline = time.monotonic() + timeout
        infos: list[bytes] = []
        while time.monotonic() < deadline:
            running = [n for n in self.nodes if n.process is not None]
            infos = [n.command("CLUSTER", "INFO") for n in running]
            ok = all(b"cluster_state:ok" in i and b"cluster_slots_ok:16384" in i for i in infos)
            if ok and len(self.masters()) == 3:
                return time.monotonic()
            time.sleep(POLL_S * 5)
        raise RedisServerError(f"no replica of port {dead.port} was promoted: {infos!r}")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()


def start_server() -> RedisServer:
    """A standalone ``redis-server`` on a free port, answering PING."""
    return RedisServer().start()


def start_cluster(size: int = 3, *, replicas: int = 0) -> ClusterServers:
    """``size`` masters (and ``replicas`` replicas each) joined by ``redis-cli --cluster
    create``; returns once every node sees the whole cluster and every replica is in sync."""
    cli = binary("redis-cli")
    cluster = ClusterServers(replicas=replicas)
    total = size * (1 + replicas)
    try:
        for _ in range(total):
            cluster.nodes.append(RedisServer(cluster=True).start())
        result = subprocess.run(
            [cli, "--cluster", "create", *(n.address for n in cluster.nodes),
             "--cluster-replicas", str(replicas), "--cluster-yes"],
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RedisServerError(
                "redis-cli --cluster create failed:\n"
                + result.stdout.decode(errors="replace")
                + result.stderr.decode(errors="replace")
            )
        _wait_cluster_ok(cluster, total)
        if replicas:
            _wait_replicas_synced(cluster, size)
            # Masters first: they are the start-up nodes clients try first.
            masters = cluster.masters()
            cluster.nodes = masters + [n for n in cluster.nodes if n not in masters]
    except BaseException:
        cluster.cleanup()
        raise
    return cluster


def _wait_replicas_synced(cluster: ClusterServers, masters: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        infos = [node.info("replication") for node in cluster.nodes]
        synced = [i for i in infos if i.get("role") == "slave"
                  and i.get("master_link_status") == "up"]  # fmt: skip
        if (
            len([i for i in infos if i.get("role") == "master"]) == masters
            and len(synced) == len(cluster.nodes) - masters
        ):
            return
        time.sleep(POLL_S)
    raise RedisServerError("the test cluster's replicas did not sync in time")


def _wait_cluster_ok(cluster: ClusterServers, size: int) -> None:
    """Every node must see the whole cluster: state ok, all slots, all nodes."""
    want = (b"cluster_state:ok", b"cluster_slots_ok:16384", b"cluster_known_nodes:%d" % size)
    deadline = time.monotonic() + START_TIMEOUT_S
    infos: list[bytes] = []
    while time.monotonic() < deadline:
        infos = [node.command("CLUSTER", "INFO") for node in cluster.nodes]
        if all(all(w in info for w in want) for info in infos):
            return
        time.sleep(POLL_S)
    raise RedisServerError(f"the test cluster did not reach cluster_state:ok: {infos!r}")
