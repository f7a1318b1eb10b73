import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    rule,
)

from kernels.paged.block_table import BlockManager, blocks_needed


def test_append_fills_blocks_in_order_and_maps_positions_to_slots():
    m = BlockManager(num_blocks=4, block_size=4)
    table = m.allocate(0, [10, 11, 12, 13, 14])
    assert len(table.block_ids) == 2 and table.num_tokens == 5
    m.append(0, [15, 16, 17, 18])
    assert len(table.block_ids) == 3 and m.token_ids(0) == list(range(10, 19))
    block, offset = table.slot(6, 4)
    assert m.pool.blocks[block].token_ids[offset] == 16
    m.check()


def test_fork_shares_blocks_and_copy_on_write_protects_the_other_reader():
    m = BlockManager(num_blocks=8, block_size=4)
    parent = m.allocate(0, [1, 2, 3, 4, 5, 6])  # one full block, one half-full block
    child = m.fork(0, 1)
    assert child.block_ids == parent.block_ids
    assert [m.pool.ref_counter.get(b) for b in parent.block_ids] == [2, 2]
    shared_last = parent.block_ids[-1]
    m.append(
        1, [99]
    )  # the child writes into the shared, partly filled block: copy first
    assert child.block_ids[0] == parent.block_ids[0]  # full block still shared
    assert child.block_ids[-1] != shared_last == parent.block_ids[-1]
    assert m.token_ids(0) == [1, 2, 3, 4, 5, 6]
    assert m.token_ids(1) == [1, 2, 3, 4, 5, 6, 99]
    assert m.pool.ref_counter.get(shared_last) == 1
    m.append(0, [42])  # the parent is now sole owner: writes in place, no copy
    assert parent.block_ids[-1] == shared_last
    m.check()


def test_prompts_with_a_common_prefix_share_its_full_blocks_only():
    m = BlockManager(num_blocks=8, block_size=4)
    a = m.allocate(0, [1, 2, 3, 4, 5, 6, 7, 8, 9])
    b = m.allocate(1, [1, 2, 3, 4, 5, 6, 7, 8, 0])
    assert b.block_ids[:2] == a.block_ids[:2] and b.block_ids[2] != a.block_ids[2]
    c = m.allocate(2, [1, 2, 3, 4, 0, 6, 7, 8])  # same second block, different prefix
    assert c.block_ids[0] == a.block_ids[0] and c.block_ids[1] != a.block_ids[1]
    assert m.num_free_blocks == 8 - 5
    for seq in (0, 1, 2):
        m.free(seq)
    assert m.num_free_blocks == 8 and m.new_blocks_for_prompt([1, 2, 3, 4]) == 1
    m.check()


def test_a_prompt_that_does_not_fit_now_returns_none_and_changes_nothing():
    m = BlockManager(num_blocks=3, block_size=2)
    m.allocate(0, [1, 2, 3])
    assert m.allocate(1, [7, 8, 9, 10, 11]) is None
    assert 1 not in m.tables and m.num_free_blocks == 1
    assert m.append(0, [4, 5, 6, 7]) is None and m.token_ids(0) == [1, 2, 3]
    with pytest.raises(ValueError, match="needs 4 blocks of 2; the pool has 3"):
        m.allocate(2, list(range(7)))
    with pytest.raises(ValueError, match="unknown sequence 5"):
        m.free(5)
    m.check()


@given(n=st.integers(0, 10_000), size=st.integers(1, 64))
def test_blocks_needed_is_the_ceiling(n, size):
    assert (blocks_needed(n, size) - 1) * size < n <= blocks_needed(
        n, size
    ) * size or n == 0


class BlockManagerMachine(RuleBasedStateMachine):
    """Random allocate / append / fork / free sequences against a model of each
    sequence's tokens. Prompts start with one of two fixed prefixes so that prefix sharing
    and copy-on-write happen often; the pool is small so that exhaustion happens too."""

    NUM_BLOCKS, BLOCK_SIZE = 12, 3
    PREFIXES = ([1, 2, 3, 4, 5, 6], [1, 2, 3, 9, 9])

    seqs = Bundle("seqs")

    def __init__(self):
        super().__init__()
        self.m = BlockManager(self.NUM_BLOCKS, self.BLOCK_SIZE)
        self.model: dict[int, list[int]] = {}
        self.next_id = 0

    def _new_id(self):
        self.next_id += 1
        return self.next_id

    @rule(
        target=seqs,
        which=st.sampled_from([0, 1]),
        suffix=st.lists(st.integers(0, 3), max_size=7),
    )
    def allocate(self, which, suffix):
        prompt = self.PREFIXES[which] + suffix
        free_before, seq = self.m.num_free_blocks, self._new_id()
        table = self.m.allocate(seq, prompt)
        if table is None:
            assert free_before < blocks_needed(len(prompt), self.BLOCK_SIZE)
            assert self.m.num_free_blocks == free_before and seq not in self.m.tables
            return multiple()  # nothing enters the bundle
        self.model[seq] = list(prompt)
        return seq

    @rule(seq=seqs, tokens=st.lists(st.integers(0, 3), min_size=1, max_size=5))
    def append(self, seq, tokens):
        free_before = self.m.num_free_blocks
        if self.m.append(seq, tokens) is None:
            assert free_before < blocks_needed(len(tokens), self.BLOCK_SIZE) + 1
            assert self.m.num_free_blocks == free_before
        else:
            self.model[seq].extend(tokens)

    @rule(target=seqs, parent=seqs)
    def fork(self, parent):
        child = self._new_id()
        self.m.fork(parent, child)
        self.model[child] = list(self.model[parent])
        return child

    @rule(seq=consumes(seqs))
    def free(self, seq):
        self.m.free(seq)
        del self.model[seq]

    @invariant()
    def contents_and_counts_agree(self):
        self.m.check()  # ref counts == block-table references, free <=> count 0, index sane
        for seq, tokens in self.model.items():
            assert (
                self.m.token_ids(seq) == tokens
            )  # no write ever leaked into another reader

    def teardown(self):
        for seq in list(self.model):
            self.m.free(seq)
        assert self.m.num_free_blocks == self.NUM_BLOCKS  # nothing leaks
        assert not self.m.tables and not self.m._prefix_index
        self.m.check()


TestBlockManagerMachine = BlockManagerMachine.TestCase
TestBlockManagerMachine.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
