"""The score functions compute what the papers write, and the sampled statistics
show footnote 4 of Vaswani et al. (arXiv:1706.03762): Var(q·k) = d_k."""

import math
from itertools import pairwise

import numpy as np
import pytest
import torch

from kernels import reference, scoring

N, M, SEED = 512, 16, 0
D_KS = (4, 16, 64, 256, 512)
SIGMAS = 4  # a 4-sigma band: a correct estimator lands outside it with p ≈ 6e-5


@pytest.fixture(scope="module")
def stats():
    return {d: scoring.score_statistics(d, N, M, SEED) for d in D_KS}


def test_scores_match_the_papers_formulas_written_out():
    rng = np.random.default_rng(1)
    q, k = rng.standard_normal((3, 8)), rng.standard_normal((5, 8))  # (n, d), (m, d)
    params = scoring.init_additive(8, rng, d_a=6)
    for i in range(3):
        for j in range(5):
            e = params.v_a @ np.tanh(params.W_a @ q[i] + params.U_a @ k[j])
            assert scoring.additive_scores(q, k, params)[i, j] == pytest.approx(e)
            assert scoring.dot_scores(q, k)[i, j] == pytest.approx(q[i] @ k[j])
            assert scoring.scaled_dot_scores(q, k)[i, j] == pytest.approx(q[i] @ k[j] / math.sqrt(8))


def test_scaled_dot_attention_agrees_with_the_reference():
    rng = np.random.default_rng(2)
    q, k, v = (rng.standard_normal((1, 1, 7, 16)) for _ in range(3))  # (B, H, N, D)
    ours = reference.softmax(scoring.scaled_dot_scores(q, k)) @ v
    np.testing.assert_allclose(ours, reference.attention(q, k, v), rtol=1e-12)


def test_additive_scores_are_bounded_by_the_l1_norm_of_v_a():
    rng = np.random.default_rng(3)
    params = scoring.init_additive(32, rng)
    e = scoring.additive_scores(100 * rng.standard_normal((4, 32)), 100 * rng.standard_normal((9, 32)), params)
    assert np.abs(e).max() <= np.abs(params.v_a).sum()


def test_glorot_weights_have_the_glorot_variance():
    w = scoring.glorot_normal(300, 500, np.random.default_rng(4))
    # Sample variance of 150,000 normals: relative standard error sqrt(2 / 150,000) ≈ 0.4%.
    assert w.var() == pytest.approx(2 / 800, rel=4 * math.sqrt(2 / w.size))


def test_dot_score_variance_is_d_k_within_the_sampling_error(stats):
    for d in D_KS:
        error = scoring.variance_standard_error(d, N, M)
        assert abs(stats[d]["dot"].variance - d) < SIGMAS * error


def test_scaled_score_variance_is_one_within_the_sampling_error(stats):
    for d in D_KS:
        error = scoring.variance_standard_error(d, N, M) / d  # scaling by 1/√d_k divides the variance by d_k
        assert abs(stats[d]["scaled_dot"].variance - 1) < SIGMAS * error


def test_the_standard_error_formula_matches_the_spread_over_repeats():
    d, n, m, repeats = 8, 32, 4, 2000
    rng = np.random.default_rng(5)
    q, k = scoring.sample_qk(n * repeats, m, d, rng)
    scores = scoring.dot_scores(q, k).reshape(repeats, n * m)
    spread = (scores**2).mean(axis=1).std()
    # The std of 2000 estimates is itself known to about 1 / sqrt(2 * 2000) ≈ 1.6%.
    assert spread == pytest.approx(scoring.variance_standard_error(d, n, m), rel=0.08)


def test_every_softmax_row_sums_to_one(stats):
    for per_function in stats.values():
        for s in per_function.values():
            np.testing.assert_allclose(s.weights.sum(axis=-1), 1.0, rtol=1e-12)
            assert (s.weights >= 0).all()


def test_dot_entropy_collapses_while_scaled_and_additive_stay_near_uniform(stats):
    uniform = math.log(M)
    dot = [stats[d]["dot"].entropy for d in D_KS]
    assert all(a > b for a, b in pairwise(dot))  # strictly falling with d_k
    assert dot[-1] < 0.1 * uniform
    assert stats[D_KS[-1]]["dot"].max_weight > 0.9
    for name in ("scaled_dot", "additive"):
        entropies = [stats[d][name].entropy for d in D_KS]
        assert min(entropies) > 0.8 * uniform and max(entropies) < uniform
        assert max(entropies) - min(entropies) < 0.1 * uniform


def test_saturation_shrinks_the_gradient(stats):
    dot = [stats[d]["dot"].gradient_norm for d in D_KS]
    assert all(a > b for a, b in pairwise(dot))
    scaled = [stats[d]["scaled_dot"].gradient_norm for d in D_KS]
    assert dot[-1] < 0.5 * min(scaled)


def test_softmax_jacobian_is_autograd_of_softmax():
    e = torch.tensor([0.3, -1.2, 2.0, 0.1], dtype=torch.float64)
    expected = torch.autograd.functional.jacobian(lambda x: torch.softmax(x, dim=0), e).numpy()
    np.testing.assert_allclose(scoring.softmax_jacobian(torch.softmax(e, dim=0).numpy()), expected, atol=1e-14)


def test_gradient_norm_and_entropy_at_the_two_extremes():
    m = 16
    uniform, one_hot = np.full(m, 1 / m), np.eye(m)[3]
    assert scoring.softmax_gradient_norm(uniform) == pytest.approx(scoring.uniform_gradient_norm(m))
    assert scoring.entropy(uniform) == pytest.approx(math.log(m))
    assert scoring.softmax_gradient_norm(one_hot) == 0 and scoring.entropy(one_hot) == 0


def test_statistics_are_deterministic():
    a, b = (scoring.score_statistics(8, 16, 4, seed=7) for _ in range(2))
    for name in scoring.SCORE_FUNCTIONS:
        np.testing.assert_array_equal(a[name].scores, b[name].scores)


def test_attention_matrix_bytes_is_the_closed_form():
    assert scoring.attention_matrix_bytes(512, 2) == 512 * 1024  # 512 KiB
    assert scoring.attention_matrix_bytes(512, 4, heads=12, layers=12) == 144 * 2**20  # 144 MiB


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_sizes_are_rejected_by_name(bad):
    with pytest.raises(ValueError, match="d_k"):
        scoring.score_statistics(bad, 4, 4, 0)
    with pytest.raises(ValueError, match="n_ctx"):
        scoring.attention_matrix_bytes(bad, 2)


def test_mismatched_dimensions_are_rejected():
    with pytest.raises(ValueError, match="share d"):
        scoring.dot_scores(np.ones((2, 3)), np.ones((2, 4)))
