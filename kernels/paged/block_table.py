"""Block tables and the paged block manager: append, fork with copy-on-write, prefix sharing.

A sequence's *block table* maps its logical block ``i`` (token positions
``i*block_size .. (i+1)*block_size - 1``) to a physical block anywhere in the pool, as a
page table maps virtual pages to frames (Kwon et al., arXiv:2309.06180, §4.2–4.4).
``BlockManager`` owns one ``BlockPool`` and every sequence's table, and is the only code
that changes reference counts, so that

    ref_count(b) == number of (sequence, logical index) entries that point at b.

Sharing has two sources, both from the paper:
- ``fork``: parallel sampling and beam search (§4.4). The child points at all of the
  parent's blocks. A full block is immutable, so sharing it is free; a partly filled last
  block is copied on the first write by whichever sequence writes while another still
  reads it (*copy-on-write*), so no sequence ever sees another's new tokens.
- prefix sharing (§4.4 "shared prefix"; vLLM's automatic prefix caching): a full block is
  identified by the whole token prefix ending in it. A new sequence whose prompt starts
  with that prefix points at the existing block instead of filling a new one. Only full
  blocks are shared this way; a block leaves the index when its last reference goes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kernels.paged.blocks import Block, BlockPool


def blocks_needed(num_tokens: int, block_size: int) -> int:
    """Blocks that hold ``num_tokens`` tokens: ceil(num_tokens / block_size)."""
    return -(-num_tokens // block_size)


@dataclass
class BlockTable:
    """One sequence's logical -> physical block map."""

    # block_ids[i] is the physical block holding logical block i.
    block_ids: list[int] = field(default_factory=list)
    num_tokens: int = 0  # tokens stored, filling the blocks in order

    def slot(self, position: int, block_size: int) -> tuple[int, int]:
        """(physical block, offset) of the token at ``position``: where its K/V live."""
        assert 0 <= position < self.num_tokens, f"position {position} not stored"
        return self.block_ids[position // block_size], position % block_size


class BlockManager:
    """Allocates, grows, forks and frees sequences' KV blocks in one fixed pool.

    Every mutating call either succeeds completely or, when the pool lacks free blocks,
    returns ``None`` having changed nothing.
    """

    def __init__(
        self, num_blocks: int, block_size: int, prefix_sharing: bool = True
    ) -> None:
        self.pool = BlockPool(num_blocks, block_size)
        self.block_size = block_size
        self.prefix_sharing = prefix_sharing  # off: every sequence fills its own blocks
        self.tables: dict[int, BlockTable] = {}
        # Full token prefix -> the full block that ends it, and the inverse (to drop on free).
        self._prefix_index: dict[tuple[int, ...], int] = {}
        self._prefix_of_block: dict[int, tuple[int, ...]] = {}

    # -- queries ----------------------------------------------------------------------
    @property
    def num_free_blocks(self) -> int:
        return self.pool.num_free_blocks

    def token_ids(self, seq_id: int) -> list[int]:
        """The sequence's tokens, read back through its block table."""
        table = self._table(seq_id)
        tokens: list[int] = []
        for block_id in table.block_ids:
            tokens.extend(self.pool.blocks[block_id].token_ids)
        assert len(tokens) == table.num_tokens
        return tokens

    def new_blocks_for_prompt(self, token_ids: list[int]) -> int:
        """Free blocks ``allocate`` would take for this prompt, after prefix sharing."""
        shared = len(self._shared_prefix(token_ids))
        return blocks_needed(len(token_ids), self.block_size) - shared

    # -- mutations --------------------------------------------------------------------
    def allocate(self, seq_id: int, token_ids: list[int]) -> BlockTable | None:
        """Store a new sequence's prompt; ``None`` if the pool lacks the blocks right now."""
        if seq_id in self.tables:
            raise ValueError(f"sequence {seq_id} already has a block table")
        need = blocks_needed(len(token_ids), self.block_size)
        if need > self.pool.num_blocks:
            raise ValueError(
                f"a {len(token_ids)}-token prompt needs {need} blocks of {self.block_size}; "
                f"the pool has {self.pool.num_blocks}"
            )
        shared = self._shared_prefix(token_ids)
        if need - len(shared) > self.pool.num_free_blocks:
            return None
        table = BlockTable()
        for block_id in shared:
            self.pool.share(block_id)
            table.block_ids.append(block_id)
        table.num_tokens = len(shared) * self.block_size
        self.tables[seq_id] = table
        appended = self._append(table, token_ids[table.num_tokens :])
        assert appended, "free blocks were counted before appending"
        return table

    def append(self, seq_id: int, token_ids: list[int]) -> BlockTable | None:
        """Append tokens (decode steps); ``None`` if the pool lacks the blocks right now."""
        table = self._table(seq_id)
        return table if self._append(table, token_ids) else None

    def fork(self, parent_id: int, child_id: int) -> BlockTable:
        """The child points at every block of the parent; nothing is copied until a write."""
        parent = self._table(parent_id)
        if child_id in self.tables:
            raise ValueError(f"sequence {child_id} already has a block table")
        for block_id in parent.block_ids:
            self.pool.share(block_id)
        child = BlockTable(list(parent.block_ids), parent.num_tokens)
        self.tables[child_id] = child
        return child

    def free(self, seq_id: int) -> None:
        """Drop the sequence's references; blocks nobody else reads return to the pool."""
        for block_id in self._table(seq_id).block_ids:
            self._release(block_id)
        del self.tables[seq_id]

    # -- internals --------------------------------------------------------------------
    def _table(self, seq_id: int) -> BlockTable:
        if seq_id not in self.tables:
            raise ValueError(f"unknown sequence {seq_id}")
        return self.tables[seq_id]

    def _shared_prefix(self, token_ids: list[int]) -> list[int]:
        """Existing full blocks that hold the longest block-aligned prefix of ``token_ids``."""
        if not self.prefix_sharing:
            return []
        shared = []
        for end in range(self.block_size, len(token_ids) + 1, self.block_size):
            block_id = self._prefix_index.get(tuple(token_ids[:end]))
            if block_id is None:
                break
            shared.append(block_id)
        return shared

    def _new_blocks_for_append(self, table: BlockTable, num_new: int) -> int:
        """Free blocks an append of ``num_new`` tokens takes, copy-on-write included."""
        free_in_last = len(table.block_ids) * self.block_size - table.num_tokens
        fresh = blocks_needed(max(0, num_new - free_in_last), self.block_size)
        last_is_shared = (
            free_in_last > 0 and self.pool.ref_counter.get(table.block_ids[-1]) > 1
        )
        return fresh + int(num_new > 0 and last_is_shared)

    def _append(self, table: BlockTable, token_ids: list[int]) -> bool:
        if (
            self._new_blocks_for_append(table, len(token_ids))
            > self.pool.num_free_blocks
        ):
            return False
        pending = list(token_ids)
        while pending:
            block = self._writable_last_block(table)
            chunk, pending = (
                pending[: block.num_empty_slots],
                pending[block.num_empty_slots :],
            )
            block.append(chunk)
            table.num_tokens += len(chunk)
            if block.is_full:
                self._index_full_block(table, block)
        return True

    def _writable_last_block(self, table: BlockTable) -> Block:
        """The block the next token goes into: a fresh one, or a private copy of a shared one."""
        if table.num_tokens == len(table.block_ids) * self.block_size:
            block = self.pool.allocate()
            assert block is not None, "free blocks were counted before appending"
            table.block_ids.append(block.block_id)
            return block
        last = self.pool.blocks[table.block_ids[-1]]
        if self.pool.ref_counter.get(last.block_id) == 1:
            return last
        # Copy-on-write: another sequence still reads `last`.
        copy = self.pool.allocate()
        assert copy is not None, "free blocks were counted before appending"
        copy.append(list(last.token_ids))
        self._release(last.block_id)
        table.block_ids[-1] = copy.block_id
        return copy

    def _index_full_block(self, table: BlockTable, block: Block) -> None:
        if not self.prefix_sharing:
            return
        prefix = tuple(
            token
            for block_id in table.block_ids
            for token in self.pool.blocks[block_id].token_ids
        )
        assert len(prefix) == table.num_tokens
        if prefix not in self._prefix_index:
            self._prefix_index[prefix] = block.block_id
            self._prefix_of_block[block.block_id] = prefix

    def _release(self, block_id: int) -> None:
        if self.pool.release(block_id) and block_id in self._prefix_of_block:
            del self._prefix_index[self._prefix_of_block.pop(block_id)]

    def check(self) -> None:
        """Assert every invariant of the docstring (O(pool + tables); for tests)."""
        self.pool.check()
        references = [0] * self.pool.num_blocks
        for table in self.tables.values():
            assert len(table.block_ids) == blocks_needed(
                table.num_tokens, self.block_size
            )
            for block_id in table.block_ids:
                references[block_id] += 1
        for block_id, count in enumerate(references):
            assert self.pool.ref_counter.get(block_id) == count, f"block {block_id}"
        for prefix, block_id in self._prefix_index.items():
            assert self._prefix_of_block[block_id] == prefix
            assert references[block_id] > 0 and self.pool.blocks[block_id].is_full
