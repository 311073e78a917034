"""The registry contract for users, one suite for memory, Redis and Redis Cluster."""

from __future__ import annotations

import pytest

from hub.model.text import InvalidText
from hub.stores.registry import Registry
from hub.stores.registry.base import Admission, Conflict, User, UserChanges
from hub.stores.registry.passwords import hash_password, verify_password
from hub.stores.registry.query import Sort, UserQuery, list_users
from tests.backends.registry import RegistryFactory


def user(uid: str, username: str = "", **fields: object) -> User:
    return User(id=uid, username=username or uid, **fields)  # type: ignore[arg-type]


async def test_create_and_get_round_trip_every_field(registry: Registry) -> None:
    """Every account field survives the store, stamped with created and updated."""
    made = await registry.create(
        user(
            "u1", "Alice", name="Alice A.", avatar="https://a/1.png", roles=("admin", "user"),
            tags=("vip",), metadata={"email": "a@example.com", "n": 1}, type="bot",
            utc_offset=5.5,
        ),
        password_hash="scrypt$x",
    )  # fmt: skip
    got = await registry.get("u1")
    assert got == made
    assert got.username == "Alice" and got.roles == ("admin", "user") and got.tags == ("vip",)
    assert got.metadata == {"email": "a@example.com", "n": 1}
    assert got.type == "bot" and got.utc_offset == 5.5 and got.activated
    assert got.created > 0 and got.updated == got.created and got.last_login == 0
    assert got.uuid, "every account gets a uuid"
    assert not hasattr(got, "password") and "scrypt" not in repr(got)
    assert await registry.password_hash("u1") == "scrypt$x"


async def test_unknown_user_reads_as_none(registry: Registry) -> None:
    """Reads of an unknown user answer None (or nothing), never raise."""
    assert await registry.get("ghost") is None
    assert await registry.get_many(["ghost"]) == []
    assert await registry.find_username("ghost") is None
    assert await registry.password_hash("ghost") is None
    assert await registry.access("ghost") is None
    assert await registry.update("ghost", UserChanges(name="x")) is None
    assert await registry.set_activated("ghost", False) is None
    assert not await registry.set_password("ghost", "h")
    assert await registry.delete("ghost") is None


async def test_id_and_username_are_unique_case_insensitively(registry: Registry) -> None:
    """A second account with the same id, or a username differing only in case, is refused."""
    await registry.create(user("u1", "Alice"))
    with pytest.raises(Conflict) as same_id:
        await registry.create(user("u1", "other"))
    assert same_id.value.field == "id"
    with pytest.raises(Conflict) as same_name:
        await registry.create(user("u2", "aLiCe"))
    assert same_name.value.field == "username"
    assert await registry.get("u2") is None, "a refused create changes nothing"
    assert await registry.count() == 1


async def test_find_username_ignores_case(registry: Registry) -> None:
    """Username lookups are case-insensitive and answer the user id."""
    await registry.create(user("id-7", "Bob.Smith"))
    assert await registry.find_username("bob.smith") == "id-7"
    assert await registry.find_username("BOB.SMITH") == "id-7"


async def test_get_many_keeps_order_and_skips_unknown(registry: Registry) -> None:
    """get_many answers the known users in the order asked."""
    for uid in ("a", "b", "c"):
        await registry.create(user(uid))
    assert [u.id for u in await registry.get_many(["c", "x", "a"])] == ["c", "a"]


async def test_update_changes_fields_and_stamps_updated(registry: Registry) -> None:
    """update sets only the given fields and moves updated forward."""
    made = await registry.create(user("u1", name="Old", roles=("user",)))
    changed = await registry.update(
        "u1", UserChanges(name="New", tags=("t1",), metadata={"k": "v"}, utc_offset=-3.0)
    )
    assert changed is not None
    assert changed.name == "New" and changed.tags == ("t1",) and changed.metadata == {"k": "v"}
    assert changed.roles == ("user",) and changed.utc_offset == -3.0
    assert changed.updated >= made.updated and changed.created == made.created
    assert await registry.get("u1") == changed


async def test_activation_and_access(registry: Registry) -> None:
    """access reads the activation flag: True, False after deactivation, True again."""
    await registry.create(user("u1"))
    assert await registry.access("u1") is True
    off = await registry.set_activated("u1", False)
    assert off is not None and not off.activated
    assert await registry.access("u1") is False
    assert (await registry.set_activated("u1", True)).activated  # type: ignore[union-attr]
    assert await registry.access("u1") is True


async def test_password_hash_is_replaced(registry: Registry) -> None:
    """set_password stores a new hash that verifies the new password only."""
    await registry.create(user("u1"), password_hash=hash_password("old"))
    assert await registry.set_password("u1", hash_password("new"))
    stored = await registry.password_hash("u1")
    assert stored and verify_password("new", stored) and not verify_password("old", stored)


async def test_admit_without_auto_register_refuses_unknown(registry: Registry) -> None:
    """An unknown user is UNKNOWN and stays unregistered when auto-registration is off."""
    assert await registry.admit(user("u1"), auto_register=False) is Admission.UNKNOWN
    assert await registry.get("u1") is None


async def test_admit_registers_from_claims_and_records_logins(registry: Registry) -> None:
    """Auto-registration creates the account once; later admits record the login time."""
    first = await registry.admit(user("u1", "Neo", roles=("user",)), auto_register=True)
    assert first is Admission.CREATED
    created = await registry.get("u1")
    assert created is not None and created.username == "Neo" and created.roles == ("user",)
    assert created.last_login >= created.created > 0
    again = await registry.admit(user("u1", "ignored"), auto_register=True)
    assert again is Admission.OK
    later = await registry.get("u1")
    assert later is not None and later.username == "Neo", "known accounts are not rewritten"
    assert later.last_login >= created.last_login


async def test_admit_refuses_deactivated_and_taken(registry: Registry) -> None:
    """A deactivated user is DEACTIVATED; a new user claiming a taken username is TAKEN."""
    await registry.create(user("u1", "neo"))
    await registry.set_activated("u1", False)
    assert await registry.admit(user("u1"), auto_register=True) is Admission.DEACTIVATED
    assert await registry.admit(user("u2", "NEO"), auto_register=True) is Admission.TAKEN
    assert await registry.get("u2") is None


async def test_delete_frees_id_and_username(registry: Registry) -> None:
    """A deleted account is gone from reads and orders; its id and username are free."""
    await registry.create(user("u1", "neo"))
    await registry.create(user("u2", "trinity"))
    gone = await registry.delete("u1")
    assert gone is not None and gone.username == "neo"
    assert await registry.get("u1") is None and await registry.find_username("neo") is None
    assert await registry.ordered("created", 0, 10) == ["u2"]
    assert await registry.ordered("username", 0, 10) == ["u2"]
    assert await registry.count() == 1
    again = await registry.create(user("u1", "NEO"))
    assert again.username == "NEO"


async def test_orders_are_stable(registry: Registry) -> None:
    """Users are ordered by creation and by username (case-insensitive, ties by id)."""
    for uid, name in (("z", "bob"), ("y", "Alice"), ("x", "carol")):
        await registry.create(user(uid, name))
    assert await registry.ordered("created", 0, 10) == ["z", "y", "x"]
    assert await registry.ordered("username", 0, 10) == ["y", "z", "x"]
    assert await registry.ordered("username", 1, 2) == ["z"]
    assert await registry.ordered("created", 5, 10) == []


async def test_keyset_pages_cover_everyone_once(registry: Registry) -> None:
    """Paging with after() visits every user exactly once, in creation order."""
    ids = [f"u{i:02d}" for i in range(23)]
    for uid in ids:
        await registry.create(user(uid))
    seen: list[str] = []
    key = None
    while True:
        page = await registry.after("created", key, 5)
        if not page:
            break
        seen += [uid for _, uid in page]
        key = page[-1][0]
    assert seen == ids


async def test_listing_filters_sorts_and_pages(registry: Registry) -> None:
    """list_users filters by roles, tags, type, activation, login and text, and pages."""
    await registry.create(user("a", "anna", name="Anna", roles=("admin",), tags=("x",)))
    await registry.create(user("b", "bert", name="Bert", roles=("user",), type="bot"))
    await registry.create(user("c", "carl", name="Carl Anders", roles=("user",), tags=("y",)))
    await registry.admit(user("c"), auto_register=True)
    await registry.set_activated("b", False)

    async def ids(
        query: UserQuery, sort: Sort | None = None, offset: int = 0, limit: int = 10
    ) -> list[str]:
        page = await list_users(registry, query, sort or Sort(), offset, limit)
        return [u.id for u in page.users]  # fmt: skip

    assert await ids(UserQuery()) == ["a", "b", "c"]
    assert await ids(UserQuery(roles=frozenset({"user"}))) == ["b", "c"]
    assert await ids(UserQuery(tags=frozenset({"x", "y"}))) == ["a", "c"]
    assert await ids(UserQuery(type="bot")) == ["b"]
    assert await ids(UserQuery(activated=False)) == ["b"]
    assert await ids(UserQuery(logged_in=True)) == ["c"]
    assert await ids(UserQuery(search="AND")) == ["c"], "search is a substring of name too"
    assert await ids(UserQuery(prefix="an", prefix_fields=frozenset({"name"}))) == ["a"]
    assert await ids(UserQuery(prefix="b", prefix_fields=frozenset({"id"}))) == ["b"]
    assert await ids(UserQuery(ids=frozenset({"c", "a", "zz"}))) == ["a", "c"]
    assert await ids(UserQuery(), Sort((("username", -1),))) == ["c", "b", "a"]
    assert await ids(UserQuery(), Sort((("created", -1),)), offset=1, limit=1) == ["b"]
    assert await ids(UserQuery(), Sort((("last_login", -1), ("username", 1)))) == ["c", "a", "b"]
    page = await list_users(registry, UserQuery(roles=frozenset({"user"})), Sort(), 0, 1)
    assert [u.id for u in page.users] == ["b"] and page.total == 2 and page.more
    quick = await list_users(
        registry, UserQuery(roles=frozenset({"user"})), Sort(), 0, 1, want_total=False
    )
    assert quick.total is None and quick.more


async def test_two_nodes_see_one_registry(make_registry: RegistryFactory) -> None:
    """What one node registers, another node reads (they share the backend)."""
    one = await make_registry()
    two = await make_registry()
    await one.create(user("u1", "shared"))
    assert await two.find_username("SHARED") == "u1"
    await two.set_activated("u1", False)
    assert await one.access("u1") is False


@pytest.mark.parametrize(
    ("user", "field"),
    [
        (User(id="\ud800", username="ok"), "id"),
        (User(id="u-sur", username="a\udc00"), "username"),
        (User(id="u-sur", username="ok", name="\ud800"), "name"),
        (User(id="u-sur", username="ok", roles=("user", "\ud800")), "roles"),
        (User(id="u-sur", username="ok", metadata={"nick": "\ud800"}), "metadata"),
    ],
)
async def test_account_text_must_be_valid_unicode(registry: Registry, user, field) -> None:
    """An account whose id, username, name, roles or metadata hold a lone surrogate is
    refused on create and on admit (InvalidText naming the field); nothing is stored."""
    with pytest.raises(InvalidText) as caught:
        await registry.create(user)
    assert caught.value.field == field and "surrogate" in str(caught.value)
    with pytest.raises(InvalidText):
        await registry.admit(user, auto_register=True)
    assert await registry.count() == 0
    await registry.create(User(id="fine", username="fine"))
    with pytest.raises(InvalidText):
        await registry.update("fine", UserChanges(name="\ud800"))
    assert (await registry.get("fine")).name == ""  # type: ignore[union-attr]
