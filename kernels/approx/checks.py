"""Input validation shared by the approximate-attention modules."""

from __future__ import annotations

import math

import numpy as np

FLOAT_BYTES = 8  # every method computes in float64, like the oracle it is compared with


def check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def as_matrix(x, name: str, n: int | None = None, d: int | None = None) -> np.ndarray:
    """``x`` as a float64 ``(N, D)`` array, checking N and D when given."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must have shape (N, D) with N, D > 0, got {x.shape}")
    if (n is not None and x.shape[0] != n) or (d is not None and x.shape[1] != d):
        raise ValueError(f"{name} must have shape ({'N' if n is None else n}, {d}), got {x.shape}")
    return x


def check_qkv(q, k, v):
    """Single-head self-attention inputs: q, k, v all ``(N, D)``; returns float64 copies."""
    q = as_matrix(q, "q")
    n, d = q.shape
    return q, as_matrix(k, "k", n, d), as_matrix(v, "v", n, d)


def default_scale(d: int) -> float:
    # 1/sqrt(D) keeps the dot products at unit variance (Vaswani et al. 2017, 3.2.1).
    return 1.0 / math.sqrt(d)
