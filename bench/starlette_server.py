"""The framework floor for ``bench/fanout.py``'s idle-memory row: Starlette under uvicorn.

The same stack and uvicorn settings as ``presence-hub serve`` (``hub/ops/server.py``), with an
endpoint that does nothing but accept, answer ``{"op": "sub"}`` with an empty snapshot and
wait for the next frame. Its RSS per idle connection is what any websocket costs on this
stack before the hub's own code (session, outbox, store, subscription) adds anything.

Run: ``python bench/starlette_server.py --port 8766``.
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

EMPTY_SNAPSHOT = '{"op":"snapshot","scope":{"all":true},"full":true,"users":[],"cursor":0}'


async def endpoint(ws: WebSocket) -> None:
    await ws.accept()
    try:
        while True:
            text = await ws.receive_text()
            if '"sub"' in text:
                await ws.send_text(EMPTY_SNAPSHOT)
    except WebSocketDisconnect:
        pass


app = Starlette(routes=[WebSocketRoute("/ws", endpoint)])

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8766)
    args = ap.parse_args()
    # as hub/ops/server.py configures uvicorn
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        ws_max_size=64 * 1024,
        log_config=None,
        log_level="warning",
        lifespan="on",
    )
