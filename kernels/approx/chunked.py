"""Rabe & Staats chunked attention: exact softmax attention without the N x N matrix.

Rabe & Staats 2021, "Self-attention Does Not Need O(n^2) Memory" (arXiv:2112.05682).
Their abstract claims O(1) memory for a single query and O(log n) for self-attention
(processing one query and one key at a time, the log n being the index counters), and
a practical accelerator implementation with O(sqrt(n)) memory; at n = 16384 the memory
overhead of self-attention falls 59x for inference and 32x for differentiation. The
quadratic *time* stays.

The practical algorithm splits queries into chunks of ``query_chunk`` and keys into
chunks of ``key_chunk``. For one query chunk it visits the key chunks in turn, keeping
per query the running max ``m_i``, the running sum ``l_i`` of ``exp(s - m_i)`` and the
un-normalised output ``acc``; a new max rescales what was summed so far by
``alpha = exp(m_old - m_new)`` (the online softmax of Milakov & Gimelshein 2018,
arXiv:1805.02867, the same update FlashAttention uses per tile). The paper's JAX code
instead keeps each key chunk's summary and combines them at the end; the result is
the same, and the running form needs less memory.

Costs for N queries and keys of width D:
    FLOPs = 4 N^2 D (as dense attention: every pair is still scored)
    working set = 8 bytes * (N D output + query_chunk * key_chunk scores and weights * 2
                  + query_chunk * (D + 2) running state)
which does not grow with N for fixed chunk sizes (the output aside); the paper's
sqrt(n) comes from choosing chunks ~ sqrt(n).
"""

from __future__ import annotations

import numpy as np

from kernels.approx.checks import FLOAT_BYTES, check_positive_int, check_qkv, default_scale
from kernels.approx.result import ApproxResult, Baseline, Coverage


def chunked_attention_flops(n: int, d: int) -> int:
    """Closed form: 4 N^2 D."""
    return 4 * n * n * d


def chunked_attention_peak_bytes(n: int, d: int, query_chunk: int, key_chunk: int) -> int:
    """Output + one tile's scores and weights + one query chunk's running state."""
    qc, kc = min(query_chunk, n), min(key_chunk, n)
    return FLOAT_BYTES * (n * d + 2 * qc * kc + qc * (d + 2))


def chunked_attention(q, k, v, *, query_chunk: int = 1024, key_chunk: int = 4096, causal: bool = False) -> ApproxResult:
    """Exact attention, ``query_chunk`` x ``key_chunk`` scores at a time. q, k, v: (N, D).

    Defaults are the chunk sizes in the paper's code listing (1024 queries, 4096 keys).
    With ``causal`` a key chunk entirely after the query chunk is skipped and the
    diagonal chunk is masked; FLOPs count only the chunks visited.
    """
    q, k, v = check_qkv(q, k, v)
    qc, kc = check_positive_int(query_chunk, "query_chunk"), check_positive_int(key_chunk, "key_chunk")
    n, d = q.shape
    scale = default_scale(d)
    out = np.empty((n, d))  # (N, D)
    flops = 0
    for q_start in range(0, n, qc):
        q_i = q[q_start : q_start + qc]  # (qc, D)
        rows = q_i.shape[0]
        m_i = np.full((rows, 1), -np.inf)  # (qc, 1) running max
        l_i = np.zeros((rows, 1))  # (qc, 1) running sum of exp(s - m_i)
        acc = np.zeros((rows, d))  # (qc, D) un-normalised output
        for k_start in range(0, n, kc):
            if causal and k_start > q_start + rows - 1:
                break  # this key chunk and all later ones are in every query's future
            k_j, v_j = k[k_start : k_start + kc], v[k_start : k_start + kc]  # (kc, D)
            s = q_i @ k_j.T * scale  # (qc, kc)
            if causal:
                i = q_start + np.arange(rows)[:, None]
                j = k_start + np.arange(k_j.shape[0])[None, :]
                s = np.where(j <= i, s, -np.inf)
            m_new = np.maximum(m_i, s.max(axis=1, keepdims=True))  # (qc, 1), finite: key 0 <= every i
            alpha = np.exp(m_i - m_new)  # (qc, 1) rescales the old state; exp(-inf) = 0 at the start
            p = np.exp(s - m_new)  # (qc, kc)
            l_i = alpha * l_i + p.sum(axis=1, keepdims=True)
            acc = alpha * acc + p @ v_j
            m_i = m_new
            flops += 4 * rows * k_j.shape[0] * d
        out[q_start : q_start + rows] = acc / l_i
    peak = chunked_attention_peak_bytes(n, d, qc, kc)
    baseline = Baseline.CAUSAL if causal else Baseline.FULL
    return ApproxResult("chunked", out, None, flops, peak, baseline, Coverage.ALL)
