"""The serving sheet: Part 4's sizes, held against the figures the papers print themselves."""

from kernels import kv_cache
from vizgen.sheets import serving


def test_sizes_use_the_largest_binary_unit_and_drop_trailing_zeros():
    assert serving.size(40 * 2**30) == "40 GiB"
    assert serving.size(2.5 * 2**20) == "2.5 MiB"
    assert serving.size(11.25 * 2**30) == "11.25 GiB"
    assert serving.size(819_200) == "800 KiB"
    assert serving.size(512) == "512 bytes"


def test_facts_reproduce_the_papers_own_numbers():
    facts = serving.trace()["facts"]
    assert facts["opt13_token"] == "800 KiB"  # vLLM paper, Section 3: "800 KB" per token for OPT-13B
    assert facts["v2_vs_dense_deployed"] == "93.3"  # DeepSeek-V2 abstract: "reduces the KV cache by 93.3%"
    assert facts["v2_equiv_groups"] == "2.25"  # DeepSeek-V2 Table 1: MLA ~ GQA with 2.25 groups
    assert facts["mistral_32k_ratio"] == "8"  # Mistral 7B, Section 2: "reduces the cache memory usage by 8x"
    assert facts["l70_128k"] == "40 GiB" and facts["l70_mha_128k"] == "320 GiB"


def test_scheme_table_has_one_row_per_scheme_in_order():
    rows = serving.trace()["tables"]["schemes_70b"].splitlines()[2:]
    assert [r.split("|")[1].strip() for r in rows] == list(kv_cache.SCHEMES)
    assert all(r.count("|") == rows[0].count("|") for r in rows)


def test_model_table_lists_every_preset():
    rows = serving.trace()["tables"]["models"].splitlines()[2:]
    assert [r.split("|")[1].strip() for r in rows] == list(kv_cache.PRESETS)
