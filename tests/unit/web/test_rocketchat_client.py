"""Rocket.Chat's shapes as PyPI's rocketchat-API client sees them, against a real hub:
``me``, ``users.info``, ``users.getPresence`` of the caller, the role every user has,
Rocket.Chat's errorTypes, and 403 before existence."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from rocketchat_API.APIExceptions.RocketExceptions import RocketApiException
from rocketchat_API.rocketchat import RocketChat

from tests.support.hubproc import rc_headers, user_token
from tests.support.inproc import InProcessHub, inproc_hub_fixture
from tests.support.wsclient import WsClient, connect_user

hub = inproc_hub_fixture({"HUB_OFFLINE_GRACE_S": "0"})


def uid(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


def client(hub: InProcessHub, user: str) -> RocketChat:
    """The vendor's client, signed in with a hub user token as its auth token."""
    return RocketChat(user_id=user, auth_token=user_token(user), server_url=hub.url, timeout=10)


@pytest.fixture
async def sockets() -> AsyncIterator[list[WsClient]]:
    opened: list[WsClient] = []
    yield opened
    for socket in opened:
        await socket.close()


async def online(hub: InProcessHub, sockets: list[WsClient], user: str, **claims: Any
                 ) -> WsClient:  # fmt: skip
    socket = await connect_user(hub.ws_url, user_token(user, **claims))
    sockets.append(socket)
    return socket


async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run one of the client's (blocking) calls off the event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def test_me_checks_credentials_and_shows_the_caller(
    hub: InProcessHub, sockets: list[WsClient]
) -> None:
    """``me()`` answers the caller as Rocket.Chat does (with ``success``), and a wrong
    token is refused."""
    user = uid("me")
    socket = await online(hub, sockets, user, name="Me Myself", username=user)
    await socket.request({"op": "status", "status": "busy", "text": "deep work"})
    me = await call(client(hub, user).me)
    assert me["success"] is True and me["_id"] == user and me["username"] == user
    assert (me["name"], me["status"], me["statusText"]) == ("Me Myself", "busy", "deep work")
    assert me["active"] is True and me["roles"] == ["user"] and "preferences" in me["settings"]
    wrong = RocketChat(user_id=user, auth_token="not-a-token", server_url=hub.url, timeout=10)
    with pytest.raises(Exception) as refused:
        await call(wrong.me)
    assert "401" in str(refused.value) or "logged in" in str(refused.value)


async def test_users_info_by_id_and_username(hub: InProcessHub, sockets: list[WsClient]) -> None:
    """``users_info`` finds a user by id or username; an unknown one is Rocket.Chat's
    error-invalid-user."""
    target, caller = uid("t"), uid("c")
    await online(hub, sockets, target, name="Target", username=f"user.{target}",
                 roles=["admin"])  # fmt: skip
    rc = client(hub, caller)
    for kwargs in ({"user_id": target}, {"username": f"user.{target}"}):
        info = await call(rc.users_info, **kwargs)
        assert info["success"] is True
        user = info["user"]
        assert (user["_id"], user["username"], user["name"]) == (target, f"user.{target}",
                                                                 "Target")  # fmt: skip
        assert user["status"] == "online" and user["roles"] == ["admin"]
    with pytest.raises(RocketApiException) as missing:
        await call(rc.users_info, user_id=uid("nobody"))
    assert missing.value.status_code == 400
    assert missing.value.error_type == "error-invalid-user"
    assert "does not match any users" in missing.value.error


async def test_get_presence_without_a_parameter_is_the_callers(
    hub: InProcessHub, sockets: list[WsClient]
) -> None:
    """``users.getPresence`` with no parameter answers the caller's own presence."""
    user = uid("p")
    socket = await online(hub, sockets, user)
    await socket.request({"op": "status", "status": "away"})
    rc = client(hub, user)
    own = await call(rc.call_api_get, "users.getPresence")
    assert (own["presence"], own["connectionStatus"], own["success"]) == ("away", "online",
                                                                          True)  # fmt: skip
    other = await call(rc.users_get_presence, user_id=user)
    assert other["presence"] == "away"


async def test_a_user_without_roles_has_the_role_user(
    hub: InProcessHub, sockets: list[WsClient]
) -> None:
    """A token with no roles claim: ``roles: ["user"]``, found by ``roles[]=user``; a bot
    whose roles are ``["bot"]`` shows no ``user`` and is not found by it."""
    stem = uid("roles")
    plain, bot = f"{stem}-plain", f"{stem}-bot"
    await online(hub, sockets, plain, name=f"Plain {stem}")
    await online(hub, sockets, bot, name=f"Bot {stem}", roles=["bot"], type="bot")
    rc = client(hub, plain)
    found = await call(rc.call_api_get, "users.listByStatus", searchTerm=stem, roles=["user"])
    by_id = {u["_id"]: u for u in found["users"]}
    assert by_id[plain]["roles"] == ["user"]
    assert set(by_id) == {plain}, "roles[]=user finds the users whose roles show user"
    bots = await call(rc.call_api_get, "users.listByStatus", searchTerm=stem, roles=["bot"])
    assert [u["_id"] for u in bots["users"]] == [bot]


async def test_set_status_errors_use_rocketchats_error_types(hub: InProcessHub) -> None:
    """An unknown status is error-invalid-status; setting another user's status is 403
    whether or not that user exists (nothing to enumerate)."""
    user = uid("s")
    rc = client(hub, user)
    with pytest.raises(RocketApiException) as bad:
        await call(rc.users_set_status, "hi", status="dnd")
    assert (bad.value.status_code, bad.value.error_type) == (400, "error-invalid-status")
    assert "status" in bad.value.error
    victim = uid("victim")
    await call(client(hub, victim).users_set_status, "mine", status="busy")
    async with httpx.AsyncClient(base_url=hub.url, timeout=10, trust_env=False) as http:
        for body in ({"userId": victim}, {"userId": uid("ghost")}, {"username": victim},
                     {"username": uid("ghost")}):  # fmt: skip
            response = await http.post("/api/v1/users.setStatus",
                                       json={**body, "status": "offline"},
                                       headers=rc_headers(user))  # fmt: skip
            assert response.status_code == 403, (body, response.text)
            assert response.json()["errorType"] == "error-not-allowed"
        presence = await http.get("/api/v1/users.getPresence", params={"userId": victim},
                                  headers=rc_headers(user))  # fmt: skip
    assert presence.json()["presence"] == "offline"  # no socket: offline, status kept
    info = await call(rc.users_info, user_id=victim)
    assert info["user"]["statusText"] == "mine"
