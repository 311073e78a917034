"""The Pusher side of the load generators: a client socket, subscriptions, the HTTP API.

A client connects as pusher-js does (``/app/<key>?protocol=7&client=...&version=...``),
reads its ``socket_id`` from ``pusher:connection_established`` and answers the server's
``pusher:ping`` with ``pusher:pong``. A presence subscription is signed as a Pusher server
SDK's auth endpoint signs it (``<key>:HMAC-SHA256(secret, socket_id:channel:channel_data)``)
and events are triggered through ``POST /apps/<id>/events``, signed as the SDKs sign their
requests, over a few keep-alive HTTP/1.1 connections so that the client is cheap. The
signatures are the ones in ``hub.model.pusher_auth``; the server checks them whichever
server it is.
"""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import urlencode

from loadgen import Sink, WsClient, connect
from servers import APP_ID, APP_KEY, APP_SECRET

from hub.model.pusher_auth import body_md5, channel_auth, sign_request

PATH = f"/app/{APP_KEY}?protocol=7&client=presence-hub-bench&version=1.0"
ESTABLISHED = b'{"event":"pusher:connection_established"'
PONG = b'{"event":"pusher:pong","data":{}}'


def is_ping(payload: bytes) -> bool:
    return b'"pusher:ping"' in payload[:40]


async def open_socket(
    host: str, port: int, sink: Sink, timeout: float = 15
) -> tuple[WsClient, str]:
    """A connected Pusher socket and its ``socket_id``."""
    client = await connect(host, port, PATH, sink, timeout, first=ESTABLISHED)
    assert client.first is not None
    frame = json.loads(await asyncio.wait_for(client.first, timeout))
    socket_id: str = json.loads(frame["data"])["socket_id"]
    return client, socket_id


def subscribe(channel: str) -> bytes:
    """``pusher:subscribe`` of a public channel."""
    return json.dumps({"event": "pusher:subscribe", "data": {"channel": channel}}).encode()


def subscribe_presence(channel: str, socket_id: str, user_id: str) -> bytes:
    """``pusher:subscribe`` of a presence channel, with the auth an app's endpoint returns."""
    channel_data = json.dumps({"user_id": user_id})
    auth = channel_auth(APP_KEY, APP_SECRET, socket_id, channel, channel_data)
    data = {"channel": channel, "auth": auth, "channel_data": channel_data}
    return json.dumps({"event": "pusher:subscribe", "data": data}).encode()


def signed_event(channel: str, name: str, data: str) -> tuple[str, bytes]:
    """The request target and body of ``POST /apps/<id>/events``, signed."""
    body = json.dumps({"name": name, "channels": [channel], "data": data}).encode()
    path = f"/apps/{APP_ID}/events"
    params = {
        "auth_key": APP_KEY,
        "auth_timestamp": str(int(time.time())),
        "auth_version": "1.0",
        "body_md5": body_md5(body),
    }
    params["auth_signature"] = sign_request(APP_SECRET, "POST", path, params)
    return f"{path}?{urlencode(params)}", body


class HttpConnection:
    """One keep-alive HTTP/1.1 connection: one request at a time, the answer read whole."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, target: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(
            f"POST {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            answer = bytearray()
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                answer += chunk[:-2]
        else:
            answer = bytearray(await self.reader.readexactly(int(headers.get("content-length", 0))))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, bytes(answer)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None
