"""Rocket.Chat's presence REST API (seed 004 and Rocket.Chat REST) against a real hub.

Users come online through real websocket connections; a watcher socket subscribed to
everyone tells the tests each change's ``at`` (the hub's clock), from which ``from``
values are computed. The hub runs with a 3 s window and no offline grace.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support.hubproc import ADMIN_HEADERS, TEST_ADMIN_KEY, rc_headers, user_token
from tests.support.inproc import InProcessHub, inproc_hub_fixture
from tests.support.wsclient import Frame, WsClient, connect_user

WINDOW_S = 3
WINDOW_MS = WINDOW_S * 1000
hub = inproc_hub_fixture({"HUB_WINDOW_S": str(WINDOW_S), "HUB_OFFLINE_GRACE_S": "0"})
PRESENCE = "/api/v1/users.presence"
RC_FIELDS = {"_id", "username", "name", "status", "statusText", "utcOffset"}


def uid(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


def iso(ms: int) -> str:
    """Milliseconds on the hub's clock as ``2019-05-22T12:11:45.392Z``."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{ms % 1000:03d}Z"
    )


class Users:
    """Websocket users a test brings online (and closes at the end)."""

    def __init__(self, hub: InProcessHub, watcher: WsClient) -> None:
        self.hub, self.watcher = hub, watcher
        self.clients: list[WsClient] = []

    async def online(self, user: str, **claims: Any) -> tuple[WsClient, Frame]:
        """Connect ``user``; returns its socket and the entry the watcher saw."""
        start = self.watcher.mark()
        client = await connect_user(self.hub.ws_url, user_token(user, **claims))
        self.clients.append(client)
        return client, await self.watcher.wait_status(user, "online", after=start)

    async def offline(self, user: str, client: WsClient) -> Frame:
        start = self.watcher.mark()
        await client.close()
        return await self.watcher.wait_status(user, "offline", after=start)


@pytest.fixture
async def users(hub: InProcessHub, watcher: WsClient) -> AsyncIterator[Users]:
    made = Users(hub, watcher)
    try:
        yield made
    finally:
        for client in made.clients:
            await client.close()


async def presence(http: httpx.AsyncClient, caller: str, **params: str) -> dict[str, Any]:
    response = await http.get(PRESENCE, params=params, headers=rc_headers(caller))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["success"] is True and set(body) == {"users", "full", "success"}
    return body


def by_id(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {u["_id"]: u for u in body["users"]}


# -- users.presence ------------------------------------------------------------------------


async def test_presence_without_from_is_a_full_snapshot_of_users_not_offline(
    http: httpx.AsyncClient, users: Users
) -> None:
    """No ``from``: full:true, every user not offline (the caller too), nobody offline."""
    p_id, q_id, caller = uid("p"), uid("q"), uid("caller")
    await users.online(p_id, name="Pat", username="pat" + p_id)
    q, _ = await users.online(q_id)
    await users.offline(q_id, q)
    await users.online(caller)
    body = await presence(http, caller)
    assert body["full"] is True
    seen = by_id(body)
    assert p_id in seen and caller in seen and q_id not in seen
    assert all(u["status"] != "offline" for u in body["users"])
    assert seen[p_id] == {
        "_id": p_id,
        "username": "pat" + p_id,
        "name": "Pat",
        "status": "online",
        "statusText": "",
        "utcOffset": 0,
    }


async def test_presence_from_inside_window_lists_changes_since_with_offline_and_without_caller(
    http: httpx.AsyncClient, users: Users
) -> None:
    """``from`` inside the window: full:false, users changed at or after it (offline ones
    included), the caller left out, users changed before it left out."""
    before_id, p_id, q_id, caller = uid("before"), uid("p"), uid("q"), uid("caller")
    _, before = await users.online(before_id)
    _, p_online = await users.online(p_id)
    assert before["at"] < p_online["at"]
    q, _ = await users.online(q_id)
    await users.offline(q_id, q)
    await users.online(caller)
    body = await presence(http, caller, **{"from": iso(p_online["at"])})
    assert body["full"] is False
    seen = by_id(body)
    assert seen[p_id]["status"] == "online"
    assert seen[q_id]["status"] == "offline", "offline transitions are part of a delta"
    assert caller not in seen, "the caller is left out of a delta"
    assert before_id not in seen, "a user whose last change is older than from is left out"
    for entry in body["users"]:
        assert set(entry) == RC_FIELDS


async def test_presence_from_at_a_known_at_is_inclusive(
    http: httpx.AsyncClient, users: Users
) -> None:
    """``from`` equal to a user's ``at`` includes it; one millisecond later excludes it."""
    p_id = uid("p")
    _, online = await users.online(p_id)
    caller = uid("caller")
    assert p_id in by_id(await presence(http, caller, **{"from": iso(online["at"])}))
    assert p_id not in by_id(await presence(http, caller, **{"from": iso(online["at"] + 1)}))


async def test_presence_from_older_than_window_is_full(
    http: httpx.AsyncClient, users: Users
) -> None:
    """``from`` older than the window gets full:true with everyone not offline."""
    p_id, q_id = uid("p"), uid("q")
    _, p_online = await users.online(p_id)
    q, _ = await users.online(q_id)
    q_offline = await users.offline(q_id, q)
    old = iso(q_offline["at"] - WINDOW_MS - 1_000)
    body = await presence(http, uid("caller"), **{"from": old})
    assert body["full"] is True
    assert p_id in by_id(body) and q_id not in by_id(body)
    assert p_online["at"] <= q_offline["at"]


async def test_from_stays_a_delta_until_a_window_old_then_becomes_full(
    http: httpx.AsyncClient, users: Users
) -> None:
    """Polling with one ``from`` = a known ``at``: deltas while the hub clock is within the
    window of it (the edge included), a full snapshot only once it is past."""
    p_id = uid("p")
    _, online = await users.online(p_id)
    edge = online["at"] + WINDOW_MS  # the last hub clock value at which from is inside
    answers: list[tuple[int, int, bool]] = []
    deadline = time.monotonic() + WINDOW_S + 10
    while time.monotonic() < deadline:
        sent = time.time_ns() // 1_000_000
        body = await presence(http, uid("caller"), **{"from": iso(online["at"])})
        received = time.time_ns() // 1_000_000
        answers.append((sent, received, body["full"]))
        if body["full"]:
            break
        assert p_id in by_id(body)
        # The hub's clock (this machine's wall clock) was at least `sent` when it answered.
        assert sent <= edge, f"still a delta {sent - edge} ms after the window passed"
        await asyncio.sleep(0.05)  # poll interval
    assert answers[0][2] is False
    sent, received, full = answers[-1]
    assert full, f"no full snapshot within the deadline: {answers[-3:]}"
    # A few ms of slack: the store clock may run a stamp or two ahead of the wall clock.
    assert received + 5 > edge, f"full {edge - received} ms before the window passed"


@pytest.mark.parametrize("raw", ["yesterday", "2019-13-45T99:00:00Z", "1558527105392", "%%"])
async def test_unparseable_from_is_full(http: httpx.AsyncClient, users: Users, raw: str) -> None:
    """An unparseable ``from`` gets the full snapshot, as Rocket.Chat does (not a 400)."""
    p_id = uid("p")
    await users.online(p_id)
    body = await presence(http, uid("caller"), **{"from": raw})
    assert body["full"] is True and p_id in by_id(body)


async def test_from_in_the_future_is_an_empty_delta(http: httpx.AsyncClient, users: Users) -> None:
    """A ``from`` in the future gets full:false with no users."""
    await users.online(uid("p"))
    future = datetime.now(UTC) + timedelta(hours=1)
    body = await presence(http, uid("caller"), **{"from": future.isoformat()})
    assert body == {"users": [], "full": False, "success": True}


@pytest.mark.parametrize("style", ["comma", "brackets", "repeated-ids"])
async def test_ids_lists_only_those_not_offline_and_wins_over_from(
    http: httpx.AsyncClient, users: Users, style: str
) -> None:
    """``ids`` (a,b or ids[]=a&ids[]=b) returns the listed users not offline, full:false,
    whatever ``from`` says."""
    a_id, b_id, off_id, other_id = uid("a"), uid("b"), uid("off"), uid("other")
    await users.online(a_id)
    await users.online(b_id)
    await users.online(other_id)
    off, _ = await users.online(off_id)
    await users.offline(off_id, off)
    wanted = [a_id, b_id, off_id, "never-seen-" + a_id]
    if style == "comma":
        params: list[tuple[str, str | int | float | bool | None]] = [("ids", ",".join(wanted))]
    elif style == "brackets":
        params = [("ids[]", w) for w in wanted]
    else:
        params = [("ids", w) for w in wanted]
    params.append(("from", "garbage"))  # unparseable from would mean full:true without ids
    caller = uid("caller")
    response = await http.get(PRESENCE, params=params, headers=rc_headers(caller))
    assert response.status_code == 200
    body = response.json()
    assert body["full"] is False and body["success"] is True
    assert sorted(by_id(body)) == sorted([a_id, b_id])
    old_from: list[tuple[str, str | int | float | bool | None]] = [("ids", a_id), ("from", iso(0))]
    body = (await http.get(PRESENCE, params=old_from, headers=rc_headers(caller))).json()
    assert (body["full"], list(by_id(body))) == (False, [a_id])


async def test_entries_have_exactly_the_rocketchat_fields(
    http: httpx.AsyncClient, users: Users
) -> None:
    """An entry has _id, username, name, status, statusText, utcOffset, plus avatarETag
    only when the user's token carried an avatar."""
    plain, pictured = uid("plain"), uid("pictured")
    await users.online(plain)
    await users.online(pictured, avatar="https://example.com/a.png", utcOffset=-2)
    body = await presence(http, uid("caller"), ids=f"{plain},{pictured}")
    seen = by_id(body)
    assert set(seen[plain]) == RC_FIELDS
    assert set(seen[pictured]) == RC_FIELDS | {"avatarETag"}
    assert isinstance(seen[pictured]["avatarETag"], str) and seen[pictured]["avatarETag"]
    assert seen[pictured]["utcOffset"] == -2


# -- users.getPresence ---------------------------------------------------------------------


async def test_get_presence_by_user_id_and_by_username(
    http: httpx.AsyncClient, users: Users
) -> None:
    """users.getPresence answers presence, connectionStatus, lastLogin and success, found by
    userId or by username."""
    p_id = uid("p")
    before = datetime.now(UTC) - timedelta(seconds=1)
    client, _ = await users.online(p_id, username="user." + p_id)
    await client.request({"op": "status", "status": "busy"})
    caller = uid("caller")
    for params in ({"userId": p_id}, {"username": "user." + p_id}):
        response = await http.get(
            "/api/v1/users.getPresence", params=params, headers=rc_headers(caller)
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"presence", "connectionStatus", "lastLogin", "success"}
        assert (body["presence"], body["connectionStatus"], body["success"]) == (
            "busy",
            "online",
            True,
        )
        last_login = datetime.fromisoformat(body["lastLogin"].replace("Z", "+00:00"))
        assert before <= last_login <= datetime.now(UTC) + timedelta(seconds=1)


@pytest.mark.parametrize("params", [{"userId": "nobody-here"}, {"username": "no.such.user"}])
async def test_get_presence_of_unknown_user_fails_400(
    http: httpx.AsyncClient, params: dict[str, str]
) -> None:
    """An unknown user gets success:false with an error and status 400."""
    response = await http.get(
        "/api/v1/users.getPresence", params=params, headers=rc_headers(uid("caller"))
    )
    assert response.status_code == 400
    assert response.json()["success"] is False and response.json()["error"]


async def test_get_presence_without_a_target_is_the_callers_own(
    http: httpx.AsyncClient, users: Users
) -> None:
    """Neither userId nor username: the caller's own presence, as Rocket.Chat answers; the
    Bearer admin, who is nobody in particular, gets a 400 naming them."""
    me = uid("me")
    client, _ = await users.online(me)
    await client.request({"op": "status", "status": "away"})
    response = await http.get("/api/v1/users.getPresence", headers=rc_headers(me))
    assert response.status_code == 200, response.text
    assert (response.json()["presence"], response.json()["success"]) == ("away", True)
    refused = await http.get("/api/v1/users.getPresence", headers=ADMIN_HEADERS)
    assert refused.status_code == 400
    assert "userId or username" in refused.json()["error"]
    assert refused.json()["errorType"] == "error-user-param-not-provided"


# -- users.setStatus -----------------------------------------------------------------------


async def test_set_status_is_visible_in_presence(
    http: httpx.AsyncClient, users: Users, watcher: WsClient
) -> None:
    """users.setStatus(status, message) answers 200 and the change shows in users.presence and
    on the websocket."""
    p_id = uid("p")
    await users.online(p_id)
    start = watcher.mark()
    response = await http.post(
        "/api/v1/users.setStatus",
        json={"status": "away", "message": "coffee"},
        headers=rc_headers(p_id),
    )
    assert response.status_code == 200 and response.json() == {"success": True}
    entry = await watcher.wait_status(p_id, "away", after=start)
    assert entry["text"] == "coffee"
    body = await presence(http, uid("caller"), ids=p_id)
    assert by_id(body)[p_id]["status"] == "away"
    assert by_id(body)[p_id]["statusText"] == "coffee"


@pytest.mark.parametrize(
    ("payload", "field"),
    [({"status": "dnd"}, "status"), ({"status": 3}, "status"),
     ({"status": "busy", "message": "m" * 121}, "message"), ({"message": 5}, "message"),
     ({}, "status or message")],
    ids=["unknown-status", "status-not-a-string", "message-too-long", "message-not-a-string",
         "neither"],
)  # fmt: skip
async def test_set_status_bad_input_is_400_naming_the_field_and_changes_nothing(
    http: httpx.AsyncClient, users: Users, watcher: WsClient, payload: dict[str, Any], field: str
) -> None:
    """A bad status or a message over 120 characters is a 400 naming the field; nothing
    changes (no delta before a later marker, presence as before)."""
    p_id = uid("p")
    await users.online(p_id)
    start = watcher.mark()
    response = await http.post("/api/v1/users.setStatus", json=payload, headers=rc_headers(p_id))
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False and field in body["error"]
    marker = uid("marker")
    await users.online(marker)
    assert list(watcher.entries(p_id, after=start)) == []
    got = by_id(await presence(http, uid("caller"), ids=p_id))[p_id]
    assert (got["status"], got["statusText"]) == ("online", "")


async def test_message_of_exactly_120_characters_is_accepted(
    http: httpx.AsyncClient, users: Users
) -> None:
    """The limit is inclusive: 120 characters are fine."""
    p_id = uid("p")
    await users.online(p_id)
    response = await http.post(
        "/api/v1/users.setStatus", json={"message": "m" * 120}, headers=rc_headers(p_id)
    )
    assert response.status_code == 200
    assert by_id(await presence(http, p_id, ids=p_id))[p_id]["statusText"] == "m" * 120


async def test_user_may_not_set_another_users_status(http: httpx.AsyncClient, users: Users) -> None:
    """A user token setting someone else's status gets 403, and nothing changes."""
    victim, mallory = uid("victim"), uid("mallory")
    await users.online(victim)
    response = await http.post(
        "/api/v1/users.setStatus",
        json={"userId": victim, "status": "offline"},
        headers=rc_headers(mallory),
    )
    assert response.status_code == 403 and response.json()["success"] is False
    assert by_id(await presence(http, mallory, ids=victim))[victim]["status"] == "online"


@pytest.mark.parametrize("style", ["x-auth-token", "bearer"])
async def test_admin_may_set_any_users_status(
    http: httpx.AsyncClient, users: Users, watcher: WsClient, style: str
) -> None:
    """The admin key (X-Auth-Token with any X-User-Id, or Bearer) sets another user's status."""
    p_id = uid("p")
    await users.online(p_id)
    headers = (
        {"X-Auth-Token": TEST_ADMIN_KEY, "X-User-Id": "any-admin"}
        if style == "x-auth-token"
        else ADMIN_HEADERS
    )
    start = watcher.mark()
    response = await http.post(
        "/api/v1/users.setStatus",
        json={"userId": p_id, "status": "busy", "message": "by admin"},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    entry = await watcher.wait_status(p_id, "busy", after=start)
    assert entry["text"] == "by admin"
