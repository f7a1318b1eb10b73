"""Linformer: project keys and values along the sequence, N -> k.

Wang et al. 2020, "Linformer: Self-Attention with Linear Complexity"
(arXiv:2006.04768), Section 4, eq. (7):

    out = softmax(Q (E K)^T / sqrt(D)) (F V),   E, F in R^{k x N}

so the score matrix is N x k instead of N x N. In the paper E and F are *learned*
(shared between keys and values, across heads or across layers, as options); the
paper also mentions other projections than a learned linear map, such as pooling
(mean / max) with kernel and stride N/k. Nothing is trained here, so two untrained
projections are offered, both honest about being untrained:

* :func:`pooling_projection`: mean pooling over k equal segments (the paper's
  "mean pooling" option). At k = N it is the identity, and the method is exact.
* :func:`gaussian_projection`: i.i.d. N(0, 1/k) entries, the random projection of the
  Johnson-Lindenstrauss argument in the paper's Theorem 1 proof. Its error falls with
  k but does not reach zero, not even at k = N (the softmax is taken over k random
  mixtures of keys, not over the keys): the reason Linformer learns E and F.

Linformer scores no (query, key) pair: its attention matrix is only implied,
A = softmax(Q (E K)^T / sqrt(D)) F of shape (N, N) (:func:`linformer_attention_matrix`).

Costs: FLOPs = 8 N k D (E K, F V, the N x k scores, their product with F V);
working set = 8 bytes * (N D output + 2 k D projected keys and values + 2 N k scores).
"""

from __future__ import annotations

import numpy as np

from kernels.approx.checks import FLOAT_BYTES, as_matrix, check_positive_int, check_qkv, default_scale
from kernels.approx.result import ApproxResult, Baseline, Coverage


def pooling_projection(n: int, k: int) -> np.ndarray:
    """(k, N) mean pooling over k contiguous segments (sizes differ by at most one)."""
    n, k = check_positive_int(n, "n"), check_positive_int(k, "k")
    if k > n:
        raise ValueError(f"k must be at most N = {n}, got {k}")
    segment = np.arange(n) * k // n  # (N,) segment of each position, nondecreasing
    e = (segment[None, :] == np.arange(k)[:, None]).astype(np.float64)  # (k, N) one-hot rows
    return e / e.sum(axis=1, keepdims=True)


def gaussian_projection(n: int, k: int, seed: int = 0) -> np.ndarray:
    """(k, N) with i.i.d. N(0, 1/k) entries (the JL projection of Theorem 1's proof)."""
    n, k = check_positive_int(n, "n"), check_positive_int(k, "k")
    return np.random.default_rng(seed).standard_normal((k, n)) / np.sqrt(k)


def _check_projection(e, name: str, n: int) -> np.ndarray:
    e = np.asarray(e, dtype=np.float64)
    if e.ndim != 2 or e.shape[1] != n:
        raise ValueError(f"{name} must have shape (k, {n}), got {e.shape}")
    return e


def linformer_flops(n: int, d: int, k: int) -> int:
    """Closed form: 8 N k D."""
    return 8 * n * k * d


def linformer_peak_bytes(n: int, d: int, k: int) -> int:
    """Output + projected K and V + the N x k scores and weights."""
    return FLOAT_BYTES * (n * d + 2 * k * d + 2 * n * k)


def _probs(q, k_proj) -> np.ndarray:
    s = q @ k_proj.T * default_scale(q.shape[1])  # (N, k)
    p = np.exp(s - s.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)  # (N, k)


def linformer_attention(q, k, v, *, e, f=None) -> ApproxResult:
    """softmax(Q (E K)^T / sqrt(D)) (F V). q, k, v: (N, D); e, f: (k, N); f defaults to e.

    ``f=None`` is the paper's key-value sharing (E = F).
    """
    q, k, v = check_qkv(q, k, v)
    n, d = q.shape
    e = _check_projection(e, "e", n)
    f = e if f is None else _check_projection(f, "f", n)
    if f.shape != e.shape:
        raise ValueError(f"f must have the shape of e {e.shape}, got {f.shape}")
    rank = e.shape[0]
    k_proj, v_proj = e @ k, f @ v  # (k, D) each
    out = _probs(q, k_proj) @ v_proj  # (N, D)
    flops = 2 * rank * n * d * 2 + 2 * n * rank * d * 2  # two projections, then scores and output
    return ApproxResult("linformer", out, None, flops, linformer_peak_bytes(n, d, rank), Baseline.FULL, Coverage.NONE)


def linformer_attention_matrix(q, k, *, e) -> np.ndarray:
    """The implied (N, N) attention A = softmax(Q (E K)^T / sqrt(D)) E (key-value shared).

    Each row sums to 1 when E's rows do (pooling); out = A V. For drawing at small N.
    """
    q = as_matrix(q, "q")
    k = as_matrix(k, "k", *q.shape)
    e = _check_projection(e, "e", q.shape[0])
    return _probs(q, e @ k) @ e  # (N, N)
