"""The ceiling for ``bench/fanout.py``: a minimal ``websockets`` broadcast server.

No auth, no store, no coalescing, no backpressure policy: a client that sends
``{"op": "sub"}`` joins the subscriber set; a client that sends
``{"op": "status", "id": ..., "status": ..., "text": ...}`` has the change broadcast at once,
with ``websockets.broadcast``, to every subscriber, in the same JSON shape as the hub's
``delta`` frame (one user per frame). Any other frame (``hello``, ``ping``) is ignored.

Run: ``python bench/plain_server.py --port 8765``. Prints ``ready`` once listening.
It uses uvloop when installed, as uvicorn does for the hub, so both run on the same loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time

import websockets
from websockets.asyncio.server import ServerConnection, serve

SUBSCRIBERS: set[ServerConnection] = set()
SCOPE_ALL = {"all": True}
EMPTY_SNAPSHOT = '{"op":"snapshot","scope":{"all":true},"full":true,"users":[],"cursor":0}'


async def handler(ws: ServerConnection) -> None:
    try:
        async for message in ws:
            frame = json.loads(message)
            op = frame.get("op")
            if op == "status":
                at = time.time_ns() // 1_000_000
                uid = str(frame.get("id", ""))
                user = {
                    "id": uid,
                    "username": uid,
                    "name": uid,
                    "status": frame.get("status", "online"),
                    "text": frame.get("text", ""),
                    "at": at,
                }
                payload = json.dumps(
                    {"op": "delta", "scope": SCOPE_ALL, "users": [user], "cursor": at},
                    separators=(",", ":"),
                    ensure_ascii=False,
                )
                websockets.broadcast(SUBSCRIBERS, payload)
            elif op == "sub":
                SUBSCRIBERS.add(ws)
                await ws.send(EMPTY_SNAPSHOT)
    except websockets.ConnectionClosed:
        pass
    finally:
        SUBSCRIBERS.discard(ws)


async def main(host: str, port: int) -> None:
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(handler, host, port, compression=None, backlog=2048, max_queue=64):
        print("ready", flush=True)
        await stop


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.run(main(args.host, args.port))
    except ImportError:
        asyncio.run(main(args.host, args.port))
