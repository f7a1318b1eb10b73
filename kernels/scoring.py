"""Attention score functions, and what each does to the softmax as d_k grows.

Three ways to score a query against m keys, in the papers' symbols:

* additive (Bahdanau, Cho & Bengio 2014, arXiv:1409.0473, §3.1 and appendix A):
  e_ij = v_aᵀ tanh(W_a s_{i-1} + U_a h_j), a one-hidden-layer MLP per (i, j) pair;
* dot (Luong, Pham & Manning 2015, arXiv:1508.04025, §3.1): score(h_t, h̄_s) = h_tᵀ h̄_s;
* scaled dot (Vaswani et al. 2017, arXiv:1706.03762, §3.2.1): qᵀk / √d_k. Footnote 4:
  if the components of q and k are independent with mean 0 and variance 1, then
  q·k = Σ q_i k_i has mean 0 and variance d_k, so unscaled scores spread like √d_k
  and push the softmax into regions with extremely small gradients.

`score_statistics` samples random vectors at one d_k and measures, for each function,
the empirical variance of the scores, the softmax's entropy (in nats; the uniform
maximum is log m), its largest weight (saturation), and the size of its Jacobian
∂α/∂e (what backpropagation multiplies by: near zero once the softmax is one-hot).

Everything is float64 NumPy; softmax is the oracle's (`kernels.reference.softmax`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kernels.reference import softmax

SCORE_FUNCTIONS = ("additive", "dot", "scaled_dot")


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------
# The three score functions: (..., n, d) queries x (..., m, d) keys -> (..., n, m)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class AdditiveParams:
    """Bahdanau's alignment model: e = v_aᵀ tanh(W_a s + U_a h)."""

    W_a: np.ndarray  # (d_a, d) applied to the decoder state s_{i-1}
    U_a: np.ndarray  # (d_a, d) applied to the annotation h_j
    v_a: np.ndarray  # (d_a,)


def glorot_normal(fan_out: int, fan_in: int, rng: np.random.Generator) -> np.ndarray:
    """(fan_out, fan_in) weights with variance 2 / (fan_in + fan_out) (Glorot & Bengio 2010).

    Why Glorot rather than Bahdanau's own init (appendix B: W_a, U_a ~ N(0, 0.001²),
    v_a = 0): with v_a = 0 every score is exactly 0 and the softmax uniform, which shows
    nothing. Glorot keeps each pre-activation at variance ≈ 1 whatever d, so the widget
    compares the score *functions*, not an arbitrary weight scale."""
    std = math.sqrt(2.0 / (fan_in + fan_out))
    return rng.normal(0.0, std, size=(fan_out, fan_in))


def init_additive(d: int, rng: np.random.Generator, d_a: int | None = None) -> AdditiveParams:
    """Glorot-initialised W_a, U_a (d_a x d) and v_a (d_a); d_a = d unless given
    (Bahdanau used d_a = n = 1000, the RNN width)."""
    d = _check_positive_int(d, "d")
    d_a = d if d_a is None else _check_positive_int(d_a, "d_a")
    return AdditiveParams(
        W_a=glorot_normal(d_a, d, rng),
        U_a=glorot_normal(d_a, d, rng),
        v_a=glorot_normal(1, d_a, rng)[0],
    )


def _check_qk(q, k) -> tuple[np.ndarray, np.ndarray]:
    q, k = np.asarray(q, dtype=np.float64), np.asarray(k, dtype=np.float64)
    if q.ndim < 2 or k.ndim < 2:
        raise ValueError(f"q and k must be (..., n, d) and (..., m, d), got q {q.shape}, k {k.shape}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must share d, got q {q.shape} and k {k.shape}")
    return q, k


def additive_scores(s, h, params: AdditiveParams) -> np.ndarray:
    """e_ij = v_aᵀ tanh(W_a s_i + U_a h_j): (..., n, d) x (..., m, d) -> (..., n, m).

    Bounded by construction: |e_ij| ≤ Σ|v_a|, whatever the inputs' size."""
    s, h = _check_qk(s, h)
    if params.W_a.shape[1] != s.shape[-1]:
        raise ValueError(f"params: W_a is {params.W_a.shape}, inputs have d = {s.shape[-1]}")
    ws = s @ params.W_a.T  # (..., n, d_a)
    uh = h @ params.U_a.T  # (..., m, d_a)
    hidden = np.tanh(ws[..., :, None, :] + uh[..., None, :, :])  # (..., n, m, d_a)
    return hidden @ params.v_a  # (..., n, m)


def dot_scores(q, k) -> np.ndarray:
    """Luong's dot score qᵀk: (..., n, d) x (..., m, d) -> (..., n, m)."""
    q, k = _check_qk(q, k)
    return q @ np.swapaxes(k, -1, -2)


def scaled_dot_scores(q, k) -> np.ndarray:
    """Vaswani's qᵀk / √d_k: (..., n, d) x (..., m, d) -> (..., n, m)."""
    q, k = _check_qk(q, k)
    return dot_scores(q, k) / math.sqrt(q.shape[-1])


# --------------------------------------------------------------------------
# What a row of softmax weights looks like
# --------------------------------------------------------------------------


def entropy(p) -> np.ndarray:
    """−Σ_j α_j ln α_j per row, in nats (0 ln 0 = 0): (..., m) -> (...)."""
    p = np.asarray(p, dtype=np.float64)
    logs = np.log(np.where(p > 0, p, 1.0))  # the masked entries contribute 0
    return -np.sum(p * logs, axis=-1)


def softmax_jacobian(p) -> np.ndarray:
    """∂α_i/∂e_j = α_i (δ_ij − α_j) = diag(α) − α αᵀ: (..., m) -> (..., m, m)."""
    p = np.asarray(p, dtype=np.float64)
    return p[..., :, None] * np.eye(p.shape[-1]) - p[..., :, None] * p[..., None, :]


def softmax_gradient_norm(p) -> np.ndarray:
    """Frobenius norm of the softmax Jacobian per row: (..., m) -> (...).

    It is √(m−1)/m for a uniform row and 0 for a one-hot row: a saturated softmax
    passes (almost) no gradient back to the scores, so q and k stop learning."""
    return np.linalg.norm(softmax_jacobian(p), axis=(-2, -1))


def uniform_gradient_norm(m: int) -> float:
    """The Jacobian norm of a uniform row over m keys: √(m−1)/m."""
    m = _check_positive_int(m, "m")
    return math.sqrt(m - 1) / m


# --------------------------------------------------------------------------
# Sampling: the experiment of footnote 4, at one d_k
# --------------------------------------------------------------------------


def sample_qk(n: int, m: int, d_k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n independent rows, each one query and its own m keys, components iid N(0, 1).

    Fresh keys per row keep the rows independent, so the variance estimate's error
    follows `variance_standard_error` (shared keys would correlate the rows).
    Returns q (n, 1, d_k) and k (n, m, d_k)."""
    n, m, d_k = (_check_positive_int(v, name) for v, name in ((n, "n"), (m, "m"), (d_k, "d_k")))
    q = rng.standard_normal((n, 1, d_k))
    k = rng.standard_normal((n, m, d_k))
    return q, k


def variance_standard_error(d_k: int, n: int, m: int) -> float:
    """Standard error of mean(x²) as an estimate of Var(q·k) = d_k, over n rows of m scores.

    With iid N(0, 1) components: Var((q·k)²) = 2 d_k² + 6 d_k, and two scores of the
    same row (shared q) have Cov((q·k₁)², (q·k₂)²) = Var(|q|²) = 2 d_k; rows are
    independent. So Var(estimate) = (2 d_k² + 6 d_k + (m − 1) 2 d_k) / (n m)."""
    d_k, n, m = (_check_positive_int(v, name) for v, name in ((d_k, "d_k"), (n, "n"), (m, "m")))
    return math.sqrt((2 * d_k**2 + 2 * d_k * (m + 2)) / (n * m))


@dataclass(frozen=True)
class ScoreStats:
    """One score function at one d_k, over n sampled rows of m keys."""

    scores: np.ndarray  # (n, m)
    weights: np.ndarray  # (n, m) softmax over each row
    variance: float  # of all n·m scores, about 0: E[score] = 0 for all three
    entropy: float  # mean over rows, nats; log m for uniform, 0 for one-hot
    max_weight: float  # mean over rows of max_j α_j; 1/m uniform, 1 one-hot
    gradient_norm: float  # mean over rows of ‖∂α/∂e‖_F


def _stats(scores: np.ndarray) -> ScoreStats:
    weights = softmax(scores)  # (n, m)
    return ScoreStats(
        scores=scores,
        weights=weights,
        variance=float(np.mean(scores**2)),  # the mean is 0 by symmetry: E[q·k] = 0
        entropy=float(np.mean(entropy(weights))),
        max_weight=float(np.mean(np.max(weights, axis=-1))),
        gradient_norm=float(np.mean(softmax_gradient_norm(weights))),
    )


def score_statistics(d_k: int, n: int, m: int, seed: int) -> dict[str, ScoreStats]:
    """Sample q, k at d_k and score them with each function in `SCORE_FUNCTIONS`.

    All three see the same vectors (q as Bahdanau's s_{i-1}, k as h_j); the additive
    weights come from the same seeded generator, drawn after q and k."""
    rng = np.random.default_rng(seed)
    q, k = sample_qk(n, m, d_k, rng)  # (n, 1, d_k), (n, m, d_k)
    params = init_additive(d_k, rng)
    scores = {
        "additive": additive_scores(q, k, params),
        "dot": dot_scores(q, k),
        "scaled_dot": scaled_dot_scores(q, k),
    }
    return {name: _stats(s[:, 0, :]) for name, s in scores.items()}  # (n, 1, m) -> (n, m)


# --------------------------------------------------------------------------
# What the N x N score matrix costs
# --------------------------------------------------------------------------


def attention_matrix_bytes(n_ctx: int, itemsize: int, heads: int = 1, layers: int = 1) -> int:
    """Bytes of one N_CTX x N_CTX score (or probability) matrix per head per layer,
    as standard attention materialises it: layers · heads · N_CTX² · itemsize."""
    values = {"n_ctx": n_ctx, "itemsize": itemsize, "heads": heads, "layers": layers}
    n_ctx, itemsize, heads, layers = (_check_positive_int(v, name) for name, v in values.items())
    return layers * heads * n_ctx * n_ctx * itemsize
