"""The member order and the window algorithms as pure code, with property tests: the
member key sorts as documented, :func:`diff` + :func:`apply` turn any window into any
other, a :class:`Region` moved by a room's moves equals a fresh read of the order, the
memory store's :class:`SortedKeys` agrees with a sorted list, and :func:`select` finds
the member at any index of a room split over buckets."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.model.roster import Counts, member_key, status_of, user_of
from hub.model.window import Item, Region, apply, diff
from hub.stores.presence.ordered import SortedKeys
from hub.stores.presence.select import select

STATUSES = ["online", "away", "busy", "offline"]
names = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=6)
ids = st.text(alphabet="abcdef\x00é", min_size=1, max_size=5)


def test_the_key_orders_online_away_busy_then_offline_by_last_seen() -> None:
    """Statuses rank first; offline members come most recently seen first, unknown last;
    ties go by name (code points), then id."""
    keys = [
        member_key("offline", 0, "Ann", "a"),
        member_key("busy", 0, "Zed", "z"),
        member_key("offline", 2_000, "Ann", "b"),
        member_key("online", 0, "bob", "b"),
        member_key("away", 0, "Ann", "a"),
        member_key("online", 0, "Bob", "c"),
        member_key("online", 0, "Bob", "b"),
        member_key("offline", 1_000, "Aaa", "c"),
    ]
    ordered = [(status_of(k), user_of(k)) for k in sorted(keys)]
    assert ordered == [
        ("online", "b"), ("online", "c"), ("online", "b"), ("away", "a"), ("busy", "z"),
        ("offline", "b"), ("offline", "c"), ("offline", "a"),
    ]  # fmt: skip
    assert member_key("online", 0, "A", "x") < member_key("online", 0, "AB", "a"), "prefix first"


@given(st.sampled_from(STATUSES), st.integers(0, 2**48), names, ids)
def test_a_key_gives_back_its_user_and_status(status: str, seen: int, name: str, uid: str) -> None:
    """Whatever the name (control characters included) and id, the key names them back."""
    key = member_key(status, seen, name, uid)
    assert user_of(key) == uid and status_of(key) == status


def items(keys: Sequence[str], version: int = 0) -> list[Item]:
    return [Item(k, {"id": k, "at": version}) for k in sorted(keys)]  # type: ignore[typeddict-item]


@given(st.sets(st.text(max_size=3), max_size=12), st.sets(st.text(max_size=3), max_size=12),
       st.sets(st.text(max_size=3), max_size=12))  # fmt: skip
def test_diff_then_apply_turns_any_window_into_any_other(
    old: set[str], new: set[str], updated: set[str]
) -> None:
    """Applying diff(old, new) to old gives new, entries included; nothing extra is sent."""
    before = items(old)
    after = [Item(i.key, {**i.entry, "at": 1}) if i.key in updated else i for i in items(new)]  # type: ignore[typeddict-item]
    ops = diff(before, after)
    assert apply(ops, [i.entry for i in before]) == [i.entry for i in after]
    assert sum(op["op"] == "delete" for op in ops) == len(old - new)
    assert sum(op["op"] == "insert" for op in ops) == len(new - old)
    assert sum(op["op"] == "update" for op in ops) == len(old & new & updated)


moves = st.lists(st.tuples(st.booleans(), st.integers(0, 60)), max_size=40)


@settings(max_examples=300)
@given(st.sets(st.integers(0, 60), max_size=40), moves, st.integers(0, 30), st.integers(0, 12),
       st.integers(0, 8))  # fmt: skip
def test_a_region_moved_by_moves_equals_a_fresh_read(
    members: set[int], changes: list[tuple[bool, int]], first: int, size: int, margin: int
) -> None:
    """A region read around a window, then moved by joins and leaves anywhere in the room,
    holds exactly what a fresh read shows, or says it must be read again."""
    order = sorted(f"{n:03d}" for n in members)
    last = first + size
    start = max(0, min(first - margin, len(order) - 1)) if order else 0
    stop = last + margin + 1
    region = Region(start, order[start:stop], stop >= len(order))
    current = list(order)
    for join, n in changes:
        key = f"{n:03d}"
        if join and key not in current:
            bisect.insort(current, key)
            ok = region.insert(key)
        elif not join and key in current:
            current.remove(key)
            ok = region.remove(key)
        else:
            continue
        if not ok:
            return  # the hub reads the region again: nothing more to check
    assert region.keys == current[region.start : region.start + len(region.keys)]
    if region.at_end:
        assert region.start + len(region.keys) == len(current)
    if region.covers(first, last):
        assert region.window(first, last) == current[first : last + 1]
    dropped = region.trim(first, last, margin)
    assert region.keys == current[region.start : region.start + len(region.keys)]
    assert not set(dropped) & set(region.keys)


def test_a_region_refuses_what_it_cannot_place() -> None:
    """A removal before the first member, or of a key said to be inside but missing, asks
    for a read; so does an empty region that does not start at 0."""
    region = Region(0, ["b", "d"], True)
    assert region.remove("a") is False
    assert Region(0, ["b", "d"], True).remove("c") is False
    lone = Region(3, ["x"], True)
    assert lone.remove("x") is False
    assert Region(0, [], True).insert("q") is True


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 3000)), max_size=400))
def test_sorted_keys_agree_with_a_sorted_list(ops: list[tuple[bool, int]]) -> None:
    """The memory store's blocked sorted set ranks, slices and finds like a sorted list."""
    keys, ref = SortedKeys(), []
    for add, n in ops:
        key = f"{n:05d}"
        if add:
            assert keys.add(key) == (key not in ref)
            if key not in ref:
                bisect.insort(ref, key)
        else:
            assert keys.discard(key) == (key in ref)
            if key in ref:
                ref.remove(key)
    assert list(keys) == ref and len(keys) == len(ref)
    for probe in ("00000", "01500", "02999", "99999"):
        assert keys.rank(probe) == bisect.bisect_left(ref, probe)
        assert keys.from_key(probe, 7) == [k for k in ref if k >= probe][:7]
        assert keys.from_key(probe, 7, inclusive=False) == [k for k in ref if k > probe][:7]
    for start in (0, 3, len(ref) // 2, len(ref)):
        assert keys.from_index(start, 11) == ref[start : start + 11]


def test_sorted_keys_split_and_merge_blocks() -> None:
    """Thousands of keys in and out keep every rank right across block boundaries."""
    keys = SortedKeys()
    for n in range(5000):
        keys.add(f"{(n * 7919) % 5000:05d}")
    for n in range(0, 5000, 3):
        keys.discard(f"{n:05d}")
    ref = [f"{n:05d}" for n in range(5000) if n % 3]
    assert list(keys) == ref
    assert keys.from_index(2500, 3) == ref[2500:2503] and keys.rank(ref[1234]) == 1234


@settings(max_examples=200)
@given(st.dictionaries(st.integers(0, 10_000), st.integers(0, 5), max_size=200),
       st.integers(1, 6), st.data())  # fmt: skip
async def test_select_finds_the_member_at_any_index(
    placed: dict[int, int], count: int, data: st.DataObject
) -> None:
    """Over sorted sets of any sizes, the key at a global index is the merged list's."""
    shards = [sorted(f"{n:05d}" for n, b in placed.items() if b % count == i)
              for i in range(count)]  # fmt: skip
    merged = sorted(k for s in shards for k in s)
    index = data.draw(st.integers(-1, len(merged)))

    async def at(ranks: Sequence[int | None]) -> list[str | None]:
        return [
            None if r is None or r >= len(s) else s[r] for s, r in zip(shards, ranks, strict=True)
        ]

    async def below(keys: Sequence[str]) -> list[list[int]]:
        return [[bisect.bisect_left(s, k) for k in keys] for s in shards]

    found = await select(index, [len(s) for s in shards], at, below)
    assert found == (merged[index] if 0 <= index < len(merged) else None)


def test_counts_move_with_a_member() -> None:
    """A join counts one more, a leave one less, a status change moves between the three."""
    c = Counts().moved(None, "online").moved(None, "offline").moved("online", "busy")
    assert c == Counts(online=0, away=0, busy=1, total=2)
    assert c.moved("busy", None) == Counts(total=1)
