"""CometChat's GET /v3/users (seed 001) against a real hub: shape, filters, paging, errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.backends.compat import connect, uid, wait_offline
from tests.support.hubproc import ADMIN_HEADERS, TEST_ADMIN_KEY
from tests.support.inproc import InProcessHub
from tests.support.wsclient import WsClient

KEY = {"apikey": TEST_ADMIN_KEY}


async def listing(http: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await http.get("/v3/users", params=params, headers=KEY)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def uids(body: dict[str, Any]) -> list[str]:
    return [u["uid"] for u in body["data"]]


def assert_cc_error(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "devMessage", "source", "code"}
    for word in words:
        assert word in error["devMessage"], error


async def test_users_as_the_page_shows_them(
    hub: InProcessHub, http: httpx.AsyncClient, sockets: list[WsClient]
) -> None:
    """A page has data (uid, name, status, role, times), meta.pagination and a cursor."""
    stem = uid("cc")
    await connect(
        hub,
        sockets,
        f"{stem}-a",
        name="Barry Allen",
        roles=["manager"],
        avatar="http://placehold.it/120x120",
        metadata={"email": "b@example.com"},
    )
    await connect(hub, sockets, f"{stem}-b")  # fmt: skip
    await sockets[-1].close()
    await wait_offline(http, f"{stem}-b")
    body = await listing(http, searchKey=stem)
    barry, other = body["data"]
    assert barry["uid"] == f"{stem}-a" and barry["name"] == "Barry Allen"
    assert barry["status"] == "available" and barry["role"] == "manager"
    assert barry["avatar"] == "http://placehold.it/120x120"
    assert barry["metadata"] == {"email": "b@example.com"}
    assert isinstance(barry["createdAt"], int) and barry["createdAt"] < 10**11, "seconds"
    assert barry["updatedAt"] >= barry["createdAt"]
    assert other["status"] == "offline" and other["role"] == "default"
    assert "tags" not in barry
    assert body["meta"]["pagination"] == {
        "total": 2, "count": 2, "per_page": 100, "current_page": 1, "total_pages": 1,
    }  # fmt: skip
    assert body["cursor"]["affix"] == "prepend"
    assert body["cursor"]["updatedAt"] == max(barry["updatedAt"], other["updatedAt"])


async def test_apikey_must_be_the_admin_key(http: httpx.AsyncClient) -> None:
    """No apikey or a wrong one is a 401; a bearer admin key is not CometChat's header."""
    assert_cc_error(await http.get("/v3/users"), 401, "apikey")
    assert_cc_error(await http.get("/v3/users", headers={"apikey": "nope"}), 401, "apikey")
    assert_cc_error(await http.get("/v3/users", headers=ADMIN_HEADERS), 401, "apikey")


async def test_search_key_is_a_prefix_of_uid_or_name(
    hub: InProcessHub, http: httpx.AsyncClient, sockets: list[WsClient]
) -> None:
    """searchKey matches the start of the uid or the name; searchIn narrows it."""
    stem = uid("sk")
    await connect(hub, sockets, f"{stem}-1", name="Zed")
    await connect(hub, sockets, f"zz-{stem}", name=f"{stem} by name")
    assert uids(await listing(http, searchKey=stem)) == [f"{stem}-1", f"zz-{stem}"]
    assert uids(await listing(http, searchKey=stem, searchIn="uid")) == [f"{stem}-1"]
    assert uids(await listing(http, searchKey=stem, searchIn="name")) == [f"zz-{stem}"]
    assert uids(await listing(http, searchKey=stem.upper(), searchIn="name,uid")) == [
        f"{stem}-1", f"zz-{stem}"]  # fmt: skip
    assert uids(await listing(http, searchKey=f"x{stem}")) == []


async def test_status_available_or_offline(
    hub: InProcessHub, http: httpx.AsyncClient, sockets: list[WsClient]
) -> None:
    """status=available lists users not offline (busy included); offline the others."""
    stem = uid("st")
    await connect(hub, sockets, f"{stem}-on")
    busy = await connect(hub, sockets, f"{stem}-busy")
    await busy.request({"op": "status", "status": "busy"})
    gone = await connect(hub, sockets, f"{stem}-off")
    await gone.close()
    await wait_offline(http, f"{stem}-off")
    assert uids(await listing(http, searchKey=stem, status="available")) == [
        f"{stem}-busy", f"{stem}-on"]  # fmt: skip
    assert uids(await listing(http, searchKey=stem, status="offline")) == [f"{stem}-off"]


async def test_roles_and_tags(
    hub: InProcessHub, http: httpx.AsyncClient, sockets: list[WsClient]
) -> None:
    """role, roles (any of them), tags (any of them) filter; withTags shows the tags."""
    stem = uid("rt")
    await connect(hub, sockets, f"{stem}-a", roles=["admin"], tags=["vip", "eu"])
    await connect(hub, sockets, f"{stem}-b", roles=["agent", "user"], tags=["us"])
    await connect(hub, sockets, f"{stem}-c")
    assert uids(await listing(http, searchKey=stem, role="admin")) == [f"{stem}-a"]
    assert uids(await listing(http, searchKey=stem, roles="admin,agent")) == [
        f"{stem}-a", f"{stem}-b"]  # fmt: skip
    by_tag = await listing(http, searchKey=stem, tags="us", withTags="true")
    assert uids(by_tag) == [f"{stem}-b"] and by_tag["data"][0]["tags"] == ["us"]
    tagged = await listing(http, searchKey=stem, withTags="true")
    assert [u["tags"] for u in tagged["data"]] == [["vip", "eu"], ["us"], []]


async def test_deactivated_users(
    hub: InProcessHub, http: httpx.AsyncClient, sockets: list[WsClient]
) -> None:
    """Deactivated users are left out unless withDeactivated or onlyDeactivated asks."""
    stem = uid("dv")
    await connect(hub, sockets, f"{stem}-a")
    await connect(hub, sockets, f"{stem}-b")
    response = await http.post(f"/o/a/users/{stem}-b/deactivate", headers=ADMIN_HEADERS)
    assert response.status_code == 200
    assert uids(await listing(http, searchKey=stem)) == [f"{stem}-a"]
    both = await listing(http, searchKey=stem, withDeactivated="true")
    assert uids(both) == [f"{stem}-a", f"{stem}-b"]
    assert "deactivatedAt" in both["data"][1] and "deactivatedAt" not in both["data"][0]
    assert uids(await listing(http, searchKey=stem, onlyDeactivated="true")) == [f"{stem}-b"]


async def test_pages(hub: InProcessHub, http: httpx.AsyncClient, sockets: list[WsClient]) -> None:
    """perPage and page walk the list; the pagination counts pages from the total."""
    stem = uid("pg")
    names = [f"{stem}-{i}" for i in range(5)]
    for name in names:
        await connect(hub, sockets, name)
    seen: list[str] = []
    for page in (1, 2, 3):
        body = await listing(http, searchKey=stem, perPage=2, page=page, count="true")
        seen += uids(body)
        assert body["meta"]["pagination"] == {
            "total": 5, "count": len(body["data"]), "per_page": 2, "current_page": page,
            "total_pages": 3,
        }  # fmt: skip
    assert seen == names
    past = await listing(http, searchKey=stem, perPage=2, page=9)
    assert past["data"] == [] and "cursor" not in past


@pytest.mark.parametrize(
    ("params", "field"),
    [({"perPage": "1001"}, "perPage"), ({"perPage": "0"}, "perPage"),
     ({"perPage": "abc"}, "perPage"), ({"perPage": "1e3"}, "perPage"),
     ({"perPage": "1000.0"}, "perPage"), ({"page": "2e0"}, "page"),
     ({"page": "0"}, "page"), ({"page": "one"}, "page"), ({"status": "busy"}, "status"),
     ({"searchIn": "email"}, "searchIn"), ({"withTags": "maybe"}, "withTags"),
     ({"onlyDeactivated": "2"}, "onlyDeactivated"), ({"count": "yes please"}, "count")],
)  # fmt: skip
async def test_bad_parameters_are_a_400(
    http: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    """A parameter out of range or of the wrong kind is a 400 whose devMessage names it."""
    response = await http.get("/v3/users", params=params, headers=KEY)
    assert_cc_error(response, 400, field)
