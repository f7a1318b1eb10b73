"""Physical KV blocks, their reference counts, the free queue and the pool that owns them.

PagedAttention (Kwon et al., SOSP 2023, arXiv:2309.06180, §4.1) splits the KV cache into
fixed-size *blocks* of ``block_size`` token slots. A block lives anywhere in the pool;
sequences reach it only through their block tables (``block_table.py``). Following
vLLM's block manager, each concern is its own small class:

- ``Block``         one physical block: its id and the token ids whose K/V it holds.
- ``RefCounter``    how many block-table entries point at each block.
- ``FreeBlockQueue`` the ids of blocks nobody references, oldest-freed first.
- ``BlockPool``     all of the above; the only way to get or release a block.

Invariants (checked by ``BlockPool.check`` and the property tests):
- a block is free  <=>  its reference count is 0  <=>  its id is in the free queue;
- a free block holds no tokens (it is cleared when released);
- a block never holds more than ``block_size`` tokens.

Errors come in three tiers: ``assert`` for broken internal invariants, ``ValueError``
with the numbers for impossible requests, and ``None`` for "does not fit right now".
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class Block:
    """One physical block. Mutable: its slots fill as the sequence grows."""

    block_id: int  # index in the pool: the "physical block number" of the paper
    block_size: int  # token slots in the block (vLLM's default is 16)
    token_ids: list[int] = field(
        default_factory=list
    )  # the tokens whose K/V fill the slots

    @property
    def num_empty_slots(self) -> int:
        return self.block_size - len(self.token_ids)

    @property
    def is_full(self) -> bool:
        return len(self.token_ids) == self.block_size

    def append(self, token_ids: list[int]) -> None:
        assert len(token_ids) <= self.num_empty_slots, "block overflow"
        self.token_ids.extend(token_ids)


class RefCounter:
    """Reference count per block id: the number of block-table entries pointing at it.

    Ownership of a block is *only* its count: there is no owner field to disagree with it.
    """

    def __init__(self, num_blocks: int) -> None:
        self._counts = [0] * num_blocks

    def get(self, block_id: int) -> int:
        return self._counts[block_id]

    def incr(self, block_id: int) -> int:
        self._counts[block_id] += 1
        return self._counts[block_id]

    def decr(self, block_id: int) -> int:
        assert self._counts[block_id] > 0, (
            f"block {block_id} released more often than taken"
        )
        self._counts[block_id] -= 1
        return self._counts[block_id]


class FreeBlockQueue:
    """Ids of unreferenced blocks, first-in first-out (vLLM reuses the oldest free block)."""

    def __init__(self, block_ids: range) -> None:
        self._queue: deque[int] = deque(block_ids)
        self._members = set(block_ids)  # O(1) membership for the invariant checks

    def __len__(self) -> int:
        return len(self._queue)

    def __contains__(self, block_id: int) -> bool:
        return block_id in self._members

    def pop(self) -> int | None:
        if not self._queue:
            return None
        block_id = self._queue.popleft()
        self._members.remove(block_id)
        return block_id

    def push(self, block_id: int) -> None:
        assert block_id not in self._members, f"block {block_id} freed twice"
        self._queue.append(block_id)
        self._members.add(block_id)


class BlockPool:
    """A fixed pool of ``num_blocks`` blocks of ``block_size`` slots each."""

    def __init__(self, num_blocks: int, block_size: int) -> None:
        if num_blocks < 1 or block_size < 1:
            raise ValueError(
                f"a pool needs at least one block of one slot, got num_blocks={num_blocks}, "
                f"block_size={block_size}"
            )
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.blocks = [Block(i, block_size) for i in range(num_blocks)]
        self.ref_counter = RefCounter(num_blocks)
        self.free_queue = FreeBlockQueue(range(num_blocks))

    @property
    def num_free_blocks(self) -> int:
        return len(self.free_queue)

    def allocate(self) -> Block | None:
        """Take a free block with reference count 1, or ``None`` when the pool is exhausted."""
        block_id = self.free_queue.pop()
        if block_id is None:
            return None
        assert (
            self.ref_counter.get(block_id) == 0 and not self.blocks[block_id].token_ids
        )
        self.ref_counter.incr(block_id)
        return self.blocks[block_id]

    def share(self, block_id: int) -> None:
        """One more block-table entry points at a block that is already in use."""
        assert self.ref_counter.get(block_id) > 0, f"sharing free block {block_id}"
        self.ref_counter.incr(block_id)

    def release(self, block_id: int) -> bool:
        """Drop one reference; return True when that was the last and the block is free again."""
        if self.ref_counter.decr(block_id) > 0:
            return False
        self.blocks[block_id].token_ids.clear()
        self.free_queue.push(block_id)
        return True

    def check(self) -> None:
        """Assert the pool's invariants (for tests and debugging; O(num_blocks))."""
        for block in self.blocks:
            count = self.ref_counter.get(block.block_id)
            assert count >= 0
            assert (count == 0) == (block.block_id in self.free_queue)
            assert count > 0 or not block.token_ids
            assert len(block.token_ids) <= self.block_size
