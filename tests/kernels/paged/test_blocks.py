import pytest

from kernels.paged.blocks import BlockPool


def test_pool_hands_out_every_block_once_then_none():
    pool = BlockPool(num_blocks=3, block_size=4)
    taken = [pool.allocate() for _ in range(3)]
    assert sorted(b.block_id for b in taken) == [0, 1, 2]
    assert pool.allocate() is None  # exhausted: None, not an exception
    assert all(pool.ref_counter.get(b.block_id) == 1 for b in taken)
    pool.check()


def test_release_frees_only_at_the_last_reference_and_clears_contents():
    pool = BlockPool(num_blocks=2, block_size=4)
    block = pool.allocate()
    block.append([7, 8])
    pool.share(block.block_id)
    assert pool.release(block.block_id) is False
    assert block.token_ids == [7, 8] and pool.num_free_blocks == 1
    assert pool.release(block.block_id) is True
    assert block.token_ids == [] and pool.num_free_blocks == 2
    pool.check()


def test_free_queue_reuses_the_oldest_freed_block_first():
    pool = BlockPool(num_blocks=3, block_size=1)
    a, b, _c = (pool.allocate() for _ in range(3))
    pool.release(b.block_id)
    pool.release(a.block_id)
    assert pool.allocate().block_id == b.block_id


def test_internal_misuse_trips_an_assert_and_impossible_pools_a_value_error():
    pool = BlockPool(num_blocks=1, block_size=2)
    with pytest.raises(AssertionError):
        pool.release(0)  # never taken
    with pytest.raises(AssertionError):
        pool.allocate().append([1, 2, 3])  # overflows a 2-slot block
    with pytest.raises(ValueError, match="num_blocks=0"):
        BlockPool(num_blocks=0, block_size=16)
