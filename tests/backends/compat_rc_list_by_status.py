"""Rocket.Chat's GET /api/v1/users.listByStatus (seed 003) against a real hub."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.backends.compat import connect, uid, wait_offline
from tests.support.hubproc import ADMIN_HEADERS, rc_headers
from tests.support.inproc import InProcessHub
from tests.support.wsclient import WsClient

PATH = "/api/v1/users.listByStatus"


async def listing(http: httpx.AsyncClient, caller: str, **params: Any) -> dict[str, Any]:
    response = await http.get(PATH, params=params, headers=rc_headers(caller))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids(body: dict[str, Any]) -> list[str]:
    return [u["_id"] for u in body["users"]]


@pytest.fixture
async def team(
    hub: InProcessHub, http: httpx.AsyncClient, sockets: list[WsClient]
) -> tuple[str, list[str]]:
    """Four users with a common stem: agents online/offline, a bot, one never logged in."""
    stem = uid("rc")
    names = [f"{stem}-agent1", f"{stem}-agent2", f"{stem}-bot", f"{stem}-guy"]
    await connect(
        hub,
        sockets,
        names[0],
        name="Agent 1",
        roles=["user", "livechat-agent"],
        avatar="https://a/1.png",
    )
    second = await connect(hub, sockets, names[1], name="Agent 2", roles=["user", "livechat-agent"])
    await connect(hub, sockets, names[2], name=f"Rocket.Cat {stem}", roles=["bot"], type="bot")
    await second.close()
    await wait_offline(http, names[1])
    response = await http.post("/o/a/users", json={"username": names[3], "password": "p",
                                                   "nickname": "guy"},
                               headers=ADMIN_HEADERS)  # fmt: skip
    assert response.status_code == 200
    return stem, names


async def test_users_as_the_page_shows_them(
    http: httpx.AsyncClient, team: tuple[str, list[str]]
) -> None:
    """Each user has _id, username, type, roles, status, active, name and lastLogin."""
    stem, names = team
    body = await listing(http, names[0], searchTerm=stem)
    assert set(body) == {"users", "count", "offset", "total", "success"}
    assert body["success"] is True and body["count"] == 4 and body["total"] == 4
    assert body["offset"] == 0
    agent1, agent2, bot, guy = body["users"]
    assert agent1["_id"] == names[0] and agent1["username"] == names[0]
    assert agent1["type"] == "user" and agent1["roles"] == ["user", "livechat-agent"]
    assert agent1["status"] == "online" and agent1["active"] is True
    assert agent1["name"] == "Agent 1" and agent1["lastLogin"].endswith("Z")
    assert agent1["avatarETag"]
    assert agent2["status"] == "offline" and "lastLogin" in agent2
    assert bot["type"] == "bot" and bot["roles"] == ["bot"]
    assert guy["name"] == "guy" and "lastLogin" not in guy and guy["status"] == "offline"


async def test_filters(http: httpx.AsyncClient, team: tuple[str, list[str]]) -> None:
    """status, hasLoggedIn, type, roles[] and searchTerm filter as the page says."""
    stem, names = team
    caller = names[0]
    assert ids(await listing(http, caller, searchTerm=stem, type="bot")) == [names[2]]
    assert ids(await listing(http, caller, searchTerm=stem, hasLoggedIn="false")) == [names[3]]
    assert ids(await listing(http, caller, searchTerm=stem, hasLoggedIn="true")) == names[:3]
    agents = await http.get(PATH, params=[("searchTerm", stem), ("roles[]", "livechat-agent")],
                            headers=rc_headers(caller))  # fmt: skip
    assert ids(agents.json()) == names[:2]
    assert ids(await listing(http, caller, searchTerm=f"CAT {stem}".upper())) == [names[2]]
    off = await http.post(f"/o/a/users/{names[3]}/deactivate", headers=ADMIN_HEADERS)
    assert off.status_code == 200
    assert ids(await listing(http, caller, searchTerm=stem, status="deactivated")) == [names[3]]
    assert ids(await listing(http, caller, searchTerm=stem, status="active")) == names[:3]


async def test_offset_count_and_sort(http: httpx.AsyncClient, team: tuple[str, list[str]]) -> None:
    """offset/count page through the list; sort orders it (JSON, 1 or -1)."""
    stem, names = team
    caller = names[0]
    page = await listing(http, caller, searchTerm=stem, offset=1, count=2)
    assert ids(page) == names[1:3] and page["count"] == 2 and page["total"] == 4
    assert page["offset"] == 1
    backwards = await listing(http, caller, searchTerm=stem, sort='{"username": -1}')
    assert ids(backwards) == list(reversed(names))
    by_login = await listing(http, caller, searchTerm=stem, sort='{"lastLogin": -1, "_id": 1}')
    assert ids(by_login)[-1] == names[3], "never logged in sorts last, descending"


async def test_roles_user_lists_exactly_the_users_shown_with_it(
    hub: InProcessHub, http: httpx.AsyncClient, sockets: list[WsClient],
    team: tuple[str, list[str]],
) -> None:  # fmt: skip
    """roles[]=user finds the users whose roles show ``user`` (those with no roles show it,
    as Rocket.Chat gives it to every account) and no one else: not an account whose roles
    are ["admin"], nor an admin or moderator as CometChat makes them, nor a bot."""
    stem, names = team
    admin, moderator = f"{stem}-admin", f"{stem}-mod"
    await connect(hub, sockets, admin, roles=["admin"])
    await connect(hub, sockets, moderator, roles=["moderator", "admin"])
    users = await http.get(PATH, params=[("searchTerm", stem), ("roles[]", "user")],
                           headers=rc_headers(names[0]))  # fmt: skip
    assert users.status_code == 200, users.text
    listed = users.json()["users"]
    assert [u["_id"] for u in listed] == [names[0], names[1], names[3]]
    assert all("user" in u["roles"] for u in listed), listed
    every = await listing(http, names[0], searchTerm=stem)
    shown = {u["_id"]: u["roles"] for u in every["users"]}
    assert shown[admin] == ["admin"] and shown[moderator] == ["moderator", "admin"]
    assert shown[names[3]] == ["user"]
    both = (("searchTerm", stem), ("roles[]", "user"), ("roles[]", "admin"))
    either = await http.get(PATH, params=both, headers=rc_headers(names[0]))
    assert [u["_id"] for u in either.json()["users"]] == [
        admin, names[0], names[1], names[3], moderator]  # fmt: skip


@pytest.mark.parametrize(
    ("params", "field"),
    [({"sort": "{bad"}, "sort"), ({"sort": '{"email": 1}'}, "sort"),
     ({"sort": '{"username": 2}'}, "sort.username"), ({"status": "online"}, "status"),
     ({"hasLoggedIn": "maybe"}, "hasLoggedIn"), ({"offset": "-1"}, "offset"),
     ({"count": "many"}, "count")],
)  # fmt: skip
async def test_bad_input_is_a_400(
    http: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    """A bad parameter answers success false with an error naming it."""
    response = await http.get(PATH, params=params, headers=rc_headers(uid()))
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["success"] is False and field in body["error"]


async def test_credentials_are_required(http: httpx.AsyncClient) -> None:
    """Without X-Auth-Token and X-User-Id the answer is Rocket.Chat's 401."""
    response = await http.get(PATH)
    assert response.status_code == 401 and response.json()["status"] == "error"
