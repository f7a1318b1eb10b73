"""The part1 sheet: the √d_k worked example and the attention-matrix memory, with units right."""

import math
from itertools import pairwise

import pytest

from kernels import scoring
from vizgen.sheets import part1


@pytest.fixture(scope="module")
def facts():
    return part1.trace()["facts"]


def test_dot_variance_is_d_k_and_scaling_brings_it_back_to_one(facts):
    for d_k in part1.EXAMPLE_D_KS:
        ex = part1.sqrt_dk_example(d_k)
        assert abs(ex["var_dot"] - d_k) < 4 * ex["stderr"]
        assert ex["var_scaled"] == pytest.approx(ex["var_dot"] / d_k)
        assert ex["example_scaled"] == pytest.approx(ex["example_dot"] / math.sqrt(d_k))
        assert facts[f"var_scaled_{d_k}"] == f"{ex['var_scaled']:.2f}"
    assert facts["sqrt_dk_64"] == "8"


def test_memory_in_binary_units_from_the_closed_form(facts):
    # 512² values x 2 bytes = 524,288 bytes = 512 KiB (the plan's "0.5 MB" is 0.5 MiB).
    assert facts["head_512_fp16"] == "512 KiB"
    # BERT-base: 12 layers x 12 heads x 512² values = 37.7 million values, not megabytes.
    assert facts["bert_512_values_millions"] == "37.7"
    assert facts["bert_512_fp32"] == f"{12 * 12 * 512**2 * 4 // 2**20} MiB" == "144 MiB"
    assert facts["bert_512_fp16"] == "72 MiB"
    assert facts["bert_2048_fp16"] == "1.125 GiB" and facts["bert_8192_fp32"] == "36 GiB"
    assert facts["growth_512_to_8192"] == "256"


def test_each_fourfold_longer_sequence_costs_sixteen_times_the_memory():
    sizes = [part1.bert_bytes(n, part1.FP16) for n in part1.SEQ_LENS]
    assert [b / a for a, b in pairwise(sizes)] == [16, 16]
    assert sizes[0] == scoring.attention_matrix_bytes(512, 2) * 144


def test_binary_size_picks_the_largest_unit():
    assert part1.binary_size(1023) == "1023 bytes"
    assert part1.binary_size(1536) == "1.5 KiB"
    assert part1.binary_size(3 * 2**30) == "3 GiB"


def test_the_table_has_a_row_per_sequence_length():
    table = part1.trace()["tables"]["attention_memory"]
    assert [line.split("|")[1].strip() for line in table.splitlines()[2:]] == ["512", "2,048", "8,192"]
