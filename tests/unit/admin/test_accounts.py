"""Account administration in one process: passwords, deletion, the checks on hello and REST."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from hub.model.auth import verify_token
from hub.node.admin import Admin
from hub.node.node import Node
from hub.node.rooms import Rooms
from hub.ops.config import Settings
from hub.stores.presence.base import Control, Event, Profile
from hub.stores.presence.memory import MemoryStore
from hub.stores.registry.base import Conflict, User
from hub.stores.registry.memory import MemoryRegistry
from hub.wire.hub import CloseCode
from tests.support import eventually
from tests.support.hubproc import TEST_SECRET, user_token

SETTINGS = Settings(secret=TEST_SECRET, admin_key="k" * 30)


@pytest.fixture
async def admin() -> AsyncIterator[Admin]:
    node = Node(SETTINGS, MemoryStore(grace_ms=0))
    registry = MemoryRegistry()
    service = Admin(node, registry, Rooms(node, registry))
    yield service
    await service.stop()


async def test_passwords_are_hashed_and_checked(admin: Admin) -> None:
    """A registered password verifies; a new one replaces it; the stored form is a hash."""
    await admin.register(User(id="u1", username="u1"), "s3cret")
    stored = await admin.registry.password_hash("u1")
    assert stored and stored.startswith("scrypt$") and "s3cret" not in stored
    assert await admin.check_password("u1", "s3cret")
    assert not await admin.check_password("u1", "wrong")
    assert await admin.set_password("u1", "n3w")
    assert await admin.check_password("u1", "n3w")
    assert not await admin.check_password("u1", "s3cret")
    assert not await admin.check_password("ghost", "x")


async def test_registering_makes_the_user_known_offline(admin: Admin) -> None:
    """A registered user is known to presence (offline) before it ever connects."""
    await admin.register(User(id="u1", username="Neo", name="Thomas"))
    view = await admin.node.store.get("u1")
    assert view is not None and view.status == "offline" and view.name == "Thomas"
    with pytest.raises(Conflict):
        await admin.register(User(id="u2", username="neo"))


async def test_delete_leaves_rooms_and_closes_sockets(admin: Admin) -> None:
    """Deleting a user removes it from its rooms and sends a 4004 control message."""
    await admin.register(User(id="u1", username="u1"))
    await admin.rooms.add_member("lobby", "u1")
    store = admin.node.store
    assert isinstance(store, MemoryStore)
    seen: list[Event] = []

    async def read() -> None:
        async for event in store.events():
            seen.append(event)

    reader = asyncio.create_task(read())
    try:

        async def listening() -> bool:
            return store.feed_consumers > 0

        await eventually(listening)
        deleted = await admin.delete("u1")
        assert deleted is not None and deleted.id == "u1"
        assert await admin.registry.members("lobby") == set()
        control = Control("u1", CloseCode.DISCONNECTED, "user deleted by an admin")

        async def closed() -> bool:
            return control in seen

        await eventually(closed)
        assert await admin.delete("u1") is None
    finally:
        reader.cancel()


async def test_hello_check(admin: Admin) -> None:
    """The hello check admits and registers, refuses deactivated users with 4003."""
    claims = verify_token(TEST_SECRET, user_token("u1", name="One", roles=["agent"]))
    assert await admin.gate(claims) is None
    account = await admin.registry.get("u1")
    assert account is not None and account.roles == ("agent",) and account.name == "One"
    await admin.node.store.connect("n1", "c1", Profile("u1"), "online")
    assert await admin.deactivate("u1") is not None
    assert (await admin.node.store.get("u1")).status == "offline"  # type: ignore[union-attr]
    assert await admin.gate(claims) == (CloseCode.DEACTIVATED, "user is deactivated")
    assert await admin.refusal("u1") == "user is deactivated"
    await admin.activate("u1")
    assert await admin.gate(claims) is None and await admin.refusal("u1") is None


async def test_closed_registration(admin: Admin) -> None:
    """With auto-registration off, unknown users are refused on hello and on REST."""
    admin.settings = replace(SETTINGS, auto_register=False)
    claims = verify_token(TEST_SECRET, user_token("stranger"))
    refusal = await admin.gate(claims)
    assert refusal is not None and refusal[0] == CloseCode.NOT_AUTHENTICATED
    assert await admin.refusal("stranger") == "unknown user"
    assert await admin.registry.get("stranger") is None


async def test_delete_oldest_pages_with_a_cursor(admin: Admin) -> None:
    """delete_oldest removes accounts in creation order and says where to go on."""
    for uid in ("a", "b", "c"):
        await admin.register(User(id=uid, username=uid))
    first = await admin.delete_oldest(2, None)
    assert [u.id for u in first.users] == ["a", "b"] and first.cursor is not None
    rest = await admin.delete_oldest(2, first.cursor)
    assert [u.id for u in rest.users] == ["c"] and rest.cursor is None
    assert await admin.registry.count() == 0
