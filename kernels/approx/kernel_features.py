"""Kernelised attention: replace exp(q . k) by phi(q) . phi(k) and reorder the products.

With a feature map phi: R^D -> R^m, softmax attention's numerator and denominator
become sums of phi(q_i) . phi(k_j), and associativity lets the key side be summed once:

    out_i = phi(q_i)^T (sum_j phi(k_j) v_j^T) / phi(q_i)^T (sum_j phi(k_j))
          = [phi(Q) (phi(K)^T V)]_i / [phi(Q) (phi(K)^T 1)]_i

costing O(N m D) instead of O(N^2 D) (:func:`associativity_example` works it through).

* Choromanski et al. 2021, "Rethinking Attention with Performers" (arXiv:2009.14794),
  FAVOR+: positive random features phi(x) = exp(w_i . x - ||x||^2 / 2) / sqrt(m) with
  w_i ~ N(0, I_D) (Lemma 1), made orthogonal (orthogonal random features: blocks of D
  orthogonal rows, each row's norm redrawn from the chi distribution so that it
  matches a Gaussian's).
  E[phi(x) . phi(y)] = exp(x . y) exactly; with x = q / D^(1/4) and y = k / D^(1/4)
  that is exp(q . k / sqrt(D)), softmax's kernel. Positivity keeps the denominator
  positive, which sin/cos features do not.
* Katharopoulos et al. 2020, "Transformers are RNNs" (arXiv:2006.16236), Section 3:
  phi(x) = elu(x) + 1, deterministic; causal attention as a recurrence (the RNN view):
  S_i = S_{i-1} + phi(k_i) v_i^T, z_i = z_{i-1} + phi(k_i), out_i = phi(q_i)^T S_i / phi(q_i)^T z_i.
  It approximates nothing in particular: it is a different attention, compared with
  softmax attention here only to show how far it lands.

Costs (FLOPs, 2 per multiply-add; m features, m = D for elu + 1):
    FAVOR+:  8 N m D + 4 N m  (two feature projections, phi(K)^T V, phi(Q) S,
             phi(K)^T 1 and phi(Q) z)
    elu + 1: 4 N D^2 + 4 N D  (non-causal; the causal recurrence does the same work
             one step at a time)
    working set = 8 bytes * (N D output + 2 N m features + m D + m).
No (query, key) pair is ever scored: the attention matrix is implied,
A_ij = phi(q_i) . phi(k_j) / sum_j' phi(q_i) . phi(k_j') (:func:`kernel_attention_matrix`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from kernels.approx.checks import FLOAT_BYTES, as_matrix, check_positive_int, check_qkv
from kernels.approx.result import ApproxResult, Baseline, Coverage


def orthogonal_gaussian(m: int, d: int, seed: int = 0) -> np.ndarray:
    """(m, D) random features: blocks of D orthogonal directions with chi(D)-distributed norms.

    Choromanski et al. 2021 ("orthogonal random features", after Yu et al. 2016,
    arXiv:1610.09072): each block is
    the Q of a Gaussian matrix's QR decomposition; row norms are redrawn as the norms of
    D-dimensional Gaussians, so every row is marginally N(0, I_D).
    """
    m, d = check_positive_int(m, "m"), check_positive_int(d, "d")
    rng = np.random.default_rng(seed)
    blocks = []
    for _ in range(-(-m // d)):  # ceil(m / d) blocks of D orthogonal rows
        q_mat, r_mat = np.linalg.qr(rng.standard_normal((d, d)))
        # LAPACK fixes the signs of R's diagonal, which biases Q's directions; flipping
        # each column by that sign makes Q uniformly (Haar) distributed.
        blocks.append((q_mat * np.sign(np.diag(r_mat))).T)
    directions = np.concatenate(blocks)[:m]  # (m, D), unit rows
    norms = np.sqrt(rng.chisquare(d, size=m))  # (m,) a Gaussian vector's norm
    return directions * norms[:, None]


def favor_features(x, w) -> np.ndarray:
    """phi(x) = exp(w x - ||x||^2 / 2) / sqrt(m), row by row. x: (N, D), w: (m, D) -> (N, m)."""
    x = as_matrix(x, "x")
    w = as_matrix(w, "w", d=x.shape[1])
    return np.exp(x @ w.T - 0.5 * np.sum(x * x, axis=1, keepdims=True)) / np.sqrt(w.shape[0])


def elu_features(x) -> np.ndarray:
    """phi(x) = elu(x) + 1 = x + 1 for x > 0, exp(x) otherwise; always positive. (N, D)."""
    x = as_matrix(x, "x")
    return np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0.0)))


def _kernel_attention(phi_q, phi_k, v):
    """[phi(Q) (phi(K)^T V)] / [phi(Q) (phi(K)^T 1)]: the associativity reorder."""
    s = phi_k.T @ v  # (m, D): the key side summed once
    z = phi_k.sum(axis=0)  # (m,)
    return (phi_q @ s) / (phi_q @ z)[:, None]  # (N, D)


def favor_flops(n: int, d: int, m: int) -> int:
    """Closed form: 8 N m D + 4 N m."""
    return 8 * n * m * d + 4 * n * m


def kernel_peak_bytes(n: int, d: int, m: int) -> int:
    """Output + both feature matrices + the m x D and m summaries."""
    return FLOAT_BYTES * (n * d + 2 * n * m + m * d + m)


def performer_attention(q, k, v, *, n_features: int, seed: int = 0) -> ApproxResult:
    """FAVOR+ (bidirectional). q, k, v: (N, D); ``n_features`` is m."""
    q, k, v = check_qkv(q, k, v)
    n, d = q.shape
    w = orthogonal_gaussian(n_features, d, seed)  # (m, D)
    x_scale = d**-0.25  # q / D^(1/4) . k / D^(1/4) = q . k / sqrt(D)
    phi_q, phi_k = favor_features(q * x_scale, w), favor_features(k * x_scale, w)  # (N, m)
    out = _kernel_attention(phi_q, phi_k, v)
    m = w.shape[0]
    flops = 2 * 2 * n * d * m + 2 * 2 * m * n * d + 2 * 2 * m * n  # features; S and phi(Q) S; z and phi(Q) z
    return ApproxResult("performer", out, None, flops, kernel_peak_bytes(n, d, m), Baseline.FULL, Coverage.NONE)


def elu_flops(n: int, d: int) -> int:
    """Closed form: 4 N D^2 + 4 N D."""
    return 4 * n * d * d + 4 * n * d


def linear_attention(q, k, v, *, causal: bool = False) -> ApproxResult:
    """Katharopoulos et al.'s linear attention, phi = elu + 1. q, k, v: (N, D).

    ``causal`` runs the recurrence one token at a time, carrying only S (D x D) and z
    (D): the "transformer as RNN" view, whose state does not grow with N.
    """
    q, k, v = check_qkv(q, k, v)
    n, d = q.shape
    phi_q, phi_k = elu_features(q), elu_features(k)  # (N, D)
    if causal:
        out = np.empty((n, d))
        s_i, z_i = np.zeros((d, d)), np.zeros(d)  # the recurrent state
        for i in range(n):
            s_i += np.outer(phi_k[i], v[i])
            z_i += phi_k[i]
            out[i] = phi_q[i] @ s_i / (phi_q[i] @ z_i)
    else:
        out = _kernel_attention(phi_q, phi_k, v)
    baseline = Baseline.CAUSAL if causal else Baseline.FULL
    return ApproxResult("linear", out, None, elu_flops(n, d), kernel_peak_bytes(n, d, d), baseline, Coverage.NONE)


def kernel_attention_matrix(phi_q, phi_k) -> np.ndarray:
    """The implied (N, N) attention A_ij = phi(q_i) . phi(k_j) / sum_j' phi(q_i) . phi(k_j').

    ``A @ v`` equals the method's output (non-causal); for drawing at small N.
    """
    phi_q, phi_k = as_matrix(phi_q, "phi_q"), as_matrix(phi_k, "phi_k")
    a = phi_q @ phi_k.T  # (N, N)
    return a / a.sum(axis=1, keepdims=True)


def naive_performer(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The post's 10-line snippet: phi(x) = ReLU(W x), then the associativity reorder.

    q, k, v: (..., N, D); w: (m, D). Never forms the N x N matrix: phi(K)^T V is m x D.
    """
    phi_q = torch.relu(q @ w.T)  # (..., N, m)
    phi_k = torch.relu(k @ w.T)  # (..., N, m)
    kv = phi_k.transpose(-1, -2) @ v  # (..., m, D): keys summed once
    z = phi_k.sum(dim=-2)  # (..., m)
    num = phi_q @ kv  # (..., N, D)
    den = (phi_q * z.unsqueeze(-2)).sum(dim=-1, keepdim=True)  # (..., N, 1)
    return num / den.clamp_min(torch.finfo(q.dtype).tiny)  # ReLU features can all be 0


@dataclass(frozen=True)
class AssociativityExample:
    """(phi(Q) phi(K)^T) V versus phi(Q) (phi(K)^T V) in actual numbers."""

    phi_q: np.ndarray  # (N, m) query features
    phi_k: np.ndarray  # (N, m) key features
    v: np.ndarray  # (N, D) values
    scores: np.ndarray  # (N, N) phi(Q) phi(K)^T: the left-to-right order builds this
    kv: np.ndarray  # (m, D) phi(K)^T V: the right-to-left order builds this instead
    left: np.ndarray  # (N, D) (phi(Q) phi(K)^T) V
    right: np.ndarray  # (N, D) phi(Q) (phi(K)^T V), equal to left
    left_multiplies: int  # N^2 m + N^2 D scalar multiplications
    right_multiplies: int  # N m D + N m D scalar multiplications


def associativity_example() -> AssociativityExample:
    """N = 4 tokens, D = m = 2, small integers so every entry can be checked by hand.

    Unnormalised on purpose (the normaliser is the same reorder applied to a column of
    ones): the point is the order of the products.
    """
    phi_q = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 1.0]])  # (4, 2)
    phi_k = np.array([[1.0, 2.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])  # (4, 2)
    v = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])  # (4, 2)
    scores = phi_q @ phi_k.T  # (4, 4)
    kv = phi_k.T @ v  # (2, 2)
    (n, m), d = phi_q.shape, v.shape[1]
    return AssociativityExample(
        phi_q, phi_k, v, scores, kv, scores @ v, phi_q @ kv, n * n * m + n * n * d, m * n * d + n * m * d
    )
