"""REST request cost of two hub builds side by side: this tree and another (``--other``).

A benchmark, not a test. It starts one hub from this tree and one from ``--other`` (a
directory holding another version's ``hub`` package, e.g. ``git archive <commit> hub``),
registers ``--users`` users with a status, then sends the same requests to both in
alternation, round after round (so load from elsewhere hits both alike), and prints each
build's median time per request and the ratio. Requests: ``users.getPresence``,
``users.setStatus``, ``users.presence`` (everyone), CometChat's ``/v3/users`` and Agora's
batch status.

    git archive 7cf6d8d hub | tar -x -C /tmp/old && python bench/rest.py --other /tmp/old
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from tests.support.hubproc import ADMIN_HEADERS, TEST_ADMIN_KEY, HubProcess, rc_headers

REQUESTS = {
    "users.getPresence": ("GET", "/api/v1/users.getPresence?userId=u0", "rc", None),
    "users.setStatus": ("POST", "/api/v1/users.setStatus", "rc",
                        {"status": "busy", "message": "in a meeting"}),
    "users.presence": ("GET", "/api/v1/users.presence", "rc", None),
    "/v3/users": ("GET", "/v3/users?perPage=100", "cc", None),
    "batch/status": ("POST", "/o/a/users/batch/status", "admin",
                     {"usernames": [f"u{i}" for i in range(20)]}),
}  # fmt: skip


def start(log_dir: Path, pythonpath: str) -> HubProcess:
    env = {"PYTHONPATH": pythonpath, "HUB_LOG_LEVEL": "warning", "HUB_RATE_PER_S": "100000"}
    return HubProcess(log_path=log_dir / f"hub-{abs(hash(pythonpath))}.log", env=env).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--other", required=True, help="directory holding the other hub")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    here = str(Path(__file__).resolve().parent.parent)
    with tempfile.TemporaryDirectory() as tmp:
        hubs = {"this": start(Path(tmp), here), "other": start(Path(tmp), args.other)}
        try:
            clients = {k: httpx.Client(base_url=h.url, timeout=30, trust_env=False)
                       for k, h in hubs.items()}  # fmt: skip
            for client in clients.values():
                for i in range(args.users):
                    client.post("/o/a/users", json={"username": f"u{i}", "password": "p"},
                                headers=ADMIN_HEADERS)  # fmt: skip
                    client.post("/api/v1/users.setStatus", json={"status": "away"},
                                headers=rc_headers(f"u{i}"))  # fmt: skip
            headers = {"rc": rc_headers("u0"), "cc": {"apikey": TEST_ADMIN_KEY},
                       "admin": ADMIN_HEADERS}  # fmt: skip
            times: dict[tuple[str, str], list[float]] = {}
            for _ in range(args.rounds):
                for name, (method, path, auth, body) in REQUESTS.items():
                    for build, client in clients.items():
                        started = time.perf_counter()
                        response = client.request(method, path, json=body, headers=headers[auth])
                        took = time.perf_counter() - started
                        assert response.status_code == 200, (build, name, response.text[:200])
                        times.setdefault((build, name), []).append(took)
        finally:
            for hub in hubs.values():
                hub.stop()
    print(f"{'request':<20} {'this (ms)':>10} {'other (ms)':>11} {'this/other':>11}")
    for name in REQUESTS:
        this = statistics.median(times[("this", name)]) * 1000
        other = statistics.median(times[("other", name)]) * 1000
        print(f"{name:<20} {this:>10.3f} {other:>11.3f} {this / other:>11.2f}")


if __name__ == "__main__":
    main()
