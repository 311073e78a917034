"""Request bodies against a real hub: one size limit (413) on the declared length and while
streaming, and bad JSON (too deep, lone surrogates, wrong types) a 400 naming the field
that changes nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support.hubproc import ADMIN_HEADERS, TEST_ADMIN_KEY, rc_headers, user_token
from tests.support.inproc import InProcessHub, inproc_hub_fixture
from tests.support.wsclient import connect_user

hub = inproc_hub_fixture({"HUB_OFFLINE_GRACE_S": "0"})
DEEP = 1500
#: The documented body limit (hub.api.body.MAX_BODY_BYTES).
MAX_BODY_BYTES = 256 * 1024


def uid(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def http(hub: InProcessHub) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hub.url, timeout=30, trust_env=False) as client:
        yield client


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


#: Every endpoint that reads a body: (method, path, headers).
def body_endpoints(user: str) -> list[tuple[str, str, dict[str, str]]]:
    return [
        ("POST", "/api/v1/users.setStatus", rc_headers(user)),
        ("POST", "/o/a/users", ADMIN_HEADERS),
        ("POST", "/o/a/users/batch/status", ADMIN_HEADERS),
        ("PUT", f"/o/a/users/{user}/password", ADMIN_HEADERS),
        ("POST", "/api/1.1/users/list", {}),
        ("POST", "/api/1.1/room/create", {}),
    ]


async def test_a_body_over_the_limit_is_413_on_every_endpoint(http: httpx.AsyncClient) -> None:
    """A body one byte over the limit, with its Content-Length, is a 413 everywhere."""
    user = uid("big")
    made = await http.post("/o/a/users", json={"username": user, "password": "p"},
                           headers=ADMIN_HEADERS)  # fmt: skip
    assert made.status_code == 200, made.text
    body = b'{"message":"' + b"m" * MAX_BODY_BYTES + b'"}'
    for method, path, headers in body_endpoints(user):
        response = await http.request(
            method, path, content=body, headers={**headers, "Content-Type": "application/json"}
        )
        assert response.status_code == 413, (path, response.text)
        assert str(MAX_BODY_BYTES) in response.text, path


async def test_a_declared_length_over_the_limit_is_refused_before_reading(
    hub: InProcessHub,
) -> None:
    """Content-Length: 1 GB with no body sent: answered 413 at once, not waited for."""
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    try:
        writer.write(
            b"POST /api/1.1/users/list HTTP/1.1\r\nHost: hub\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n"
        )
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), timeout=10)
    finally:
        writer.close()
    assert status.split()[1] == b"413", status


async def test_deep_nesting_is_400_naming_the_field(http: httpx.AsyncClient) -> None:
    """1,500 levels of nesting in a body field or in listByStatus's sort: 400 naming it."""
    user = uid("deep")
    cases = [
        (b'{"message":' + nested(DEEP) + b"}", "message"),
        (b'{"status":"busy","extra":' + nested(DEEP) + b"}", "extra"),
        (nested(DEEP), "body"),
    ]
    for body, field in cases:
        response = await http.post("/api/v1/users.setStatus", content=body,
                                   headers={**rc_headers(user),
                                            "Content-Type": "application/json"})  # fmt: skip
        assert response.status_code == 400, response.text
        assert response.json()["success"] is False and field in response.json()["error"]
    sort = '{"username":' + "[" * DEEP + "]" * DEEP + "}"
    response = await http.get("/api/v1/users.listByStatus", params={"sort": sort},
                              headers=rc_headers(user))  # fmt: skip
    assert response.status_code == 400, response.text
    assert "sort" in response.json()["error"]
    for path, headers in (("/o/a/users/batch/status", ADMIN_HEADERS),
                          ("/api/1.1/room/create", {})):  # fmt: skip
        body = b'{"api_key":"' + TEST_ADMIN_KEY.encode() + b'","usernames":' + nested(DEEP)
        response = await http.post(
            path, content=body + b"}", headers={**headers, "Content-Type": "application/json"}
        )
        assert response.status_code == 400, (path, response.text)


async def test_lone_surrogates_are_400_naming_the_field_and_change_nothing(
    hub: InProcessHub, http: httpx.AsyncClient
) -> None:
    """A lone surrogate (a JSON escape) in setStatus's message, in a user id, a room name or
    an Agora username is a 400 naming the field; the user's presence is as before and
    the room list still answers."""
    user = uid("s")
    client = await connect_user(hub.ws_url, user_token(user))
    try:
        cases = [
            ("POST", "/api/v1/users.setStatus", rc_headers(user),
             b'{"status":"busy","message":"\\ud800"}', "message"),
            ("POST", "/api/v1/users.setStatus", ADMIN_HEADERS,
             b'{"status":"busy","userId":"\\udfff"}', "userId"),
            ("POST", "/api/1.1/room/create", {},
             b'{"api_key":"' + TEST_ADMIN_KEY.encode() + b'","room_name":"a\\ud83d"}',
             "room_name"),
            ("POST", "/o/a/users", ADMIN_HEADERS,
             b'{"username":"ok","password":"p","nickname":"\\ud800x"}', "nickname"),
            ("POST", "/o/a/users/batch/status", ADMIN_HEADERS,
             b'{"usernames":["fine","\\udc00"]}', "usernames[1]"),
        ]  # fmt: skip
        for method, path, headers, body, field in cases:
            response = await http.request(method, path, content=body,
                                          headers={**headers,
                                                   "Content-Type": "application/json"})  # fmt: skip
            assert response.status_code == 400, (path, response.text)
            assert field in response.text and "Unicode" in response.text, response.text
        presence = await http.get("/api/v1/users.presence", params={"ids": user},
                                  headers=rc_headers(user))  # fmt: skip
        assert presence.status_code == 200
        [entry] = presence.json()["users"]
        assert (entry["status"], entry["statusText"]) == ("online", "")
        rooms = await http.post("/api/1.1/room/list", json={"api_key": TEST_ADMIN_KEY})
        assert rooms.status_code == 200
        assert not any("\ufffd" in r["room_name"] for r in rooms.json()["rooms"])
        assert (await http.get("/o/a/users/ok", headers=ADMIN_HEADERS)).status_code == 404
        # A real astral character (a valid surrogate pair) is fine.
        ok = await http.post("/api/v1/users.setStatus", headers=rc_headers(user),
                             content=b'{"message":"\\ud83d\\ude00"}')  # fmt: skip
        assert ok.status_code == 200, ok.text
    finally:
        await client.close()


async def test_wrong_types_name_the_field_and_the_expected_type(
    http: httpx.AsyncClient,
) -> None:
    """A value of the wrong type is a 400 naming the field and what was expected."""
    response = await http.post("/api/v1/users.setStatus", json={"status": ["busy"]},
                               headers=rc_headers(uid("t")))  # fmt: skip
    assert response.status_code == 400
    assert response.json()["error"].startswith("status: Expected `str | null`, got `array`")
    response = await http.post("/o/a/users/batch/status", json={"usernames": "bob"},
                               headers=ADMIN_HEADERS)  # fmt: skip
    assert response.status_code == 400
    assert "usernames" in response.json()["error_description"]


async def test_invalid_utf8_in_queries_and_paths_never_reaches_the_store_as_text(
    http: httpx.AsyncClient,
) -> None:
    """A query or path holding a UTF-8-encoded surrogate (``%ED%A0%80``) or invalid bytes
    is read as replacement characters: answered (no 5xx), never stored as a lone
    surrogate."""
    user = uid("q")
    for path in (
        "/api/v1/users.listByStatus?searchTerm=%ED%A0%80",
        "/api/v1/users.getPresence?username=%ED%A0%80%FF",
        "/api/v1/users.presence?ids=%ED%A0%80",
        "/v3/users?searchKey=%ED%A0%80",
        "/o/a/users/%ED%A0%80/status",
    ):
        headers = {"apikey": TEST_ADMIN_KEY} if path.startswith("/v3") else rc_headers(user)
        if path.startswith("/o/"):
            headers = ADMIN_HEADERS
        response = await http.get(path, headers=headers)
        assert response.status_code < 500, (path, response.text)
        response.json()
