"""Tests for kernels/approx/lowrank.py (Linformer)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kernels.approx import lowrank


def qkv(n, d, seed=0):
    return np.random.default_rng(seed).standard_normal((3, n, d))


def exact(q, k, v):
    t = [torch.from_numpy(x)[None, None] for x in (q, k, v)]
    return F.scaled_dot_product_attention(*t)[0, 0].numpy()


def rel_err(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def test_pooling_projection_averages_contiguous_segments():
    e = lowrank.pooling_projection(10, 4)  # segments of sizes 3, 2, 3, 2 (floor(i * k / n))
    expected = np.zeros((4, 10))
    for i in range(10):
        expected[i * 4 // 10, i] = 1.0
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_array_equal(e, expected)
    np.testing.assert_array_equal(lowrank.pooling_projection(6, 6), np.eye(6))


def test_full_rank_pooling_is_exact():
    q, k, v = qkv(64, 8)
    got = lowrank.linformer_attention(q, k, v, e=lowrank.pooling_projection(64, 64))
    np.testing.assert_allclose(got.out, exact(q, k, v), atol=1e-12)
    assert got.implicit and got.pairs is None


def test_error_falls_as_k_grows():
    n = 256
    q, k, v = qkv(n, 16, seed=1)
    ex = exact(q, k, v)
    errors = [rel_err(lowrank.linformer_attention(q, k, v, e=lowrank.pooling_projection(n, r)).out, ex) for r in (8, 32, 128, 256)]
    assert all(a > b for a, b in zip(errors, errors[1:]))


def test_untrained_gaussian_projection_is_not_exact_even_at_k_equal_n():
    n = 128
    q, k, v = qkv(n, 16, seed=2)
    out = lowrank.linformer_attention(q, k, v, e=lowrank.gaussian_projection(n, n)).out
    assert rel_err(out, exact(q, k, v)) > 0.5


def test_implied_matrix_reproduces_the_output_and_separate_f():
    n = 48
    q, k, v = qkv(n, 8, seed=3)
    e = lowrank.pooling_projection(n, 12)
    a = lowrank.linformer_attention_matrix(q, k, e=e)
    np.testing.assert_allclose(a @ v, lowrank.linformer_attention(q, k, v, e=e).out, atol=1e-12)
    np.testing.assert_allclose(a.sum(axis=1), 1.0)
    f = lowrank.gaussian_projection(n, 12, seed=1)
    s = q @ (e @ k).T / np.sqrt(8)
    p = np.exp(s - s.max(axis=1, keepdims=True))
    np.testing.assert_allclose(lowrank.linformer_attention(q, k, v, e=e, f=f).out, p / p.sum(1, keepdims=True) @ (f @ v), atol=1e-12)


def test_flops_formula():
    q, k, v = qkv(96, 8)
    assert lowrank.linformer_attention(q, k, v, e=lowrank.pooling_projection(96, 24)).flops == lowrank.linformer_flops(96, 8, 24) == 8 * 96 * 24 * 8


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: lowrank.pooling_projection(4, 5), "k must be at most"),
        (lambda: lowrank.linformer_attention(*qkv(8, 2), e=np.ones((2, 7))), "e must have shape"),
        (lambda: lowrank.linformer_attention(*qkv(8, 2), e=np.ones((2, 8)), f=np.ones((3, 8))), "f must have"),
    ],
)
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()
