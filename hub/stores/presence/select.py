"""Finding the member at a global index of a room whose order is split over buckets.

On a Redis Cluster a room's members sit in one sorted set per bucket (each in its bucket's
slot), so "the member at index 700,000" is the k-th smallest key of several sorted sets.
Each bucket answers two questions in O(log n): the key at one of its indexes, and how many
of its keys come before a given key. :func:`select` asks them in rounds, every bucket at
once: each round proposes one key per bucket (its first guess in proportion to the
bucket's size, then the middle of what is left), counts every proposal's global index, and
narrows each bucket's range of possible indexes. Every round at least halves each
bucket's range, so a room of a million members over 16 buckets takes a few rounds of two
round trips, not a scan.

The sets may change while the rounds run; the answer is then a key close to the index,
and the caller measures where its read really starts (``Slice.start``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

#: Keys at these indexes, one per bucket (None: ask nothing of that bucket).
At = Callable[[Sequence[int | None]], Awaitable[list[str | None]]]
#: For each bucket, how many of its keys come before each of these keys.
Below = Callable[[Sequence[str]], Awaitable[list[list[int]]]]

#: Rounds before giving up on an exact answer (the sets are moving under it).
MAX_ROUNDS = 64


async def select(index: int, sizes: Sequence[int], at: At, below: Below) -> str | None:
    """The key at global ``index`` of the buckets' sorted sets (of ``sizes`` keys each);
    None when ``index`` is past the last key."""
    total = sum(sizes)
    if not 0 <= index < total:
        return None
    count = len(sizes)
    # The answer has lo[b] <= (keys of bucket b below it) <= hi[b].
    lo = [0] * count
    hi = list(sizes)
    for round_ in range(MAX_ROUNDS):
        ranks: list[int | None] = []
        for b in range(count):
            if lo[b] >= hi[b]:
                ranks.append(None)
            elif round_ == 0:
                guess = index * sizes[b] // total
                ranks.append(min(max(guess, lo[b]), hi[b] - 1))
            else:
                ranks.append((lo[b] + hi[b]) // 2)
        if all(r is None for r in ranks):
            break
        keys = await at(ranks)
        proposals = [(b, key) for b, key in enumerate(keys) if key is not None]
        if not proposals:
            break
        counts = await below([key for _, key in proposals])
        for i, (owner, key) in enumerate(proposals):
            place = sum(counts[b][i] for b in range(count))
            if place == index:
                return key
            if place < index:
                for b in range(count):
                    lo[b] = max(lo[b], counts[b][i] + (1 if b == owner else 0))
            else:
                for b in range(count):
                    hi[b] = min(hi[b], counts[b][i])
        if any(lo[b] > hi[b] for b in range(count)):
            break  # the sets moved under the search: answer from where it stands
    # Every bucket's share below the answer is known (or the sets moved): the answer is the
    # smallest of the buckets' next keys.
    nexts = await at([lo[b] if lo[b] < sizes[b] else None for b in range(count)])
    found = [key for key in nexts if key is not None]
    return min(found) if found else None
