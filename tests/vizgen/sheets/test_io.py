from kernels import flash, naive
from vizgen.sheets import io


def test_requested_bytes_come_from_the_kernels_closed_forms():
    std, fa = io.requested(4096)
    assert std == naive.hbm_bytes(1, 1, 1, 4096, 4096, io.HEAD_DIM, io.BLOCK, io.BLOCK, io.HEAD_DIM, 2)
    assert fa == flash.hbm_bytes(1, 1, 1, 4096, 4096, io.HEAD_DIM, io.BLOCK, io.BLOCK, 2)
    # Standard attention's N x N traffic: S written and read, P written and read, once each.
    n2 = 4096 * 4096 * 2
    assert (std["S"]["store"], std["S"]["load"], std["P"]["store"], std["P"]["load"]) == (n2, n2, n2, n2)


def test_standard_attention_moves_more_and_sits_below_the_ridge():
    facts = io.trace()["facts"]
    assert float(facts["ratio"]) > 1
    assert int(facts["std_intensity"]) < 153 < int(facts["fa_intensity_dram"].replace(",", ""))
    assert int(facts["std_intensity_dram"]) < 153  # S and P alone keep it memory-bound
