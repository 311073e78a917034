"""Admin actions on users, and the checks that make them hold on every node.

- **The hello check** (:meth:`Admin.gate`, the node's ``gate``): one registry round trip per
  connect. A deactivated user is refused with 4003; an unknown one is registered from its
  token's claims (``HUB_AUTO_REGISTER``, on by default) or refused with 4001.
- **The REST check** (:meth:`Admin.refusal`): a user token of a deactivated user (or, with
  auto-registration off, of an unknown user) is refused; the admin key never is.
- **Deactivate** closes the user's sockets on every node with 4003 and refuses new ones
  until **activate**. **Disconnect** (Agora's "force offline", iFlyChat's "kick") closes
  them with 4004. Both make the user offline at once, with no grace: the store drops every
  connection of the user (``drop_user``), then a control message reaches every node, which
  closes its sockets of that user; those sessions are marked dropped, so their closing
  does not start a grace.

A hello that passed the check a moment before a deactivation could still register its
connection after the control message went by; :meth:`Admin.deactivate` therefore checks
again :data:`RECHECK_S` later and closes whatever got through.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from hub.model.auth import Claims
from hub.node.node import Core, Node
from hub.node.rooms import Rooms
from hub.stores.presence.base import Control, Profile, StoreUnavailable
from hub.stores.registry.base import (
    NO_METADATA,
    USER_TYPES,
    Admission,
    Registry,
    User,
    clean_username,
)
from hub.stores.registry.passwords import hash_password_async, verify_password_async
from hub.wire.hub import CloseCode

log = logging.getLogger("hub.admin")

#: When a deactivation looks again for a connection that raced past the hello check.
RECHECK_S = 1.0
#: Close code when the store cannot be reached during hello (the client retries).
TRY_AGAIN_LATER = 1013


def user_from_claims(claims: Claims) -> User:
    """The account a token describes, for auto-registration."""
    extra = claims.extra
    tags = extra.get("tags")
    metadata = extra.get("metadata")
    kind = extra.get("type")
    username = clean_username(claims.username or claims.user) or claims.user
    return User(
        id=claims.user,
        username=username,
        name=claims.name or username,
        avatar=claims.avatar,
        roles=claims.roles,
        tags=tuple(str(t) for t in tags) if isinstance(tags, list) else (),
        metadata=metadata if isinstance(metadata, dict) and metadata else NO_METADATA,
        type=kind if isinstance(kind, str) and kind in USER_TYPES else "user",
        utc_offset=claims.utc_offset,
    )


def profile_of(user: User) -> Profile:
    return Profile(
        id=user.id,
        username=user.username,
        name=user.name or user.username,
        avatar=user.avatar,
        utc_offset=user.utc_offset,
    )


@dataclass(frozen=True)
class Deleted:
    users: list[User]
    cursor: str | None


class Admin:
    """User administration for one node (every action reaches every node)."""

    def __init__(self, node: Node | Core, registry: Registry, rooms: Rooms) -> None:
        self.node = node
        self.registry = registry
        self.rooms = rooms
        self.settings = node.settings
        self._rechecks: set[asyncio.Task[None]] = set()

    # -- checks ------------------------------------------------------------------------

    async def gate(self, claims: Claims) -> tuple[int, str] | None:
        """The node's hello check: None to admit a hello, else (close code, reason)."""
        try:
            answer = await self.registry.admit(
                user_from_claims(claims), auto_register=self.settings.auto_register
            )
        except StoreUnavailable:
            return TRY_AGAIN_LATER, "presence store unreachable, retry later"
        if answer is Admission.DEACTIVATED:
            return CloseCode.DEACTIVATED, "user is deactivated"
        if answer is Admission.UNKNOWN:
            return CloseCode.NOT_AUTHENTICATED, "unknown user: register it first"
        if answer is Admission.TAKEN:
            return CloseCode.NOT_AUTHENTICATED, "the token's username belongs to another user"
        return None

    async def refusal(self, user: str) -> str | None:
        """The node's REST check: why a REST call with ``user``'s token is refused, or
        None (one registry read)."""
        active = await self.registry.access(user)
        if active is False:
            return "user is deactivated"
        if active is None and not self.settings.auto_register:
            return "unknown user"
        return None

    # -- accounts ------------------------------------------------------------------------

    async def register(
        self, user: User, password: str | None = None, *, hashed: str | None = None
    ) -> User:
        """Create an account (:class:`~hub.stores.registry.base.Conflict` when taken); the user is
        known to presence from now on (offline). ``hashed``: a hash made beforehand."""
        if hashed is None:
            hashed = await hash_password_async(password) if password else ""
        created = await self.registry.create(user, password_hash=hashed)
        await self.node.store.set_profile(profile_of(created), create=True)
        return created

    async def set_password(self, user: str, password: str) -> bool:
        return await self.registry.set_password(user, await hash_password_async(password))

    async def check_password(self, user: str, password: str) -> bool:
        stored = await self.registry.password_hash(user)
        return bool(stored) and await verify_password_async(password, str(stored))

    async def delete(self, user: str) -> User | None:
        """Delete an account: it leaves its rooms and its sockets close with 4004."""
        found = await self.registry.delete(user)
        if found is None:
            return None
        await self.rooms.forget_user(user)
        await self._close(user, CloseCode.DISCONNECTED, "user deleted by an admin")
        return found

    async def delete_oldest(self, limit: int, cursor: str | None) -> Deleted:
        """Delete the ``limit`` oldest accounts after ``cursor`` (an index key)."""
        pairs = await self.registry.after("created", cursor, limit)
        deleted = [u for _, uid in pairs if (u := await self.delete(uid)) is not None]
        more = bool(pairs) and bool(await self.registry.after("created", pairs[-1][0], 1))
        return Deleted(deleted, pairs[-1][0] if more else None)

    # -- sockets -------------------------------------------------------------------------

    async def deactivate(self, user: str) -> User | None:
        """Refuse the user from now on and close its sockets everywhere with 4003."""
        updated = await self.registry.set_activated(user, False)
        if updated is None:
            return None
        await self._close(user, CloseCode.DEACTIVATED, "user deactivated by an admin")
        task = asyncio.create_task(self._recheck(user))
        self._rechecks.add(task)
        task.add_done_callback(self._rechecks.discard)
        return updated

    async def activate(self, user: str) -> User | None:
        return await self.registry.set_activated(user, True)

    async def disconnect(self, user: str, reason: str = "disconnected by an admin") -> None:
        """Close the user's sockets everywhere with 4004; offline now, no grace."""
        await self._close(user, CloseCode.DISCONNECTED, reason)

    async def _close(self, user: str, code: int, reason: str) -> None:
        await self.node.store.drop_user(user)
        await self.node.store.publish_control(Control(user, code, reason))

    async def _recheck(self, user: str) -> None:
        await asyncio.sleep(RECHECK_S)
        try:
            if await self.registry.access(user) is False:
                await self._close(user, CloseCode.DEACTIVATED, "user deactivated by an admin")
        except StoreUnavailable:
            log.warning("could not re-check the deactivation of %r", user)

    async def stop(self) -> None:
        for task in list(self._rechecks):
            task.cancel()
