"""Tests for kernels/approx/lsh.py (Reformer LSH attention).

The hash is recomputed from its definition, h(x) = argmax([xR; -xR]); the multi-round
output is checked against a brute-force softmax over each query's union of pairs,
which is what the paper's duplicate-corrected combination must equal.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernels.approx import lsh
from kernels.approx.result import Baseline

FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def inputs(n, d, seed=0):
    q, v = np.random.default_rng(seed).standard_normal((2, n, d))
    return q, v


def brute_force(q, v, pairs):
    """softmax over {scored keys} + {self at SELF_SCORE}, one query at a time."""
    k = q / np.linalg.norm(q, axis=1, keepdims=True)
    out = np.zeros_like(v)
    for i in range(q.shape[0]):
        keys = np.append(pairs.row(i), i)
        s = q[i] @ k[keys].T / np.sqrt(q.shape[1])
        s[-1] = lsh.SELF_SCORE
        p = np.exp(s - s.max())
        out[i] = (p / p.sum()) @ v[keys]
    return out


def test_hash_is_argmax_of_plus_minus_rotation():
    q, _ = inputs(32, 6)
    h = lsh.lsh_hash(q, n_buckets=6, n_rounds=2, chunk_size=8, seed=5)
    for r in range(2):
        for t in range(32):
            x = q[t] / np.linalg.norm(q[t])
            rot = x @ h.rotations[r]
            assert h.buckets[r, t] == np.argmax(np.concatenate([rot, -rot]))
        sorted_keys = [(h.buckets[r, t], t) for t in h.order[r]]
        assert sorted_keys == sorted(sorted_keys)
        assert np.array_equal(h.chunk_of[r][h.order[r]], np.arange(32) // 8)


@FAST
@given(
    log_n=st.integers(3, 6),
    d=st.integers(2, 8),
    half_buckets=st.integers(1, 4),
    n_rounds=st.integers(1, 3),
    chunk_log=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_multi_round_output_is_softmax_over_the_union(log_n, d, half_buckets, n_rounds, chunk_log, seed):
    n = 2**log_n
    q, v = inputs(n, d, seed)
    got = lsh.lsh_attention(q, v, n_buckets=2 * half_buckets, n_rounds=n_rounds, chunk_size=min(n, 2**chunk_log), seed=seed)
    np.testing.assert_allclose(got.out, brute_force(q, v, got.pairs), atol=1e-12, rtol=1e-10)


def test_pairs_share_a_bucket_and_lie_in_the_chunk_window():
    n, m = 64, 8
    q, v = inputs(n, 8, seed=1)
    got = lsh.lsh_attention(q, v, n_buckets=4, n_rounds=2, chunk_size=m, seed=2)
    h = lsh.lsh_hash(q, n_buckets=4, n_rounds=2, chunk_size=m, seed=2)
    expected = np.zeros((n, n), dtype=bool)
    for r in range(2):
        for i in range(n):
            for j in range(n):
                ci, cj = h.chunk_of[r, i], h.chunk_of[r, j]
                near = cj == ci or cj == (ci - 1) % (n // m)
                expected[i, j] |= i != j and h.buckets[r, i] == h.buckets[r, j] and near
    assert np.array_equal(got.pairs.dense(), expected)


def test_one_chunk_attends_to_the_whole_bucket():
    n = 32
    q, v = inputs(n, 4, seed=3)
    got = lsh.lsh_attention(q, v, n_buckets=2, chunk_size=n, seed=0)
    b = lsh.lsh_hash(q, n_buckets=2, chunk_size=n, seed=0).buckets[0]
    expected = (b[:, None] == b[None, :]) & ~np.eye(n, dtype=bool)
    assert np.array_equal(got.pairs.dense(), expected)


def test_shared_qk_exact_matches_sdpa_without_self():
    n, d = 40, 8
    q, v = inputs(n, d, seed=4)
    k = q / np.linalg.norm(q, axis=1, keepdims=True)
    t = [torch.from_numpy(x)[None, None] for x in (q, k, v)]
    mask = ~torch.eye(n, dtype=torch.bool)[None, None]
    expected = F.scaled_dot_product_attention(*t, attn_mask=mask)[0, 0].numpy()
    np.testing.assert_allclose(lsh.shared_qk_attention(q, v), expected, atol=1e-12)


def test_error_falls_with_more_hash_rounds():
    n, d = 256, 16
    q, v = inputs(n, d, seed=5)
    exact = lsh.shared_qk_attention(q, v)

    def mean_error(rounds):
        errors = []
        for s in range(3):
            out = lsh.lsh_attention(q, v, n_buckets=8, n_rounds=rounds, chunk_size=32, seed=s).out
            errors.append(np.linalg.norm(out - exact) / np.linalg.norm(exact))
        return np.mean(errors)

    errors = [mean_error(r) for r in (1, 2, 4, 8)]
    assert all(a > b for a, b in zip(errors, errors[1:]))


def test_flops_and_peak_formulas():
    n, d = 128, 8
    q, v = inputs(n, d)
    for chunk in (16, n):
        got = lsh.lsh_attention(q, v, n_buckets=6, n_rounds=3, chunk_size=chunk)
        assert got.flops == lsh.lsh_attention_flops(n, d, 6, 3, chunk)
        assert got.peak_bytes == lsh.lsh_attention_peak_bytes(n, d, 3, chunk)
        assert got.baseline is Baseline.SHARED_QK
    # one chunk scores N x N per round; chunks of m score N x 2m
    assert lsh.lsh_attention_flops(n, d, 2, 1, n) == n * d * 2 + 4 * n * n * d
    assert lsh.lsh_attention_flops(n, d, 2, 1, 16) == n * d * 2 + 4 * n * 32 * d


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_buckets": 3, "chunk_size": 4}, "even"),
        ({"n_buckets": 4, "chunk_size": 5}, "divide"),
        ({"n_buckets": 4, "chunk_size": 4, "n_rounds": 0}, "n_rounds"),
    ],
)
def test_bad_input_raises(kwargs, match):
    q, v = inputs(16, 4)
    with pytest.raises(ValueError, match=match):
        lsh.lsh_attention(q, v, **kwargs)


def test_peak_memory_formula_against_tracemalloc():
    from kernels.approx.measure import measured_peak_bytes

    q, v = inputs(1024, 32)
    got, measured = measured_peak_bytes(lsh.lsh_attention, q, v, n_buckets=16, n_rounds=2, chunk_size=32)
    # measured also holds NumPy temporaries and the pair lists the formula leaves out
    assert got.peak_bytes <= measured <= 4 * got.peak_bytes


def test_round_pairs_follow_the_definition_and_their_union_is_what_attention_scores():
    n, m = 64, 8
    q, v = inputs(n, 8, seed=6)
    h = lsh.lsh_hash(q, n_buckets=6, n_rounds=3, chunk_size=m, seed=7)
    rounds = lsh.round_pairs(h)
    for r, pairs in enumerate(rounds):
        ci, cj = h.chunk_of[r][:, None], h.chunk_of[r][None, :]
        near = (cj == ci) | (cj == (ci - 1) % (n // m))
        same = h.buckets[r][:, None] == h.buckets[r][None, :]
        assert np.array_equal(pairs.dense(), same & near & ~np.eye(n, dtype=bool))
    got = lsh.lsh_attention(q, v, n_buckets=6, n_rounds=3, chunk_size=m, seed=7)
    assert np.array_equal(lsh.union_pairs(rounds).dense(), got.pairs.dense())


def test_bucket_pairs_contain_the_round_pairs_and_only_same_bucket_pairs():
    q, _ = inputs(48, 4, seed=8)
    h = lsh.lsh_hash(q, n_buckets=4, n_rounds=2, chunk_size=4, seed=1)
    for b, whole, chunked in zip(h.buckets, lsh.bucket_pairs(h), lsh.round_pairs(h)):
        expected = (b[:, None] == b[None, :]) & ~np.eye(48, dtype=bool)
        assert np.array_equal(whole.dense(), expected)
        assert not np.any(chunked.dense() & ~whole.dense())
        assert chunked.count < whole.count  # small chunks cut buckets bigger than the window


def test_shared_qk_scores_rank_keys_by_angle_and_exclude_self():
    q, _ = inputs(16, 3, seed=9)
    s = lsh.shared_qk_scores(q)
    assert np.all(np.diag(s) == lsh.SELF_SCORE)
    k = q / np.linalg.norm(q, axis=1, keepdims=True)
    cosines = k @ k.T
    off = ~np.eye(16, dtype=bool)
    for i in range(16):  # one query's scores are its length times the cosines: same order
        np.testing.assert_allclose(s[i][off[i]], np.linalg.norm(q[i]) * cosines[i][off[i]] / np.sqrt(3))
