"""Member windows: a slice of a room's order kept exact by insert / delete / update
operations. Pure: no I/O, no clock.

A client holds members ``[first, last]`` of a room (``hub.model.roster`` gives the order).
The hub keeps, per window, a :class:`Region`: a run of consecutive member keys around the
window, with the index of its first key. A member whose key changes is a removal of its
old key and an insertion of its new one; the region applies both without a store read: a
key before the region shifts it by one, a key inside it is inserted or deleted in place, a
key after it changes nothing (unless the region reaches the end of the order). When the
region no longer covers the window (members left before it, say), the hub reads it again.

Each tick the window's new content is compared with what the client holds, and
:func:`diff` gives the operations that turn one into the other, applied in order:

- ``{"op": "delete", "index": i}``: remove the member at ``i``;
- ``{"op": "insert", "index": i, "user": entry}``: insert a member at ``i``;
- ``{"op": "update", "index": i, "user": entry}``: the member at ``i`` changed in place.

Indexes are inside the window (0 is its first member). Both sides are sorted in the same
order, so one merge finds every difference; a member that moved inside the window is a
delete and an insert. :func:`apply` is what a client does with them.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hub.model.presence import Entry

Op = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Item:
    """One member of a window: its key (the order) and its entry (what the client shows)."""

    key: str
    entry: Entry


def diff(old: Sequence[Item], new: Sequence[Item]) -> list[Op]:
    """The operations that turn the window ``old`` into ``new`` (both in key order)."""
    ops: list[Op] = []
    i = j = index = 0
    while i < len(old) or j < len(new):
        if j == len(new) or (i < len(old) and old[i].key < new[j].key):
            ops.append({"op": "delete", "index": index})
            i += 1
        elif i == len(old) or new[j].key < old[i].key:
            ops.append({"op": "insert", "index": index, "user": new[j].entry})
            j += 1
            index += 1
        else:
            if old[i].entry is not new[j].entry and old[i].entry != new[j].entry:
                ops.append({"op": "update", "index": index, "user": new[j].entry})
            i += 1
            j += 1
            index += 1
    return ops


def apply(ops: Iterable[Op], window: list[Any]) -> list[Any]:
    """A client's window after ``ops`` (a new list; the values are the ops' ``user``)."""
    out = list(window)
    for op in ops:
        index = op["index"]
        if not 0 <= index <= len(out) - (op["op"] != "insert"):
            raise ValueError(f"{op['op']} at {index} is outside a window of {len(out)}")
        if op["op"] == "delete":
            del out[index]
        elif op["op"] == "insert":
            out.insert(index, op["user"])
        elif op["op"] == "update":
            out[index] = op["user"]
        else:
            raise ValueError(f"unknown window op {op['op']!r}")
    return out


@dataclass
class Region:
    """Consecutive keys of a room's order: ``keys[0]`` is at index ``start``; ``at_end``
    when ``keys[-1]`` is the last member (or the room has none from ``start`` on).

    :meth:`remove` and :meth:`insert` return False when the change cannot be placed (a key
    said to be inside but missing, a removal before the first member): the region is then
    unknown and must be read again."""

    start: int
    keys: list[str]
    at_end: bool
    entries: dict[str, Entry] = field(default_factory=dict)

    def remove(self, key: str) -> bool:
        keys = self.keys
        if not keys:
            if self.start == 0:
                return False
            self.start -= 1
            return True
        if key < keys[0]:
            if self.start == 0:
                return False
            self.start -= 1
            return True
        if key > keys[-1]:
            return not self.at_end
        at = bisect.bisect_left(keys, key)
        if at == len(keys) or keys[at] != key:
            return False
        del keys[at]
        # An empty region cannot tell a later key before it from one after it.
        return bool(keys) or self.start == 0

    def insert(self, key: str) -> bool:
        keys = self.keys
        if not keys:
            if self.start > 0:
                return False
            keys.append(key)
            return True
        if key < keys[0]:
            if self.start == 0:
                keys.insert(0, key)
            else:
                self.start += 1
            return True
        if key > keys[-1]:
            if self.at_end:
                keys.append(key)
            return True
        at = bisect.bisect_left(keys, key)
        if keys[at] == key:
            return False
        keys.insert(at, key)
        return True

    def has(self, key: str) -> bool:
        keys = self.keys
        at = bisect.bisect_left(keys, key)
        return at < len(keys) and keys[at] == key

    def covers(self, first: int, last: int) -> bool:
        """True when the window ``[first, last]`` lies inside the region."""
        return self.start <= first and (self.at_end or self.start + len(self.keys) > last)

    def window(self, first: int, last: int) -> list[str]:
        """The keys of the window ``[first, last]`` (fewer past the last member)."""
        lo = first - self.start
        return self.keys[lo : last - self.start + 1]

    def trim(self, first: int, last: int, margin: int) -> list[str]:
        """Drop keys more than ``margin`` outside the window; returns the dropped keys."""
        dropped: list[str] = []
        head = first - margin - self.start
        if head > 0:
            dropped += self.keys[:head]
            del self.keys[:head]
            self.start += head
        tail = last + margin - self.start + 1
        if 0 <= tail < len(self.keys):
            dropped += self.keys[tail:]
            del self.keys[tail:]
            self.at_end = False
        return dropped
