"""Listing users: filters, sorts and pages over any :class:`~hub.stores.registry.base.Registry`.

The compatibility APIs list users by page (``offset``/``count``, ``page``/``perPage``) with
filters (search, roles, tags, type, activation, first login, presence). The cost depends on
what is asked:

- no filter, sorted by an index (creation or username): one ranged read of the index and
  one read of the page's accounts, O(log N + k);
- a candidate set given (``ids``, e.g. "only users who are online"): only those accounts
  are read;
- otherwise the index is walked in chunks of :data:`CHUNK`, filtering as it goes, and the
  walk stops once the page is full unless the total is wanted. Sorting by a field that has
  no index (name, last login, ...) reads every matching account.

These are admin listings: none of this runs on the presence hot path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from hub.stores.registry.base import Order, Registry, User

#: Accounts read per step of a walk.
CHUNK = 500

#: Sort fields and how to read them from a user.
SORT_FIELDS: dict[str, Any] = {
    "id": lambda u: u.id,
    "username": lambda u: u.username.lower(),
    "name": lambda u: (u.name or u.username).lower(),
    "created": lambda u: u.created,
    "updated": lambda u: u.updated,
    "last_login": lambda u: u.last_login,
    "type": lambda u: u.type,
    "activated": lambda u: u.activated,
}


@dataclass(frozen=True)
class UserQuery:
    """Which users to list; every set filter must hold (roles and tags: any of them)."""

    ids: frozenset[str] | None = None
    exclude: frozenset[str] = frozenset()
    search: str = ""
    prefix: str = ""
    prefix_fields: frozenset[str] = frozenset({"id", "name"})
    roles: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    type: str | None = None
    activated: bool | None = None
    logged_in: bool | None = None
    #: The roles of a user who has none, as the API asking shows them (Rocket.Chat: user).
    default_roles: tuple[str, ...] = ()
    #: The one role shown (the first, or the default) is one of these (CometChat's role).
    first_role: frozenset[str] = frozenset()

    def filtered(self) -> bool:
        return bool(
            self.first_role
            or self.exclude
            or self.search
            or self.prefix
            or self.roles
            or self.tags
            or self.type is not None
            or self.activated is not None
            or self.logged_in is not None
        )

    def matches(self, user: User) -> bool:
        if user.id in self.exclude:
            return False
        if self.ids is not None and user.id not in self.ids:
            return False
        if self.activated is not None and user.activated != self.activated:
            return False
        if self.logged_in is not None and (user.last_login > 0) != self.logged_in:
            return False
        if self.type is not None and user.type != self.type:
            return False
        roles = user.roles or self.default_roles
        if self.roles and not self.roles.intersection(roles):
            return False
        if self.first_role and (roles[0] if roles else "") not in self.first_role:
            return False
        if self.tags and not self.tags.intersection(user.tags):
            return False
        if self.search:
            needle = self.search.lower()
            if needle not in user.username.lower() and needle not in user.name.lower():
                return False
        if self.prefix:
            start = self.prefix.lower()
            values = {
                "id": user.id,
                "uid": user.id,
                "username": user.username,
                "name": user.name,
            }
            if not any(values[f].lower().startswith(start) for f in self.prefix_fields):
                return False
        return True


@dataclass(frozen=True)
class Sort:
    """``keys``: (field, 1 ascending or -1 descending) pairs, first key first."""

    keys: tuple[tuple[str, int], ...] = field(default=(("username", 1),))

    def index(self) -> tuple[Order, bool] | None:
        """The index that yields this order directly, and whether it is read backwards."""
        if len(self.keys) == 1:
            name, direction = self.keys[0]
            if name in ("created", "username"):
                order: Order = "created" if name == "created" else "username"
                return order, direction < 0
        return None

    def apply(self, users: list[User]) -> list[User]:
        """Sort stably by every key, ties broken by id."""
        out = sorted(users, key=lambda u: u.id)
        for name, direction in reversed(self.keys):
            out.sort(key=SORT_FIELDS[name], reverse=direction < 0)
        return out


@dataclass(frozen=True)
class Page:
    users: list[User]
    total: int | None
    more: bool


async def list_users(
    registry: Registry,
    query: UserQuery,
    sort: Sort,
    offset: int,
    limit: int,
    *,
    want_total: bool = True,
) -> Page:
    """One page of the users matching ``query``, in ``sort`` order."""
    offset, limit = max(0, offset), max(0, limit)
    if query.ids is not None:
        users = [u for u in await registry.get_many(sorted(query.ids)) if query.matches(u)]
        ordered = sort.apply(users)
        return Page(ordered[offset : offset + limit], len(ordered), offset + limit < len(ordered))
    index = sort.index()
    if index is None:
        users = [u async for u in _walk(registry, "created", False) if query.matches(u)]
        ordered = sort.apply(users)
        return Page(ordered[offset : offset + limit], len(ordered), offset + limit < len(ordered))
    order, backwards = index
    if not query.filtered():
        total = await registry.count()
        if backwards:
            start, stop = max(0, total - offset - limit), max(0, total - offset)
            ids = list(reversed(await registry.ordered(order, start, stop)))
        else:
            ids = await registry.ordered(order, offset, offset + limit)
        users = await registry.get_many(ids)
        return Page(users, total, offset + limit < total)
    page: list[User] = []
    matched = 0
    more = False
    async for user in _walk(registry, order, backwards):
        if not query.matches(user):
            continue
        if offset <= matched < offset + limit:
            page.append(user)
        elif matched >= offset + limit:
            more = True
            if not want_total:
                break
        matched += 1
    return Page(page, matched if want_total else None, more)


async def _walk(registry: Registry, order: Order, backwards: bool) -> AsyncIterator[User]:
    """Every registered user in ``order``, read in chunks."""
    if not backwards:
        key: str | None = None
        while True:
            pairs = await registry.after(order, key, CHUNK)
            if not pairs:
                return
            for user in await registry.get_many([uid for _, uid in pairs]):
                yield user
            key = pairs[-1][0]
    stop = await registry.count()
    while stop > 0:
        start = max(0, stop - CHUNK)
        ids = await registry.ordered(order, start, stop)
        for user in reversed(await registry.get_many(ids)):
            yield user
        stop = start


def unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))
