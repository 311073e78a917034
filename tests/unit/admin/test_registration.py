"""Who may connect: auto-registration from token claims, or registered users only."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.hubproc import ADMIN_HEADERS, TEST_ADMIN_KEY, rc_headers
from tests.support.hubproc import user_token as token
from tests.support.inproc import InProcessHub
from tests.support.wsclient import WsClient, connect_user


def name(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


def hub_with(**env: str) -> Iterator[InProcessHub]:
    hub = InProcessHub({"HUB_OFFLINE_GRACE_S": "0", **env}).start()
    try:
        yield hub
    finally:
        hub.stop()
    hub.assert_no_tracebacks()


@pytest.fixture
def closed_hub() -> Iterator[InProcessHub]:
    """A hub that admits registered users only (HUB_AUTO_REGISTER=false)."""
    yield from hub_with(HUB_AUTO_REGISTER="false")


@pytest.fixture
def open_hub() -> Iterator[InProcessHub]:
    yield from hub_with()


async def test_first_connect_registers_the_user_from_its_claims(open_hub: InProcessHub) -> None:
    """With auto-registration a new user's token claims become its account."""
    user = name("neo")
    claims = token(user, name="Thomas Anderson", username=f"{user}-handle", roles=["agent"],
                   tags=["vip"], type="bot", metadata={"team": "red"})  # fmt: skip
    client = await connect_user(open_hub.ws_url, claims)
    try:
        async with httpx.AsyncClient(base_url=open_hub.url) as http:
            cc = await http.get("/v3/users", params={"searchKey": user, "withTags": "true"},
                                headers={"apikey": TEST_ADMIN_KEY})  # fmt: skip
            (account,) = cc.json()["data"]
            assert account["uid"] == user and account["name"] == "Thomas Anderson"
            assert account["role"] == "agent" and account["tags"] == ["vip"]
            assert account["metadata"] == {"team": "red"} and account["status"] == "available"
            agora = await http.get(f"/o/a/users/{user}-HANDLE", headers=ADMIN_HEADERS)
            assert agora.json()["entities"][0]["username"] == f"{user}-handle"
            rc = await http.get("/api/v1/users.listByStatus", params={"searchTerm": user},
                                headers=rc_headers(user))  # fmt: skip
            assert rc.json()["users"][0]["type"] == "bot"
    finally:
        await client.close()


async def test_a_token_claiming_a_taken_username_is_refused(open_hub: InProcessHub) -> None:
    """A new user whose token claims another user's username is closed with 4001."""
    owner = name("owner")
    async with httpx.AsyncClient(base_url=open_hub.url) as http:
        made = await http.post("/o/a/users", json={"username": owner, "password": "p"},
                               headers=ADMIN_HEADERS)  # fmt: skip
        assert made.status_code == 200
    client = await WsClient.open(open_hub.ws_url)
    try:
        await client.send({"op": "hello", "token": token(name("impostor"), username=owner)})
        assert await client.wait_closed() == 4001
        assert "belongs to another user" in client.close_reason
    finally:
        await client.close()


async def test_without_auto_registration_only_registered_users_connect(
    closed_hub: InProcessHub,
) -> None:
    """Unknown users are refused (4001 on hello, 401 on REST); registered ones get in."""
    stranger, member = name("stranger"), name("member")
    client = await WsClient.open(closed_hub.ws_url)
    try:
        await client.send({"op": "hello", "token": token(stranger)})
        assert await client.wait_closed() == 4001
        assert "unknown user" in client.close_reason
    finally:
        await client.close()
    async with httpx.AsyncClient(base_url=closed_hub.url) as http:
        refused = await http.get("/api/v1/users.presence", headers=rc_headers(stranger))
        assert refused.status_code == 401
        made = await http.post("/o/a/users", json={"username": member, "password": "p"},
                               headers=ADMIN_HEADERS)  # fmt: skip
        assert made.status_code == 200
        known = await http.get(f"/o/a/users/{member}/status", headers=ADMIN_HEADERS)
        assert known.json()["data"] == {member: "offline"}, "registered: known, offline"
        rc = await http.get("/api/v1/users.getPresence", params={"userId": member},
                            headers=rc_headers(member))  # fmt: skip
        assert rc.json()["presence"] == "offline"
        client = await connect_user(closed_hub.ws_url, token(member))
        try:
            assert client.ready is not None and client.ready["user"]["status"] == "online"
        finally:
            await client.close()
