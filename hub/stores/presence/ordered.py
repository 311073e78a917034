"""A sorted set of strings with ranks, for the memory store's room orders.

A room of a million members must not cost a million-element ``list.insert`` per move, so
the keys sit in blocks of at most :data:`BLOCK` sorted keys: adding or removing one moves
at most a block, and a rank is a bisect into the block plus the sizes of the blocks
before it (kept as running offsets, rebuilt after a change, one pass over the blocks).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

#: Keys per block: small enough that a block insert is cheap, large enough that a room of
#: a million members has a few thousand blocks.
BLOCK = 512


class SortedKeys:
    """Unique strings in sorted order; ``rank``, ``at`` and slices by index or by key."""

    __slots__ = ("_blocks", "_firsts", "_len", "_offsets")

    def __init__(self) -> None:
        self._blocks: list[list[str]] = []
        self._firsts: list[str] = []
        self._offsets: list[int] | None = []
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def __contains__(self, key: str) -> bool:
        b = self._block_of(key)
        if b < 0:
            return False
        block = self._blocks[b]
        i = bisect.bisect_left(block, key)
        return i < len(block) and block[i] == key

    def __iter__(self) -> Iterator[str]:
        for block in self._blocks:
            yield from block

    def _block_of(self, key: str) -> int:
        """The block that holds ``key`` or would: -1 when it comes before every key."""
        return bisect.bisect_right(self._firsts, key) - 1

    def add(self, key: str) -> bool:
        """Insert ``key``; False when it was there."""
        if not self._blocks:
            self._blocks.append([key])
            self._firsts.append(key)
            self._len = 1
            self._offsets = None
            return True
        b = max(self._block_of(key), 0)
        block = self._blocks[b]
        i = bisect.bisect_left(block, key)
        if i < len(block) and block[i] == key:
            return False
        block.insert(i, key)
        self._firsts[b] = block[0]
        if len(block) > BLOCK:
            half = len(block) // 2
            self._blocks.insert(b + 1, block[half:])
            del block[half:]
            self._firsts.insert(b + 1, self._blocks[b + 1][0])
        self._len += 1
        self._offsets = None
        return True

    def discard(self, key: str) -> bool:
        """Remove ``key``; False when it was not there."""
        b = self._block_of(key)
        if b < 0:
            return False
        block = self._blocks[b]
        i = bisect.bisect_left(block, key)
        if i == len(block) or block[i] != key:
            return False
        del block[i]
        if block:
            self._firsts[b] = block[0]
        else:
            del self._blocks[b]
            del self._firsts[b]
        self._len -= 1
        self._offsets = None
        return True

    def _offset(self) -> list[int]:
        offsets = self._offsets
        if offsets is None:
            offsets, total = [], 0
            for block in self._blocks:
                offsets.append(total)
                total += len(block)
            self._offsets = offsets
        return offsets

    def rank(self, key: str) -> int:
        """How many keys are below ``key``."""
        b = self._block_of(key)
        if b < 0:
            return 0
        return self._offset()[b] + bisect.bisect_left(self._blocks[b], key)

    def from_index(self, start: int, count: int) -> list[str]:
        """Up to ``count`` keys from index ``start`` on."""
        if count <= 0 or start >= self._len:
            return []
        start = max(start, 0)
        offsets = self._offset()
        b = bisect.bisect_right(offsets, start) - 1
        out: list[str] = []
        i = start - offsets[b]
        while b < len(self._blocks) and len(out) < count:
            block = self._blocks[b]
            out += block[i : i + count - len(out)]
            b += 1
            i = 0
        return out

    def from_key(self, key: str, count: int, *, inclusive: bool = True) -> list[str]:
        """Up to ``count`` keys at or after ``key`` (strictly after, unless ``inclusive``)."""
        start = self.rank(key)
        out = self.from_index(start, count + 1)
        if out and not inclusive and out[0] == key:
            return out[1:]
        return out[:count]
