"""iFlyChat's API 1.1 (seed 000) against a real hub: online users, rooms, kick, 501s."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.backends.compat import connect, uid, wait_offline
from tests.support.hubproc import TEST_ADMIN_KEY
from tests.support.inproc import InProcessHub
from tests.support.wsclient import WsClient

KEY = {"api_key": TEST_ADMIN_KEY}
USER_FIELDS = {"user_id", "user_role", "user_name", "user_status", "user_avatar_url",
               "user_profile_url"}  # fmt: skip


async def post(http: httpx.AsyncClient, path: str, **body: Any) -> dict[str, Any]:
    response = await http.post(f"/api/1.1/{path}", json={**KEY, **body})
    assert response.status_code == 200, response.text
    out: dict[str, Any] = response.json()
    return out


def assert_ifly_error(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["code"] == status
    for word in words:
        assert word in body["error"], body


async def test_online_users_as_the_page_shows_them(
    hub: InProcessHub, http: httpx.AsyncClient, sockets: list[WsClient]
) -> None:
    """users/list answers every online user with the six user_ fields, and length."""
    stem = uid("if")
    await connect(hub, sockets, f"{stem}-1", name="shashwat", roles=["admin"],
                  avatar="/sites/default/files/picture-1.jpg")  # fmt: skip
    away = await connect(hub, sockets, f"{stem}-2", name="shubham")
    await away.request({"op": "activity", "state": "away"})
    off = await connect(hub, sockets, f"{stem}-3")
    await off.close()
    await wait_offline(http, f"{stem}-3")
    body = await post(http, "users/list")
    assert body["length"] == len(body["users"])
    mine = {u["user_id"]: u for u in body["users"] if u["user_id"].startswith(stem)}
    assert set(mine) == {f"{stem}-1", f"{stem}-2"}
    first = mine[f"{stem}-1"]
    assert set(first) == USER_FIELDS
    assert first == {
        "user_id": f"{stem}-1", "user_role": "admin", "user_name": "shashwat",
        "user_status": "1", "user_avatar_url": "/sites/default/files/picture-1.jpg",
        "user_profile_url": "javascript:void(0)",
    }  # fmt: skip
    assert mine[f"{stem}-2"]["user_status"] == "2", "away"


async def test_api_key_is_checked(http: httpx.AsyncClient) -> None:
    """A missing or wrong api_key is a 401 JSON error."""
    assert_ifly_error(await http.post("/api/1.1/users/list", json={}), 401, "api_key")
    wrong = await http.post("/api/1.1/users/list", json={"api_key": "Wr4vpoJ_ET3lpBdX9E9T"})
    assert_ifly_error(wrong, 401, "api_key")
    assert_ifly_error(await http.post("/api/1.1/users/list", content=b"{nope"), 400, "JSON")


async def test_a_form_body_works_too(http: httpx.AsyncClient) -> None:
    """iFlyChat's PHP clients post forms: api_key in a urlencoded body is accepted."""
    response = await http.post("/api/1.1/users/list", data=KEY)
    assert response.status_code == 200 and "users" in response.json()


async def test_room_lifecycle(
    hub: InProcessHub, http: httpx.AsyncClient, sockets: list[WsClient]
) -> None:
    """Create, list, edit, list online members of, and delete a room."""
    made = await post(http, "room/create", room_name="test_room", room_role="1")
    room = made["room_id"]
    assert isinstance(room, int), "generated ids are numbers, as in the page's example"
    listed = await post(http, "room/list")
    assert {"room_id": room, "room_name": "test_room", "member_count": 0} in listed["rooms"]
    assert listed["length"] == len(listed["rooms"])
    assert await post(http, f"room/{room}/edit", room_name="room_4") == {"success": True}
    renamed = await post(http, "room/list")
    assert any(r["room_id"] == room and r["room_name"] == "room_4" for r in renamed["rooms"])
    member, stranger = uid("m"), uid("s")
    client = await connect(hub, sockets, member, name="Member")
    await client.request({"op": "join", "room": str(room)})
    await connect(hub, sockets, stranger)
    online = await post(http, f"room/{room}/users")
    assert [u["user_id"] for u in online["users"]] == [member] and online["length"] == 1
    assert set(online["users"][0]) == USER_FIELDS
    assert await post(http, f"room/{room}/delete") == {"success": True}
    gone = await post(http, "room/list")
    assert all(r["room_id"] != room for r in gone["rooms"])
    missing = await http.post(f"/api/1.1/room/{room}/users", json=KEY)
    assert_ifly_error(missing, 404, "not found")


async def test_create_a_room_with_a_chosen_id(http: httpx.AsyncClient) -> None:
    """room_id chooses the id (the websocket's room name); a taken id is a 400."""
    room = uid("lobby")
    assert await post(http, "room/create", room_name="Lobby", room_id=room) == {"room_id": room}
    again = await http.post("/api/1.1/room/create", json={**KEY, "room_name": "x",
                                                          "room_id": room})  # fmt: skip
    assert_ifly_error(again, 400, "already exists")


@pytest.mark.parametrize(
    ("path", "body", "status", "word"),
    [("room/create", {}, 400, "room_name"), ("room/create", {"room_name": ""}, 400, "room_name"),
     ("room/create", {"room_name": "x" * 201}, 400, "room_name"),
     ("room/nope-404/edit", {"room_name": "x"}, 404, "not found"),
     ("room/nope-404/delete", {}, 404, "not found"), ("room/1/edit", {}, 400, "room_name"),
     ("room/list", {"limit": 0}, 400, "limit"), ("user/nobody-404/kick", {}, 404, "not found")],
)  # fmt: skip
async def test_bad_input_is_refused(
    http: httpx.AsyncClient, path: str, body: dict[str, Any], status: int, word: str
) -> None:
    """Missing or bad fields are a 400 naming them; unknown rooms and users a 404."""
    response = await http.post(f"/api/1.1/{path}", json={**KEY, **body})
    assert_ifly_error(response, status, word)


async def test_kick_closes_sockets_with_4004(
    hub: InProcessHub, http: httpx.AsyncClient, sockets: list[WsClient]
) -> None:
    """Kicking a user closes its sockets with 4004; with room_id it also leaves the room."""
    name, room = uid("k"), uid("r")
    client = await connect(hub, sockets, name)
    await client.request({"op": "join", "room": room})
    assert await post(http, f"user/{name}/kick", room_id=room) == {"success": True}
    assert await client.wait_closed() == 4004
    back = await connect(hub, sockets, name)
    assert back.ready is not None, "a kicked user may connect again"
    online = await post(http, f"room/{room}/users")
    assert online["users"] == [], "the kick removed it from the room"


@pytest.mark.parametrize("path", ["threads/get", "room/5/publish", "user/5/publish"])
async def test_messaging_is_not_served(http: httpx.AsyncClient, path: str) -> None:
    """Thread history and publishing are messaging: 501 with a message saying so."""
    response = await http.post(f"/api/1.1/{path}", json={**KEY, "room_id": "5"})
    assert_ifly_error(response, 501, "not presence")
