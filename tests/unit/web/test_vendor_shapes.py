"""Vendor shapes against a real hub: CometChat's role filter on the role it shows,
iFlyChat's documented paths, and JSON errors in each vendor's shape for every unknown
path or method."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support.hubproc import ADMIN_HEADERS, TEST_ADMIN_KEY, rc_headers, user_token
from tests.support.inproc import InProcessHub, inproc_hub_fixture
from tests.support.wsclient import connect_user

hub = inproc_hub_fixture({"HUB_OFFLINE_GRACE_S": "0"})
CC = {"apikey": TEST_ADMIN_KEY}


def uid(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def http(hub: InProcessHub) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hub.url, timeout=10, trust_env=False) as client:
        yield client


async def test_cometchat_role_default_finds_users_shown_as_default(
    hub: InProcessHub, http: httpx.AsyncClient
) -> None:
    """Every user without roles is shown ``role: default``; ``role=default`` finds exactly
    those, and ``role`` matches the role shown (the first), not any role."""
    stem = uid("cc")
    sockets = [
        await connect_user(hub.ws_url, user_token(f"{stem}-plain")),
        await connect_user(hub.ws_url, user_token(f"{stem}-mgr", roles=["manager", "agent"])),
    ]
    try:
        shown = await http.get("/v3/users", params={"searchKey": stem}, headers=CC)
        roles = {u["uid"]: u["role"] for u in shown.json()["data"]}
        assert roles == {f"{stem}-plain": "default", f"{stem}-mgr": "manager"}
        for role, expected in (("default", [f"{stem}-plain"]), ("manager", [f"{stem}-mgr"]),
                               ("agent", [])):  # fmt: skip
            response = await http.get("/v3/users", params={"searchKey": stem, "role": role},
                                      headers=CC)  # fmt: skip
            assert response.status_code == 200, response.text
            assert [u["uid"] for u in response.json()["data"]] == expected, role
            assert response.json()["meta"]["pagination"]["total"] == len(expected)
    finally:
        for socket in sockets:
            await socket.close()


async def test_iflychat_rooms_list_at_the_documented_path(http: httpx.AsyncClient) -> None:
    """``POST /api/1.1/rooms/list`` answers as ``room/list`` does."""
    made = await http.post(
        "/api/1.1/room/create", json={"api_key": TEST_ADMIN_KEY, "room_name": uid("room")}
    )
    assert made.status_code == 200, made.text
    plural = await http.post("/api/1.1/rooms/list", json={"api_key": TEST_ADMIN_KEY})
    singular = await http.post("/api/1.1/room/list", json={"api_key": TEST_ADMIN_KEY})
    assert plural.status_code == 200 and plural.json() == singular.json()
    assert made.json()["room_id"] in [r["room_id"] for r in plural.json()["rooms"]]
    refused = await http.post("/api/1.1/rooms/list", json={"api_key": "wrong"})
    assert refused.status_code == 401 and refused.json()["success"] is False


@pytest.mark.parametrize(
    ("method", "path", "status", "keys"),
    [
        ("GET", "/api/v1/users.nothing", 404, {"success", "error"}),
        ("DELETE", "/api/v1/users.presence", 405, {"success", "error"}),
        ("GET", "/v3/groups", 404, {"error"}),
        ("POST", "/v3/users", 405, {"error"}),
        ("GET", "/api/1.1/users/list", 405, {"success", "error", "code"}),
        ("POST", "/api/1.1/nothing/here", 404, {"success", "error", "code"}),
        ("GET", "/org/app/nothing", 404,
         {"error", "exception", "timestamp", "duration", "error_description"}),
        ("PATCH", "/org/app/users", 405,
         {"error", "exception", "timestamp", "duration", "error_description"}),
        ("GET", "/nothing", 404, {"success", "error"}),
        ("POST", "/healthz", 405, {"success", "error"}),
    ],
)  # fmt: skip
async def test_unknown_paths_and_methods_answer_json_in_the_vendors_shape(
    http: httpx.AsyncClient, method: str, path: str, status: int, keys: set[str]
) -> None:
    response = await http.request(method, path, headers=rc_headers(uid("u")))
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) >= keys, body
    if "error" in body and isinstance(body["error"], dict):
        assert set(body["error"]) == {"message", "devMessage", "source", "code"}
        assert path in body["error"]["devMessage"]
    if status == 405:
        assert response.headers.get("allow"), "a 405 says which methods are allowed"


async def test_agora_password_of_another_user_is_403_whether_or_not_it_exists(
    http: httpx.AsyncClient,
) -> None:
    """A user token changing another user's password: 403 for an existing user and for a
    missing one alike."""
    existing, caller = uid("x"), uid("caller")
    made = await http.post("/o/a/users", json={"username": existing, "password": "p"},
                           headers=ADMIN_HEADERS)  # fmt: skip
    assert made.status_code == 200
    bearer = {"Authorization": f"Bearer {user_token(caller)}"}
    for name in (existing, uid("ghost")):
        response = await http.put(f"/o/a/users/{name}/password", json={"newpassword": "n"},
                                  headers=bearer)  # fmt: skip
        assert response.status_code == 403, response.text
        assert response.json()["error"] == "forbidden_op"
