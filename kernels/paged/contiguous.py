"""The scheme PagedAttention replaced: one contiguous KV region per request, first fit.

Before vLLM, serving systems (FasterTransformer, Orca) stored each request's KV cache in
one contiguous chunk sized up front, because the attention kernels expected contiguous
memory (Kwon et al., arXiv:2309.06180, §3 and Fig. 3). The chunk is sized before the
output length is known, which wastes memory three ways:

- *reserved*: slots for tokens the request will produce later, idle until then;
- *internal fragmentation*: slots past the request's final length, never used;
- *external fragmentation*: free slots scattered in holes too small for the next request.

The paper's baselines differ only in the reservation (§6.1): Orca (Max) reserves the
model's maximum sequence length, Orca (Pow2) the next power of two of the true final
length, Orca (Oracle) exactly the final length. ``reservation_slots`` computes all three.

Invariants: regions are disjoint, lie inside ``[0, num_slots)``, and the holes plus the
regions tile the pool exactly.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass
from enum import Enum


class Reservation(Enum):
    """How many slots a request reserves, as in the paper's three Orca baselines."""

    MAX = "max"  # max_seq_len: the server does not know the output length
    POW2 = "pow2"  # next power of two >= final length: over-reserve by at most 2x
    ORACLE = "oracle"  # exactly the final length: an upper bound no real server reaches


def reservation_slots(policy: Reservation, final_len: int, max_seq_len: int) -> int:
    """Slots a request with ``final_len`` = prompt + output tokens reserves under ``policy``."""
    if not 1 <= final_len <= max_seq_len:
        raise ValueError(
            f"final length {final_len} outside [1, max_seq_len={max_seq_len}]"
        )
    if policy is Reservation.MAX:
        return max_seq_len
    if policy is Reservation.POW2:
        return min(max_seq_len, 1 << (final_len - 1).bit_length())
    return final_len


@dataclass(frozen=True)
class Region:
    """One request's contiguous reservation."""

    start: int  # first slot
    length: int  # slots reserved


class ContiguousAllocator:
    """First-fit allocation of contiguous regions in a pool of ``num_slots`` KV slots."""

    def __init__(self, num_slots: int) -> None:
        if num_slots < 1:
            raise ValueError(f"a pool needs at least one slot, got {num_slots}")
        self.num_slots = num_slots
        self.regions: dict[int, Region] = {}
        self._starts: list[int] = []  # sorted starts of the live regions

    @property
    def num_free_slots(self) -> int:
        return self.num_slots - sum(r.length for r in self.regions.values())

    def holes(self) -> list[Region]:
        """Free gaps between regions, in address order (empty gaps omitted)."""
        by_start = {r.start: r for r in self.regions.values()}
        holes, cursor = [], 0
        for start in self._starts:
            if start > cursor:
                holes.append(Region(cursor, start - cursor))
            cursor = start + by_start[start].length
        if cursor < self.num_slots:
            holes.append(Region(cursor, self.num_slots - cursor))
        return holes

    def allocate(self, seq_id: int, length: int) -> Region | None:
        """Reserve ``length`` contiguous slots at the first hole that fits, or ``None``."""
        if seq_id in self.regions:
            raise ValueError(f"sequence {seq_id} already has a region")
        if not 1 <= length <= self.num_slots:
            raise ValueError(
                f"cannot reserve {length} slots in a pool of {self.num_slots}"
            )
        for hole in self.holes():
            if hole.length >= length:
                region = Region(hole.start, length)
                self.regions[seq_id] = region
                bisect.insort(self._starts, region.start)
                return region
        return None

    def free(self, seq_id: int) -> None:
        if seq_id not in self.regions:
            raise ValueError(f"unknown sequence {seq_id}")
        region = self.regions.pop(seq_id)
        self._starts.remove(region.start)

    def unusable_free_slots(self, length: int) -> int:
        """External fragmentation for a request of ``length`` slots: free slots in holes
        too small to hold it."""
        return sum(h.length for h in self.holes() if h.length < length)

    def check(self) -> None:
        """Assert the tiling invariant (for tests)."""
        spans = sorted((r.start, r.start + r.length) for r in self.regions.values())
        assert [s for s, _ in spans] == self._starts
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end <= start, "regions overlap"
        assert all(0 <= s and e <= self.num_slots for s, e in spans)
        assert sum(h.length for h in self.holes()) == self.num_free_slots
