"""Tests for kernels/approx/kernel_features.py (Performer FAVOR+, linear attention)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kernels.approx import kernel_features as kf
from kernels.approx.result import Baseline


def qkv(n, d, seed=0):
    return np.random.default_rng(seed).standard_normal((3, n, d))


def exact(q, k, v, causal=False):
    t = [torch.from_numpy(x)[None, None] for x in (q, k, v)]
    return F.scaled_dot_product_attention(*t, is_causal=causal)[0, 0].numpy()


def rel_err(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def test_orthogonal_features_are_orthogonal_within_a_block():
    w = kf.orthogonal_gaussian(10, 4, seed=1)  # blocks of 4, 4, 2 rows
    assert w.shape == (10, 4)
    for block in (w[:4], w[4:8]):
        gram = block @ block.T
        np.testing.assert_allclose(gram - np.diag(np.diag(gram)), 0.0, atol=1e-12)


def test_favor_kernel_is_an_unbiased_positive_estimate_of_exp():
    rng = np.random.default_rng(0)
    x, y = 0.4 * rng.standard_normal((2, 3, 5))
    estimates = []
    for seed in range(1000):
        w = kf.orthogonal_gaussian(8, 5, seed)
        phi_x, phi_y = kf.favor_features(x, w), kf.favor_features(y, w)
        assert np.all(phi_x > 0)
        estimates.append(phi_x @ phi_y.T)
    np.testing.assert_allclose(np.mean(estimates, axis=0), np.exp(x @ y.T), rtol=0.06)


def test_performer_error_falls_with_more_features():
    n, d = 256, 16
    q, k, v = qkv(n, d, seed=1)
    ex = exact(q, k, v)

    def mean_error(m):
        return np.mean([rel_err(kf.performer_attention(q, k, v, n_features=m, seed=s).out, ex) for s in range(4)])

    errors = [mean_error(m) for m in (16, 64, 256, 1024)]
    assert all(a > b for a, b in zip(errors, errors[1:]))


def test_performer_matches_its_implied_matrix_and_flop_formula():
    n, d, m = 32, 4, 12
    q, k, v = qkv(n, d, seed=2)
    got = kf.performer_attention(q, k, v, n_features=m, seed=3)
    w = kf.orthogonal_gaussian(m, d, 3)
    a = kf.kernel_attention_matrix(kf.favor_features(q / d**0.25, w), kf.favor_features(k / d**0.25, w))
    np.testing.assert_allclose(a @ v, got.out, atol=1e-12)
    assert got.flops == kf.favor_flops(n, d, m) and got.implicit


def test_elu_features():
    x = np.array([[-2.0, 0.0, 3.0]])
    np.testing.assert_allclose(kf.elu_features(x), [[np.exp(-2.0), 1.0, 4.0]])


def test_causal_linear_attention_recurrence_equals_masked_quadratic_form():
    n, d = 40, 6
    q, k, v = qkv(n, d, seed=4)
    phi_q = np.where(q > 0, q + 1, np.exp(q))
    phi_k = np.where(k > 0, k + 1, np.exp(k))
    a = np.tril(phi_q @ phi_k.T)  # the kernelised attention with j <= i
    expected = (a / a.sum(axis=1, keepdims=True)) @ v
    got = kf.linear_attention(q, k, v, causal=True)
    np.testing.assert_allclose(got.out, expected, atol=1e-12)
    assert got.baseline is Baseline.CAUSAL and got.flops == kf.elu_flops(n, d)
    full = np.triu(phi_q @ phi_k.T) + np.tril(phi_q @ phi_k.T, -1)
    np.testing.assert_allclose(kf.linear_attention(q, k, v).out, (full / full.sum(1, keepdims=True)) @ v, atol=1e-12)


def test_naive_performer_snippet_equals_its_quadratic_form():
    gen = torch.Generator().manual_seed(0)
    q, k, v = torch.randn(3, 2, 64, 8, generator=gen, dtype=torch.float64)
    w = torch.randn(16, 8, generator=gen, dtype=torch.float64)
    a = torch.relu(q @ w.T) @ torch.relu(k @ w.T).transpose(-1, -2)  # (2, 64, 64), formed on purpose
    expected = (a / a.sum(-1, keepdim=True)) @ v
    torch.testing.assert_close(kf.naive_performer(q, k, v, w), expected)


def test_associativity_example_in_numbers():
    ex = kf.associativity_example()
    np.testing.assert_array_equal(ex.scores[0], [1.0, 0.0, 1.0, 1.0])  # phi(q_0) = (1, 0) . each phi(k_j)
    np.testing.assert_array_equal(ex.kv, [[4.0, 1.0], [4.0, 1.0]])
    np.testing.assert_array_equal(ex.left, ex.right)
    np.testing.assert_array_equal(ex.left[3], [12.0, 3.0])
    assert (ex.left_multiplies, ex.right_multiplies) == (64, 32)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: kf.performer_attention(*qkv(8, 2), n_features=0), "m must be"),
        (lambda: kf.favor_features(np.ones((3, 2)), np.ones((4, 3))), "w must have"),
        (lambda: kf.linear_attention(np.ones((3, 2)), np.ones((3, 2)), np.ones((4, 2))), "v must have"),
    ],
)
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.slow
def test_benchmark_script_runs_and_writes_its_json(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "bench_performer.py"
    out = tmp_path / "bench.json"
    args = ["--n", "256", "--heads", "2", "--d", "16", "--features", "32", "--repeats", "1", "--out", str(out)]
    subprocess.run([sys.executable, str(script), *args], check=True, capture_output=True)
    data = json.loads(out.read_text())
    assert data["setting"]["n"] == 256 and data["machine"]["torch"] == torch.__version__
    assert data["sdpa"]["flops"] == 2 * 4 * 256 * 256 * 16
    assert data["naive_performer"]["flops"] == 2 * kf.favor_flops(256, 16, 32)
    assert data["speedup"] > 0
