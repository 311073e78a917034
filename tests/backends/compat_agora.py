"""Agora Chat's user system (seed 002) against a real hub: the page's examples and limits."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from tests.backends.compat import connect, uid
from tests.support import eventually
from tests.support.hubproc import ADMIN_HEADERS, user_token
from tests.support.inproc import InProcessHub
from tests.support.wsclient import WsClient

BASE = "/org1/app1/users"
COMMON = {"action", "application", "path", "uri", "entities", "timestamp", "duration",
          "organization", "applicationName"}  # fmt: skip
ENTITY = {"uuid", "type", "created", "modified", "username", "activated"}


def bearer(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {user_token(user)}"}


def assert_error(response: httpx.Response, status: int, error: str, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "exception", "timestamp", "duration", "error_description"}
    assert body["error"] == error
    for word in words:
        assert word in body["error_description"], body


async def register(http: httpx.AsyncClient, *names: str, password: str = "123") -> None:
    payload: Any = [{"username": n, "password": password} for n in names]
    response = await http.post(BASE, json=payload, headers=ADMIN_HEADERS)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == []


async def test_register_one_user_as_the_page_shows(http: httpx.AsyncClient) -> None:
    """Registering one user answers the common fields and one entity (seed example)."""
    name = uid("user1")
    response = await http.post(BASE, json={"username": name, "password": "123"},
                               headers=ADMIN_HEADERS)  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) >= COMMON
    assert body["action"] == "post" and body["path"] == "/users"
    assert body["organization"] == "org1" and body["applicationName"] == "app1"
    assert body["uri"].endswith("/org1/app1/users")
    (entity,) = body["entities"]
    assert set(entity) == ENTITY
    assert entity["username"] == name and entity["type"] == "user" and entity["activated"]
    assert entity["created"] == entity["modified"] and entity["created"] <= body["timestamp"]
    assert "password" not in response.text and "scrypt" not in response.text


async def test_register_a_batch_reports_failures_in_data(http: httpx.AsyncClient) -> None:
    """A batch with an existing user registers the others and names the failure (example 2)."""
    user1, user2, user3 = uid("user1"), uid("user2"), uid("user3")
    await register(http, user3)
    batch = [{"username": user1, "password": "123"}, {"username": user2, "password": "456"},
             {"username": user3, "password": "789"}]  # fmt: skip
    response = await http.post(BASE, json=batch, headers=ADMIN_HEADERS)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [e["username"] for e in body["entities"]] == [user1, user2]
    assert body["entities"][0]["created"] < body["entities"][1]["created"]
    assert body["data"] == [
        {"username": user3, "registerUserFailReason": f"the {user3} already exists"}
    ]


async def test_register_at_most_sixty_users(http: httpx.AsyncClient) -> None:
    """Sixty users register in one request; sixty-one are refused and none is created."""
    stem = uid("b")
    sixty = [{"username": f"{stem}-{i}", "password": "p"} for i in range(60)]
    ok = await http.post(BASE, json=sixty, headers=ADMIN_HEADERS)
    assert ok.status_code == 200 and len(ok.json()["entities"]) == 60
    over = [{"username": f"{stem}-x{i}", "password": "p"} for i in range(61)]
    refused = await http.post(BASE, json=over, headers=ADMIN_HEADERS)
    assert_error(refused, 400, "illegal_argument", "at most 60")
    lookup = await http.get(f"{BASE}/{stem}-x0", headers=ADMIN_HEADERS)
    assert lookup.status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "", "password": "1"}, "username"),
        ({"username": "a" * 65, "password": "1"}, "username"),
        ({"username": "has space", "password": "1"}, "username"),
        ({"username": "e@mail.com", "password": "1"}, "username"),
        ({"username": "ok", "password": "x" * 65}, "password"),
        ({"username": "ok", "password": "é" * 33}, "password"),
        ({"username": "ok"}, "password"),
        ({"password": "1"}, "username"),
        ({"username": "ok", "password": "1", "nickname": 5}, "nickname"),
    ],
)
async def test_register_refuses_what_the_page_forbids(
    http: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    """Usernames outside 1-64 of a-z A-Z 0-9 _ - . and passwords over 64 bytes are a 400."""
    response = await http.post(BASE, json=body, headers=ADMIN_HEADERS)
    assert_error(response, 400, "illegal_argument", field)


async def test_a_bad_batch_changes_nothing(http: httpx.AsyncClient) -> None:
    """One invalid username in a batch refuses the whole batch before anything is created."""
    good = uid("good")
    batch = [{"username": good, "password": "1"}, {"username": "bad name", "password": "1"}]
    response = await http.post(BASE, json=batch, headers=ADMIN_HEADERS)
    assert_error(response, 400, "illegal_argument", "[1].username")
    assert (await http.get(f"{BASE}/{good}", headers=ADMIN_HEADERS)).status_code == 404


async def test_usernames_are_case_insensitive(http: httpx.AsyncClient) -> None:
    """Aa and aa are the same username: found either way, registered once."""
    name = uid("Mixed")
    await register(http, name)
    found = await http.get(f"{BASE}/{name.lower()}", headers=ADMIN_HEADERS)
    assert found.status_code == 200 and found.json()["entities"][0]["username"] == name
    again = await http.post(BASE, json={"username": name.upper(), "password": "1"},
                            headers=ADMIN_HEADERS)  # fmt: skip
    assert_error(again, 400, "duplicate_unique_property_exists", name.upper())


async def test_credentials_are_checked(http: httpx.AsyncClient) -> None:
    """No token or a wrong one is 401; a user token may read but not register (403)."""
    assert_error(await http.get(BASE), 401, "unauthorized")
    wrong = {"Authorization": "Bearer not-the-key"}
    assert_error(await http.get(BASE, headers=wrong), 401, "unauthorized")
    reader = uid("reader")
    assert (await http.get(BASE, headers=bearer(reader))).status_code == 200
    refused = await http.post(BASE, json={"username": uid(), "password": "1"},
                              headers=bearer(reader))  # fmt: skip
    assert_error(refused, 403, "forbidden_op")


async def test_query_one_user(http: httpx.AsyncClient) -> None:
    """Querying a user answers its entity and count 1; an unknown user is a 404."""
    name = uid("q")
    await register(http, name)
    response = await http.get(f"{BASE}/{name}", headers=bearer(uid("someone")))
    assert response.status_code == 200
    body = response.json()
    assert body["action"] == "get" and body["count"] == 1
    assert body["entities"][0]["username"] == name
    assert_error(await http.get(f"{BASE}/{uid('nobody')}", headers=ADMIN_HEADERS), 404,
                 "service_resource_not_found")  # fmt: skip


async def test_list_users_with_limit_and_cursor(fresh_hub: InProcessHub) -> None:
    """Users come in registration order, `limit` at a time, until no cursor is returned."""
    async with httpx.AsyncClient(base_url=fresh_hub.url) as http:
        names = [f"user{i}" for i in range(5)]
        for name in names:
            await register(http, name)
        first = (await http.get(f"{BASE}?limit=2", headers=ADMIN_HEADERS)).json()
        assert first["params"] == {"limit": ["2"]} and first["count"] == 2
        seen = [e["username"] for e in first["entities"]]
        cursor = first["cursor"]
        while cursor:
            page = await http.get(BASE, params={"limit": 2, "cursor": cursor},
                                  headers=ADMIN_HEADERS)  # fmt: skip
            body = page.json()
            assert body["params"] == {"limit": ["2"], "cursor": [cursor]}
            seen += [e["username"] for e in body["entities"]]
            cursor = body.get("cursor")
        assert seen == names
        default = (await http.get(BASE, headers=ADMIN_HEADERS)).json()
        assert default["count"] == 5 and "cursor" not in default, "the default limit is 10"


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=101",
        "limit=ten",
        "cursor=%21%21",
        "cursor=" + base64.urlsafe_b64encode(b"x").decode(),
    ],
)
async def test_list_refuses_bad_limit_and_cursor(http: httpx.AsyncClient, query: str) -> None:
    """`limit` outside 1-100 or a cursor this hub did not give is a 400 naming it."""
    response = await http.get(f"{BASE}?{query}", headers=ADMIN_HEADERS)
    assert_error(response, 400, "illegal_argument", query.split("=")[0])


async def test_delete_one_user(http: httpx.AsyncClient) -> None:
    """Deleting a user answers its entity; it is gone afterwards; again is a 404."""
    name = uid("del")
    await register(http, name)
    refused = await http.delete(f"{BASE}/{name}", headers=bearer(name))
    assert_error(refused, 403, "forbidden_op")
    response = await http.delete(f"{BASE}/{name}", headers=ADMIN_HEADERS)
    assert response.status_code == 200
    assert response.json()["action"] == "delete"
    assert response.json()["entities"][0]["username"] == name
    assert (await http.get(f"{BASE}/{name}", headers=ADMIN_HEADERS)).status_code == 404
    assert_error(await http.delete(f"{BASE}/{name}", headers=ADMIN_HEADERS), 404,
                 "service_resource_not_found")  # fmt: skip


async def test_delete_the_oldest_users(fresh_hub: InProcessHub) -> None:
    """DELETE /users?limit=N deletes the N oldest users, with a cursor while more remain."""
    async with httpx.AsyncClient(base_url=fresh_hub.url) as http:
        await register(http, "user1", "user2", "user3")
        first = await http.delete(f"{BASE}?limit=2", headers=ADMIN_HEADERS)
        body = first.json()
        assert first.status_code == 200 and body["params"] == {"limit": ["2"]}
        assert [e["username"] for e in body["entities"]] == ["user1", "user2"]
        assert body["cursor"]
        rest = (await http.delete(f"{BASE}?limit=2", headers=ADMIN_HEADERS)).json()
        assert [e["username"] for e in rest["entities"]] == ["user3"] and "cursor" not in rest
        left = (await http.get(BASE, headers=ADMIN_HEADERS)).json()
        assert left["entities"] == [] and left["count"] == 0


async def test_set_password(http: httpx.AsyncClient) -> None:
    """The admin or the user itself sets a password; another user may not; bad input is 400."""
    name, other = uid("pw"), uid("other")
    await register(http, name, other)
    url = f"{BASE}/{name}/password"
    response = await http.put(url, json={"newpassword": "n3w"}, headers=ADMIN_HEADERS)
    assert response.status_code == 200
    assert set(response.json()) == {"action", "timestamp", "duration"}
    assert response.json()["action"] == "set user password"
    own = await http.put(url, json={"newpassword": "mine"}, headers=bearer(name))
    assert own.status_code == 200
    assert_error(await http.put(url, json={"newpassword": "x"}, headers=bearer(other)), 403,
                 "forbidden_op")  # fmt: skip
    assert_error(await http.put(url, json={"newpassword": "x" * 65}, headers=ADMIN_HEADERS),
                 400, "illegal_argument", "newpassword")  # fmt: skip
    assert_error(await http.put(url, json={}, headers=ADMIN_HEADERS), 400, "illegal_argument",
                 "newpassword")  # fmt: skip


async def test_deactivate_and_activate(http: httpx.AsyncClient) -> None:
    """Deactivating answers the entity with activated false; activating lifts it."""
    name = uid("ban")
    await register(http, name)
    assert_error(await http.post(f"{BASE}/{name}/deactivate", headers=bearer(name)), 403,
                 "forbidden_op")  # fmt: skip
    response = await http.post(f"{BASE}/{name}/deactivate", headers=ADMIN_HEADERS)
    assert response.status_code == 200
    body = response.json()
    assert body["action"] == "Deactivate user" and body["entities"][0]["activated"] is False
    got = (await http.get(f"{BASE}/{name}", headers=ADMIN_HEADERS)).json()
    assert got["entities"][0]["activated"] is False
    lifted = await http.post(f"{BASE}/{name}/activate", headers=ADMIN_HEADERS)
    assert lifted.status_code == 200
    assert set(lifted.json()) == {"action", "timestamp", "duration"}
    assert lifted.json()["action"] == "activate user"
    assert_error(await http.post(f"{BASE}/{uid()}/deactivate", headers=ADMIN_HEADERS), 404,
                 "service_resource_not_found")  # fmt: skip


async def test_force_offline(
    hub: InProcessHub, http: httpx.AsyncClient, sockets: list[WsClient]
) -> None:
    """Forcing a user offline closes its socket with 4004 and answers data.result true."""
    name = uid("kick")
    client = await connect(hub, sockets, name)
    response = await http.get(f"{BASE}/{name}/disconnect", headers=ADMIN_HEADERS)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["data"] == {"result": True} and body["entities"] == []
    assert body["action"] == "get"
    assert await client.wait_closed() == 4004
    status = (await http.get(f"{BASE}/{name}/status", headers=ADMIN_HEADERS)).json()
    assert status["data"] == {name: "offline"}


async def test_status_of_one_user(
    hub: InProcessHub, http: httpx.AsyncClient, sockets: list[WsClient]
) -> None:
    """Status answers online while the user is connected, offline otherwise; unknown is 404."""
    name = uid("st")
    await register(http, name)
    url = f"{BASE}/{name}/status"
    offline = (await http.get(url, headers=bearer(uid()))).json()
    assert offline["data"] == {name: "offline"} and offline["count"] == 0
    client = await connect(hub, sockets, name)
    await client.request({"op": "status", "status": "busy"})
    online = (await http.get(url, headers=ADMIN_HEADERS)).json()
    assert online["data"] == {name: "online"}, "busy is online to Agora"
    await client.close()

    async def gone() -> bool:
        body = (await http.get(url, headers=ADMIN_HEADERS)).json()
        return bool(body["data"] == {name: "offline"})

    await eventually(gone)
    assert_error(await http.get(f"{BASE}/{uid()}/status", headers=ADMIN_HEADERS), 404,
                 "service_resource_not_found")  # fmt: skip


async def test_batch_status(
    hub: InProcessHub, http: httpx.AsyncClient, sockets: list[WsClient]
) -> None:
    """Batch status answers each user in order; unknown users are offline (as the page says)."""
    on, off, ghost = uid("on"), uid("off"), uid("ghost")
    await register(http, off)
    await connect(hub, sockets, on)
    response = await http.post(f"{BASE}/batch/status", json={"usernames": [on, off, ghost]},
                               headers=bearer(on))  # fmt: skip
    assert response.status_code == 200
    body = response.json()
    assert body["action"] == "get batch user status"
    assert body["data"] == [{on: "online"}, {off: "offline"}, {ghost: "offline"}]


@pytest.mark.parametrize(
    ("body", "field"),
    [({"usernames": [f"u{i}" for i in range(101)]}, "at most 100"),
     ({"usernames": []}, "usernames"), ({}, "usernames"), ({"usernames": [1]}, "usernames")],
)  # fmt: skip
async def test_batch_status_limits(
    http: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    """More than 100 usernames, none, or not strings: a 400 naming usernames."""
    response = await http.post(f"{BASE}/batch/status", json=body, headers=ADMIN_HEADERS)
    assert_error(response, 400, "illegal_argument", field)


async def test_offline_messages_are_not_served(http: httpx.AsyncClient) -> None:
    """The offline-message endpoints answer 501: they are messaging, not presence."""
    for path in (f"{BASE}/u1/offline_msg_count", f"{BASE}/u1/offline_msg_status/123"):
        response = await http.get(path, headers=ADMIN_HEADERS)
        assert_error(response, 501, "not_implemented", "not presence")
