"""What a client keeps of counts and member windows, rebuilt from the frames it received,
and what the REST API says of the same room: the two sides the room view tests compare.

:func:`window` replays a client's frames the way the browser library does: a window
``snapshot`` (scope ``{room, range}``) replaces the window and its version ``v``; a
``window`` frame of the same range whose ``v`` is above the one held applies its
operations in order (:func:`hub.model.window.apply`); any other frame is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from hub.model.window import apply
from tests.support.hubproc import ADMIN_HEADERS
from tests.support.inproc import Hub
from tests.support.wsclient import Frame, WsClient


@dataclass
class Window:
    range: tuple[int, int]
    users: list[Frame] = field(default_factory=list)
    version: int = 0
    total: int = 0
    frames: int = 0

    @property
    def ids(self) -> list[str]:
        return [u["id"] for u in self.users]


def window(client: WsClient, room: str) -> Window | None:
    """The window of ``room`` the client holds after every frame it received so far."""
    held: Window | None = None
    for frame in client.frames:
        scope = frame.get("scope")
        if not isinstance(scope, dict) or scope.get("room") != room or "range" not in scope:
            continue
        at = (scope["range"][0], scope["range"][1])
        if frame.get("op") == "snapshot":
            held = Window(at, list(frame["users"]), frame["v"], frame["total"])
        elif (
            frame.get("op") == "window"
            and held is not None
            and held.range == at
            and frame["v"] > held.version
        ):
            held.users = apply(frame["ops"], held.users)
            held.version = frame["v"]
            held.total = frame["total"]
            held.frames += 1
    return held


def counts(client: WsClient, scope: dict[str, Any]) -> Frame | None:
    """The last ``counts`` frame of ``scope`` the client received."""
    found = None
    for frame in client.frames:
        if frame.get("op") == "counts" and frame.get("scope") == scope:
            found = frame
    return found


async def members(hub: Hub, room: str, offset: int, count: int) -> dict[str, Any]:
    """``GET /api/v1/rooms.members`` as the admin."""
    async with httpx.AsyncClient(base_url=hub.url, trust_env=False, timeout=10) as http:
        reply = await http.get("/api/v1/rooms.members", headers=ADMIN_HEADERS,
                               params={"room": room, "offset": offset, "count": count})  # fmt: skip
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def room_counts(hub: Hub, room: str) -> dict[str, Any]:
    """``GET /api/v1/rooms.counts`` as the admin."""
    async with httpx.AsyncClient(base_url=hub.url, trust_env=False, timeout=10) as http:
        reply = await http.get("/api/v1/rooms.counts", headers=ADMIN_HEADERS,
                               params={"room": room})  # fmt: skip
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def shown(entry: Frame) -> tuple[Any, ...]:
    """What a window shows of a member (the fields both sides carry)."""
    return (entry["id"], entry["status"], entry["name"], entry["text"], entry["at"],
            entry.get("lastSeen"))  # fmt: skip
