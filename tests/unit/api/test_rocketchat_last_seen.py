"""``users.setStatus`` with ``expiresAt`` and ``lastSeen``, and the ``lastSeen`` of
``users.getPresence``, against a real hub (memory store, no offline grace)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from tests.support.hubproc import rc_headers, user_token
from tests.support.inproc import inproc_hub_fixture
from tests.support.wsclient import connect_user

hub = inproc_hub_fixture({"HUB_OFFLINE_GRACE_S": "0"})
SET_STATUS = "/api/v1/users.setStatus"
GET_PRESENCE = "/api/v1/users.getPresence"


def uid(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{ms % 1000:03d}Z"
    )


def clock_ms() -> int:
    return time.time_ns() // 1_000_000


async def get_presence(http: httpx.AsyncClient, user: str) -> dict:
    response = await http.get(GET_PRESENCE, params={"userId": user},
                              headers=rc_headers(uid("caller")))  # fmt: skip
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_set_status_with_expires_at_expires_back_to_online(hub, http, watcher):
    """``expiresAt`` (ISO 8601): entries carry it as ``until`` ms; at that time the status
    returns to online and the message clears, as a delta."""
    user = uid("meeting")
    begin = watcher.mark()
    async with await connect_user(hub.ws_url, user_token(user)):
        await watcher.wait_status(user, "online", after=begin)  # the connect, seen
        start = watcher.mark()
        until = clock_ms() + 1_500
        response = await http.post(
            SET_STATUS,
            json={"status": "busy", "message": "In a meeting", "expiresAt": iso(until)},
            headers=rc_headers(user),
        )
        assert response.status_code == 200 and response.json() == {"success": True}
        busy = await watcher.wait_status(user, "busy", after=start)
        assert busy["until"] == until
        back = await watcher.wait_status(user, "online", after=start, timeout=15)
        assert (back["text"], "until" in back) == ("", False)
        assert until <= back["at"] < until + 1_000


@pytest.mark.parametrize(
    ("payload", "needle"),
    [({"status": "busy", "expiresAt": "tomorrow"}, "expiresAt must be an ISO 8601 time"),
     ({"status": "busy", "expiresAt": 1_900_000_000_000}, "expiresAt: Expected `str | null`"),
     ({"status": "busy", "expiresAt": "2001-01-01T00:00:00Z"}, "expiresAt must be in the future"),
     ({"status": "busy", "expiresAt": "2999-01-01T00:00:00Z"}, "expiresAt must be at most a year"),
     ({"expiresAt": "2999-01-01T00:00:00Z"}, "status or message (or lastSeen) is required"),
     ({"lastSeen": "nobody", "expiresAt": "2999-01-01T00:00:00Z"},
      "expiresAt needs a status or a message"),
     ({"lastSeen": "hidden"}, "lastSeen: Invalid enum value 'hidden'")],
    ids=["not-iso", "a-number", "past", "too-far", "alone", "nothing-to-expire",
         "bad-last-seen"],
)  # fmt: skip
async def test_bad_expires_at_or_last_seen_is_400_naming_it(hub, http, payload, needle):
    """A bad ``expiresAt`` or ``lastSeen`` is a 400 naming it, and the status stays."""
    user = uid("bad")
    async with await connect_user(hub.ws_url, user_token(user)):
        response = await http.post(SET_STATUS, json=payload, headers=rc_headers(user))
        assert response.status_code == 400
        body = response.json()
        assert body["success"] is False and needle in body["error"], body
        assert (await get_presence(http, user))["presence"] == "online"


async def test_get_presence_returns_last_seen_of_an_offline_user(hub, http, watcher):
    """Offline: ``lastSeen`` is the offline change's time, ISO like ``lastLogin``; online:
    no ``lastSeen``."""
    user = uid("seen")
    start = watcher.mark()
    client = await connect_user(hub.ws_url, user_token(user))
    assert "lastSeen" not in await get_presence(http, user)
    await client.close()
    offline = await watcher.wait_status(user, "offline", after=start)
    body = await get_presence(http, user)
    assert body["presence"] == "offline" and body["lastSeen"] == iso(offline["lastSeen"])


async def test_a_user_hides_its_last_seen_by_rest(hub, http, watcher):
    """``users.setStatus`` with ``lastSeen: nobody`` hides it; ``everyone`` shows it again."""
    user = uid("hider")
    start = watcher.mark()
    client = await connect_user(hub.ws_url, user_token(user))
    response = await http.post(SET_STATUS, json={"lastSeen": "nobody"}, headers=rc_headers(user))
    assert response.status_code == 200, response.text
    await client.close()
    await watcher.wait_status(user, "offline", after=start)
    assert "lastSeen" not in await get_presence(http, user)
    response = await http.post(SET_STATUS, json={"lastSeen": "everyone"},
                               headers=rc_headers(user))  # fmt: skip
    assert response.status_code == 200, response.text
    assert "lastSeen" in await get_presence(http, user)
