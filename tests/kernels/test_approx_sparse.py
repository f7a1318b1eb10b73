"""Tests for kernels/approx/sparse.py and the Pairs container.

Patterns are checked against the papers' set definitions written as plain Python
loops; outputs against PyTorch's scaled_dot_product_attention (float64) with the
pattern as its boolean mask.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernels.approx import sparse
from kernels.approx.measure import strided_pair_count
from kernels.approx.result import Baseline, Coverage, Pairs

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def qkv(n, d, seed=0):
    return np.random.default_rng(seed).standard_normal((3, n, d))


def sdpa(q, k, v, mask=None, is_causal=False):
    """Torch attention in float64 for one head; mask True = may attend."""
    t = [torch.from_numpy(x)[None, None] for x in (q, k, v)]
    m = None if mask is None else torch.from_numpy(mask)[None, None]
    return F.scaled_dot_product_attention(*t, attn_mask=m, is_causal=is_causal)[0, 0].numpy()


def rel_err(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


# Child et al. 2019, Section 4.2, as sets (merged head, causal).
def loop_strided(n, l):
    mask = np.zeros((n, n), dtype=bool)
    for i in range(n):
        for j in range(i + 1):
            mask[i, j] = j >= max(0, i - l) or (i - j) % l == 0
    return mask


def loop_fixed(n, l, c):
    mask = np.zeros((n, n), dtype=bool)
    for i in range(n):
        for j in range(i + 1):
            mask[i, j] = j // l == i // l or j % l in range(l - c, l)
    return mask


def loop_longformer(n, w, g):
    mask = np.zeros((n, n), dtype=bool)
    for i in range(n):
        for j in range(n):
            mask[i, j] = abs(i - j) <= w // 2 or i in g or j in g
    return mask


def test_strided_matches_the_paper_sets():
    assert np.array_equal(sparse.strided_pattern(37, 6).dense(), loop_strided(37, 6))


def test_fixed_matches_the_paper_sets():
    assert np.array_equal(sparse.fixed_pattern(37, 6, 2).dense(), loop_fixed(37, 6, 2))


def test_longformer_matches_window_plus_global():
    assert np.array_equal(sparse.longformer_pattern(40, 8, (0, 17)).dense(), loop_longformer(40, 8, (0, 17)))


def test_bigbird_adds_at_most_r_random_keys_per_row_reproducibly():
    n, w, r = 64, 6, 5
    base = loop_longformer(n, w, (0,))
    bb = sparse.bigbird_pattern(n, w, (0,), r, seed=3).dense()
    assert np.all(bb >= base)
    extra = (bb & ~base).sum(axis=1)
    assert np.all(extra <= r) and extra.sum() > 0
    assert np.array_equal(bb, sparse.bigbird_pattern(n, w, (0,), r, seed=3).dense())
    assert not np.array_equal(bb, sparse.bigbird_pattern(n, w, (0,), r, seed=4).dense())


@FAST
@given(n=st.integers(1, 60), l=st.integers(1, 12), c=st.integers(1, 12))
def test_sparse_transformer_patterns_are_causal_and_keep_the_diagonal(n, l, c):
    for pattern in (sparse.strided_pattern(n, l), sparse.fixed_pattern(n, l, min(c, l))):
        mask = pattern.dense()
        assert not np.any(np.triu(mask, 1))
        assert np.all(np.diag(mask))


@FAST
@given(n=st.integers(1, 60), l=st.integers(1, 12))
def test_strided_pair_count_closed_form(n, l):
    assert strided_pair_count(n, l) == sparse.strided_pattern(n, l).count


@FAST
@given(n=st.integers(1, 50), w=st.integers(1, 20), g=st.lists(st.integers(0, 49), max_size=3))
def test_longformer_is_symmetric(n, w, g):
    mask = sparse.longformer_pattern(n, w, [x % n for x in g]).dense()
    assert np.array_equal(mask, mask.T)


@FAST
@given(
    n=st.integers(2, 48),
    d=st.integers(1, 8),
    kind=st.sampled_from(["strided", "fixed", "longformer", "bigbird"]),
    budget=st.integers(1, 10),
    seed=st.integers(0, 2**16),
)
def test_engine_equals_masked_sdpa(n, d, kind, budget, seed):
    patterns = {
        "strided": lambda: sparse.strided_pattern(n, budget),
        "fixed": lambda: sparse.fixed_pattern(n, budget, 1),
        "longformer": lambda: sparse.longformer_pattern(n, budget, (seed % n,)),
        "bigbird": lambda: sparse.bigbird_pattern(n, budget, (), min(budget, n), seed),
    }
    pairs = patterns[kind]()
    q, k, v = qkv(n, d, seed)
    got = sparse.sparse_attention(q, k, v, pairs)
    np.testing.assert_allclose(got.out, sdpa(q, k, v, pairs.dense()), atol=1e-12, rtol=1e-10)
    assert got.flops == sparse.sparse_attention_flops(pairs, d) == 4 * d * pairs.dense().sum()
    assert got.coverage is Coverage.SUBSET and not got.implicit


def test_full_budgets_are_exact():
    n, d = 50, 8
    q, k, v = qkv(n, d)
    exact_causal, exact_full = sdpa(q, k, v, is_causal=True), sdpa(q, k, v)
    np.testing.assert_allclose(sparse.strided_attention(q, k, v, stride=n).out, exact_causal, atol=1e-12)
    np.testing.assert_allclose(sparse.fixed_attention(q, k, v, stride=n, c=1).out, exact_causal, atol=1e-12)
    np.testing.assert_allclose(sparse.longformer_attention(q, k, v, window=2 * n).out, exact_full, atol=1e-12)
    assert sparse.strided_attention(q, k, v).baseline is Baseline.CAUSAL


def test_empty_rows_give_zero_output():
    mask = np.zeros((4, 4), dtype=bool)
    mask[1, 2] = True
    q, k, v = qkv(4, 3)
    out = sparse.sparse_attention(q, k, v, Pairs.from_mask(mask)).out
    assert np.all(out[[0, 2, 3]] == 0.0)
    np.testing.assert_allclose(out[1], v[2])


def test_longformer_error_falls_as_the_window_grows():
    n, d = 256, 16
    q, k, v = qkv(n, d, seed=1)
    exact = sdpa(q, k, v)
    errors = [rel_err(sparse.longformer_attention(q, k, v, window=w).out, exact) for w in (8, 32, 128, 256, 512)]
    assert all(a > b for a, b in zip(errors, errors[1:]))
    assert errors[-1] < 1e-12


def test_bigbird_error_falls_with_more_random_keys():
    n, d = 256, 16
    q, k, v = qkv(n, d, seed=2)
    exact = sdpa(q, k, v)

    def mean_error(r):
        return np.mean([rel_err(sparse.bigbird_attention(q, k, v, window=8, random_keys=r, seed=s).out, exact) for s in range(4)])

    errors = [mean_error(r) for r in (4, 32, 128, 256)]
    assert all(a > b for a, b in zip(errors, errors[1:]))
    assert errors[-1] < 1e-12  # r = N: every key


def test_sparse_transformer_pairs_grow_as_n_sqrt_n():
    # With l = ceil(sqrt(N)) a row holds about 2 sqrt(N) keys; at N = 4096 that is
    # 1.5% of the causal triangle's N^2 / 2.
    n = 4096
    pairs = sparse.strided_pattern(n, sparse.default_stride(n))
    assert sparse.default_stride(n) == 64
    per_row = pairs.count / n
    assert 1.4 * math.sqrt(n) < per_row < 2.1 * math.sqrt(n)


def test_longformer_pattern_at_8192_without_a_dense_matrix():
    n, w = 8192, 256
    pairs = sparse.longformer_pattern(n, w)
    half = w // 2
    expected = sum(min(i + half, n - 1) - max(i - half, 0) + 1 for i in range(n))
    assert pairs.count == expected
    assert np.array_equal(pairs.row(4000), np.arange(4000 - half, 4000 + half + 1))
    with pytest.raises(ValueError, match="exceeds"):
        pairs.dense()


def test_engine_peak_memory_matches_its_formula():
    from kernels.approx.measure import measured_peak_bytes

    n, d = 1024, 32
    q, k, v = qkv(n, d)
    pairs = sparse.longformer_pattern(n, 64, (0,))
    result, measured = measured_peak_bytes(sparse.sparse_attention, q, k, v, pairs)
    assert result.peak_bytes <= measured <= 3 * result.peak_bytes


def test_pairs_round_trip_and_merge_duplicates():
    mask = np.random.default_rng(0).random((7, 9)) < 0.3
    pairs = Pairs.from_mask(mask)
    assert np.array_equal(pairs.dense(), mask) and pairs.count == mask.sum()
    rows, cols = np.nonzero(mask)
    again = Pairs.from_coo(7, 9, np.concatenate([rows, rows]), np.concatenate([cols, cols]))
    assert np.array_equal(again.indices, pairs.indices) and np.array_equal(again.indptr, pairs.indptr)
    assert pairs.density == pytest.approx(mask.mean())


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: sparse.strided_pattern(0, 3), "n must be"),
        (lambda: sparse.fixed_pattern(10, 3, 4), "c must be"),
        (lambda: sparse.longformer_pattern(10, 3, (10,)), "global_tokens"),
        (lambda: sparse.bigbird_pattern(10, 3, (), 11), "random_keys"),
        (lambda: sparse.sparse_attention(*qkv(5, 2), sparse.strided_pattern(4, 2)), "pairs must be"),
        (lambda: Pairs.from_mask(np.zeros((2, 2))), "mask must be"),
    ],
)
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_density_grid_averages_blocks_of_the_dense_map():
    mask = sparse.strided_pattern(30, 4).dense()
    grid = Pairs.from_mask(mask).density_grid(7)  # uneven blocks: 30 rows into 7
    edges = [i * 7 // 30 for i in range(30)]
    for a in range(7):
        for b in range(7):
            block = mask[np.ix_([i for i in range(30) if edges[i] == a], [j for j in range(30) if edges[j] == b])]
            assert grid[a, b] == pytest.approx(block.mean())
    with pytest.raises(ValueError, match="cells"):
        Pairs.from_mask(mask).density_grid(31)
