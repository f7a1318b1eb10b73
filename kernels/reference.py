"""Readable NumPy reference implementations of attention.

This module is the oracle every other kernel in the series is tested against,
so it favours clarity over speed: plain loops where the papers use loops, one
idea per function, and shape comments on every array.

Conventions
-----------
* Everything is computed in float64: inputs are converted on entry, outputs are
  float64 NumPy arrays. An oracle should be more precise than what it checks.
* Attention tensors are laid out ``(B, H, N, D)``: batch, heads, sequence, head dim.
* Masks are boolean "may attend" masks: ``True`` keeps a score, ``False`` hides it.
* A query row that can see no key at all gets probabilities of 0 and an output
  row of zeros (never NaN). This matches PyTorch's
  ``scaled_dot_product_attention`` and keeps padded rows harmless.

Papers
------
* Vaswani et al. 2017, "Attention Is All You Need" (arXiv:1706.03762):
  scaled dot-product attention and multi-head attention.
* Shazeer 2019, "Fast Transformer Decoding: One Write-Head is All You Need"
  (arXiv:1911.02150): multi-query attention (MQA).
* Ainslie et al. 2023, "GQA: Training Generalized Multi-Query Transformer
  Models from Multi-Head Checkpoints" (arXiv:2305.13245): grouped-query attention.
* Beltagy et al. 2020, "Longformer" (arXiv:2004.05150) and Jiang et al. 2023,
  "Mistral 7B" (arXiv:2310.06825): sliding-window attention.
* Milakov & Gimelshein 2018, "Online normalizer calculation for softmax"
  (arXiv:1805.02867): the online softmax.
* Dao et al. 2022, "FlashAttention" (arXiv:2205.14135) and Dao 2023,
  "FlashAttention-2" (arXiv:2307.08691): tiled attention.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

__all__ = [
    "attention_mask",
    "softmax",
    "attention",
    "split_heads",
    "merge_heads",
    "repeat_kv",
    "multi_head_attention",
    "OnlineSoftmaxStep",
    "OnlineSoftmaxResult",
    "online_softmax",
    "flash_attention_tiled",
]

LOOP_ORDERS = ("fa1", "fa2")


# --------------------------------------------------------------------------
# Small numerical helpers
# --------------------------------------------------------------------------


def _as_float64(x, name: str) -> np.ndarray:
    """Convert an input to a float64 array (the oracle never computes in less)."""
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: cannot convert to a float64 array ({err})") from None


def _exp_minus(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """exp(x - m), where a running max m = -inf means "nothing visible yet".

    m = -inf only happens when every x it was taken over is -inf (masked), and
    then the answer we want is 0, not exp(-inf - -inf) = exp(nan). Replacing
    m by 0 there gives exp(-inf - 0) = 0 for free.
    """
    m_safe = np.where(np.isneginf(m), 0.0, m)
    return np.exp(x - m_safe)


def _safe_divide(acc: np.ndarray, l: np.ndarray) -> np.ndarray:
    """acc / l per row, with rows whose sum l is 0 (fully masked) set to 0."""
    l_safe = np.where(l == 0.0, 1.0, l)
    return np.where(l[..., None] == 0.0, 0.0, acc / l_safe[..., None])


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------
# Masks and softmax
# --------------------------------------------------------------------------


def attention_mask(n_q, n_k, *, causal=False, window=None, key_padding_mask=None) -> np.ndarray:
    """Boolean "may attend" mask of shape ``(B or 1, 1, n_q, n_k)``.

    Query ``i`` may see key ``j`` when every requested rule allows it:

    * ``causal``: ``j <= i`` (Vaswani et al. 2017, decoder self-attention).
      Rows and columns are aligned at the top-left, as in PyTorch's
      ``is_causal``, so this also works when ``n_q != n_k``.
    * ``window=w`` (sliding window, Longformer / Mistral): ``|i - j| < w``,
      or ``i - w < j <= i`` together with ``causal`` (the w most recent keys,
      including the query's own position).
    * ``key_padding_mask`` of shape ``(B, n_k)``: ``True`` marks a real token,
      ``False`` a padding token that nobody may attend to.

    The singleton head axis lets the mask broadcast against ``(B, H, n_q, n_k)``.
    """
    n_q = _check_positive_int(n_q, "n_q")
    n_k = _check_positive_int(n_k, "n_k")
    i = np.arange(n_q)[:, None]  # (n_q, 1) query positions
    j = np.arange(n_k)[None, :]  # (1, n_k) key positions

    allowed = np.ones((n_q, n_k), dtype=bool)  # (n_q, n_k)
    if causal:
        allowed &= j <= i
    if window is not None:
        w = _check_positive_int(window, "window")
        # With causal the j > i half is already gone, so i - w < j suffices.
        allowed &= (i - j < w) if causal else (np.abs(i - j) < w)

    mask = allowed[None, None]  # (1, 1, n_q, n_k)
    if key_padding_mask is not None:
        kpm = np.asarray(key_padding_mask)
        if kpm.dtype != bool or kpm.ndim != 2 or kpm.shape[1] != n_k:
            raise ValueError(
                f"key_padding_mask must be a bool array of shape (B, {n_k}), "
                f"got dtype {kpm.dtype} and shape {kpm.shape}"
            )
        mask = mask & kpm[:, None, None, :]  # (B, 1, n_q, n_k)
    return mask


def softmax(scores, mask=None, axis=-1) -> np.ndarray:
    """Numerically stable softmax along ``axis``.

    Subtracting the row max before ``exp`` keeps every exponent <= 0, so
    nothing overflows. Entries where ``mask`` is False (or whose score is
    -inf) get probability exactly 0. A row with nothing visible is all zeros
    rather than 0/0 = NaN.
    """
    s = _as_float64(scores, "scores")
    if mask is not None:
        s = np.where(mask, s, -np.inf)  # masked scores can never win the max
    m = np.max(s, axis=axis, keepdims=True)  # row max, -inf for a fully masked row
    p = _exp_minus(s, m)  # every exponent <= 0
    l = np.sum(p, axis=axis, keepdims=True)  # row sum, 0 for a fully masked row
    return np.where(l == 0.0, 0.0, p / np.where(l == 0.0, 1.0, l))


# --------------------------------------------------------------------------
# Scaled dot-product attention (with GQA / MQA)
# --------------------------------------------------------------------------


def _check_qkv(q, k, v):
    """Validate attention shapes; return float64 q, k, v and n_rep = H // H_kv."""
    q = _as_float64(q, "q")
    k = _as_float64(k, "k")
    v = _as_float64(v, "v")
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.ndim != 4:
            raise ValueError(f"{name} must have shape (B, H, N, D), got {t.shape}")
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape, got k {k.shape} and v {v.shape}")
    B, H, _, D = q.shape
    B_kv, H_kv, _, D_kv = k.shape
    if B_kv != B or D_kv != D:
        raise ValueError(f"k must have shape ({B}, H_kv, N_k, {D}) to match q {q.shape}, got {k.shape}")
    if H_kv == 0 or H % H_kv != 0:
        raise ValueError(f"q heads ({H}) must be a multiple of k/v heads ({H_kv})")
    return q, k, v, H // H_kv


def _default_scale(scale, d: int) -> float:
    # 1/sqrt(D) keeps the dot products at unit variance (Vaswani et al. 2017, 3.2.1).
    return 1.0 / math.sqrt(d) if scale is None else float(scale)


def repeat_kv(k, n_rep):
    """Expand ``(B, H_kv, N, D)`` to ``(B, H_kv * n_rep, N, D)`` for GQA / MQA.

    Each KV head is repeated ``n_rep`` times in place (kv0, kv0, kv1, kv1, ...),
    so query head ``h`` lines up with KV head ``h // n_rep`` (Ainslie et al. 2023).
    """
    k = _as_float64(k, "k")
    n_rep = _check_positive_int(n_rep, "n_rep")
    if k.ndim != 4:
        raise ValueError(f"k must have shape (B, H_kv, N, D), got {k.shape}")
    return np.repeat(k, n_rep, axis=1)  # (B, H_kv * n_rep, N, D)


def attention(q, k, v, *, causal=False, scale=None, window=None, key_padding_mask=None, return_probs=False):
    """Scaled dot-product attention, ``softmax(q k^T * scale + mask) v``.

    Vaswani et al. 2017, eq. (1). ``k`` and ``v`` may have fewer heads than
    ``q`` (GQA, Ainslie et al. 2023; MQA when there is one, Shazeer 2019):
    query head ``h`` uses KV head ``h // (H // H_kv)``.

    Args:
        q: ``(B, H, N_q, D)``.
        k, v: ``(B, H_kv, N_k, D)`` with ``H % H_kv == 0``.
        causal, window, key_padding_mask: see :func:`attention_mask`.
        scale: multiplies the scores; defaults to ``1 / sqrt(D)``.
        return_probs: also return the attention probabilities.

    Returns:
        ``out`` of shape ``(B, H, N_q, D)``, or ``(out, probs)`` with
        ``probs`` of shape ``(B, H, N_q, N_k)``.
    """
    q, k, v, n_rep = _check_qkv(q, k, v)
    k = repeat_kv(k, n_rep)  # (B, H, N_k, D)
    v = repeat_kv(v, n_rep)  # (B, H, N_k, D)
    n_q, n_k, d = q.shape[2], k.shape[2], q.shape[3]

    scores = (q @ k.swapaxes(-1, -2)) * _default_scale(scale, d)  # (B, H, N_q, N_k)
    mask = attention_mask(n_q, n_k, causal=causal, window=window, key_padding_mask=key_padding_mask)
    if key_padding_mask is not None and mask.shape[0] != q.shape[0]:
        raise ValueError(f"key_padding_mask has batch {mask.shape[0]} but q has batch {q.shape[0]}")
    # Mask BEFORE the softmax, so hidden keys take no share of the probability.
    probs = softmax(scores, mask)  # (B, H, N_q, N_k)
    out = probs @ v  # (B, H, N_q, D)
    return (out, probs) if return_probs else out


# --------------------------------------------------------------------------
# Multi-head attention
# --------------------------------------------------------------------------


def split_heads(x, num_heads):
    """``(B, N, num_heads * D)`` -> ``(B, num_heads, N, D)``."""
    x = _as_float64(x, "x")
    num_heads = _check_positive_int(num_heads, "num_heads")
    if x.ndim != 3 or x.shape[-1] % num_heads != 0:
        raise ValueError(f"x must have shape (B, N, num_heads * D) with num_heads={num_heads}, got {x.shape}")
    B, N, width = x.shape
    return x.reshape(B, N, num_heads, width // num_heads).transpose(0, 2, 1, 3)  # (B, H, N, D)


def merge_heads(x):
    """``(B, H, N, D)`` -> ``(B, N, H * D)``, the inverse of :func:`split_heads`."""
    x = _as_float64(x, "x")
    if x.ndim != 4:
        raise ValueError(f"x must have shape (B, H, N, D), got {x.shape}")
    B, H, N, D = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, N, H * D)  # (B, N, H * D)


def _check_mha_shapes(x, w_q, w_k, w_v, w_o, num_heads, num_kv_heads):
    """Validate multi-head attention weights; return the head dim D."""
    if x.ndim != 3:
        raise ValueError(f"x must have shape (B, N, d_model), got {x.shape}")
    d_model = x.shape[-1]
    if num_heads % num_kv_heads != 0:
        raise ValueError(f"num_heads ({num_heads}) must be divisible by num_kv_heads ({num_kv_heads})")
    if w_q.ndim != 2 or w_q.shape[0] != d_model or w_q.shape[1] % num_heads != 0:
        raise ValueError(
            f"w_q must have shape ({d_model}, num_heads * D) with num_heads={num_heads}, got {w_q.shape}"
        )
    d = w_q.shape[1] // num_heads
    for name, w, expected in (
        ("w_k", w_k, (d_model, num_kv_heads * d)),
        ("w_v", w_v, (d_model, num_kv_heads * d)),
        ("w_o", w_o, (num_heads * d, d_model)),
    ):
        if w.shape != expected:
            raise ValueError(f"{name} must have shape {expected}, got {w.shape}")
    return d


def multi_head_attention(x, w_q, w_k, w_v, w_o, *, num_heads, num_kv_heads=None, causal=False, key_padding_mask=None):
    """Multi-head self-attention without biases (Vaswani et al. 2017, 3.2.2).

    ``num_kv_heads`` picks the flavour: ``None`` (= ``num_heads``) is plain
    MHA, ``1`` is multi-query attention (Shazeer 2019), anything in between is
    grouped-query attention (Ainslie et al. 2023). Fewer KV heads shrink the
    K/V projections and the KV cache; the query side is unchanged.

    Args:
        x: ``(B, N, d_model)``.
        w_q: ``(d_model, num_heads * D)``.
        w_k, w_v: ``(d_model, num_kv_heads * D)``.
        w_o: ``(num_heads * D, d_model)``.

    Returns:
        ``(B, N, d_model)``.
    """
    x = _as_float64(x, "x")
    w_q, w_k = _as_float64(w_q, "w_q"), _as_float64(w_k, "w_k")
    w_v, w_o = _as_float64(w_v, "w_v"), _as_float64(w_o, "w_o")
    num_heads = _check_positive_int(num_heads, "num_heads")
    num_kv_heads = num_heads if num_kv_heads is None else _check_positive_int(num_kv_heads, "num_kv_heads")
    _check_mha_shapes(x, w_q, w_k, w_v, w_o, num_heads, num_kv_heads)

    q = split_heads(x @ w_q, num_heads)  # (B, H, N, D)
    k = split_heads(x @ w_k, num_kv_heads)  # (B, H_kv, N, D)
    v = split_heads(x @ w_v, num_kv_heads)  # (B, H_kv, N, D)
    out = attention(q, k, v, causal=causal, key_padding_mask=key_padding_mask)  # (B, H, N, D)
    return merge_heads(out) @ w_o  # (B, N, d_model)


# --------------------------------------------------------------------------
# Online softmax
# --------------------------------------------------------------------------


class OnlineSoftmaxStep(NamedTuple):
    """State after one block: scores[start:stop] were just folded in."""

    start: int
    stop: int
    m: float  # running max over scores[:stop]
    l: float  # running sum of exp(scores[:stop] - m)


@dataclass(frozen=True)
class OnlineSoftmaxResult:
    """Output of :func:`online_softmax`: the probabilities and the per-block trace."""

    probs: np.ndarray
    history: list[OnlineSoftmaxStep] = field(default_factory=list)

    @property
    def m(self) -> float:
        """Final running max (-inf if there were no visible scores)."""
        return self.history[-1].m if self.history else -math.inf

    @property
    def l(self) -> float:
        """Final normaliser, sum(exp(scores - m))."""
        return self.history[-1].l if self.history else 0.0


def online_softmax(scores, block=1) -> OnlineSoftmaxResult:
    """Softmax of a 1-D vector with the online normaliser of Milakov & Gimelshein 2018.

    The scores are read once, ``block`` at a time, keeping two numbers:
    the running max ``m`` and the running sum ``l = sum(exp(s - m))``.
    When a block raises the max from ``m`` to ``m_new``, the old sum was
    measured against the wrong max, so it is rescaled by
    ``alpha = exp(m - m_new)`` (arXiv:1805.02867, Algorithm 3). A second
    pass then forms ``exp(s - m) / l``. ``block=1`` is the paper's
    element-by-element loop; FlashAttention applies the same trick per tile.

    ``-inf`` scores (masked) are allowed: they add nothing to ``l``. If all
    scores are ``-inf`` then ``m = -inf``, ``l = 0`` and the probabilities are 0.
    """
    s = _as_float64(scores, "scores")
    if s.ndim != 1:
        raise ValueError(f"scores must be a 1-D vector, got shape {s.shape}")
    block = _check_positive_int(block, "block")

    m = -math.inf  # running max
    l = 0.0  # running sum of exp(s - m)
    history = []
    for start in range(0, s.shape[0], block):
        stop = min(start + block, s.shape[0])
        s_blk = s[start:stop]
        m_new = max(m, float(np.max(s_blk)))
        alpha = float(_exp_minus(m, m_new))  # rescales the old sum to the new max
        l = alpha * l + float(np.sum(_exp_minus(s_blk, m_new)))
        m = m_new
        history.append(OnlineSoftmaxStep(start, stop, m, l))

    p = _exp_minus(s, m)  # (n,)
    probs = p / l if l > 0.0 else np.zeros_like(s)
    return OnlineSoftmaxResult(probs=probs, history=history)


# --------------------------------------------------------------------------
# Tiled FlashAttention
# --------------------------------------------------------------------------


def _tile_is_above_diagonal(q_start, q_stop, k_start) -> bool:
    """True when every key in the tile is in the future of every query in it.

    The earliest key (k_start) is after the last query (q_stop - 1), so the
    causal mask hides the whole tile and it need not be visited at all.
    """
    return k_start > q_stop - 1


def _tile_scores(q_i, k_j, q_start, k_start, scale, causal):
    """Scaled scores of one tile, with the causal mask applied inside it."""
    s_ij = (q_i @ k_j.T) * scale  # (rows, cols)
    if causal:
        i = q_start + np.arange(q_i.shape[0])[:, None]  # (rows, 1) global query index
        j = k_start + np.arange(k_j.shape[0])[None, :]  # (1, cols) global key index
        s_ij = np.where(j <= i, s_ij, -np.inf)  # (rows, cols)
    return s_ij


def _record(trace, q_block, kv_block, m_i, l_i, acc):
    """Append a copy of one tile's state to trace (a list, or None when not recording)."""
    if trace is not None:
        state = {"m": m_i.copy(), "l": l_i.copy(), "acc": acc.copy()}
        trace.append({"q_block": q_block, "kv_block": kv_block, **state})


def _fa2_one_head(q, k, v, block_m, block_n, scale, causal, trace):
    """FlashAttention-2 for one (batch, head): Q blocks outer, K/V blocks inner.

    Dao 2023, Algorithm 1. Each Q block keeps m_i, l_i and an un-normalised
    accumulator acc in fast memory for the whole inner loop; acc is divided by
    l_i only once, after the last K/V block.
    """
    n_q, d = q.shape  # q: (N_q, D)
    n_k = k.shape[0]  # k, v: (N_k, D)
    out = np.zeros((n_q, d))  # (N_q, D)
    for q_start in range(0, n_q, block_m):
        q_stop = min(q_start + block_m, n_q)
        q_i = q[q_start:q_stop]  # (BLOCK_M, D), ragged on the last tile
        rows = q_stop - q_start
        m_i = np.full(rows, -np.inf)  # (BLOCK_M,) running max
        l_i = np.zeros(rows)  # (BLOCK_M,) running sum of exp(s - m_i)
        acc = np.zeros((rows, d))  # (BLOCK_M, D) un-normalised output

        for k_start in range(0, n_k, block_n):
            if causal and _tile_is_above_diagonal(q_start, q_stop, k_start):
                break  # all later K/V blocks are even further in the future
            k_stop = min(k_start + block_n, n_k)
            k_j, v_j = k[k_start:k_stop], v[k_start:k_stop]  # (BLOCK_N, D)

            s_ij = _tile_scores(q_i, k_j, q_start, k_start, scale, causal)  # (BLOCK_M, BLOCK_N)
            m_new = np.maximum(m_i, s_ij.max(axis=1))  # (BLOCK_M,)
            alpha = _exp_minus(m_i, m_new)  # (BLOCK_M,) rescales what was summed so far
            p_ij = _exp_minus(s_ij, m_new[:, None])  # (BLOCK_M, BLOCK_N)
            l_i = alpha * l_i + p_ij.sum(axis=1)  # (BLOCK_M,)
            acc = alpha[:, None] * acc + p_ij @ v_j  # (BLOCK_M, D)
            m_i = m_new
            _record(trace, q_start // block_m, k_start // block_n, m_i, l_i, acc)

        out[q_start:q_stop] = _safe_divide(acc, l_i)  # normalise once, at the end
    return out


def _fa1_one_head(q, k, v, block_m, block_n, scale, causal, trace):
    """FlashAttention (v1) for one (batch, head): K/V blocks outer, Q blocks inner.

    Dao et al. 2022, Algorithm 1. O, l and m live in "HBM" arrays of full
    length; every inner step reads a Q block's O_i, l_i, m_i, merges in the
    current K/V tile, and writes back an O_i that is already normalised, so
    the output is rescaled at every step.
    """
    n_q, d = q.shape  # q: (N_q, D)
    n_k = k.shape[0]  # k, v: (N_k, D)
    O = np.zeros((n_q, d))  # (N_q, D) in "HBM"
    l = np.zeros(n_q)  # (N_q,) in "HBM"
    m = np.full(n_q, -np.inf)  # (N_q,) in "HBM"
    for k_start in range(0, n_k, block_n):
        k_stop = min(k_start + block_n, n_k)
        k_j, v_j = k[k_start:k_stop], v[k_start:k_stop]  # (BLOCK_N, D), loaded once per outer step

        for q_start in range(0, n_q, block_m):
            q_stop = min(q_start + block_m, n_q)
            if causal and _tile_is_above_diagonal(q_start, q_stop, k_start):
                continue  # earlier Q blocks are masked out, later ones may not be
            q_i = q[q_start:q_stop]  # (BLOCK_M, D)
            O_i, l_i, m_i = O[q_start:q_stop], l[q_start:q_stop], m[q_start:q_stop]  # read from "HBM"

            s_ij = _tile_scores(q_i, k_j, q_start, k_start, scale, causal)  # (BLOCK_M, BLOCK_N)
            m_tilde = s_ij.max(axis=1)  # (BLOCK_M,) this tile's max
            p_tilde = _exp_minus(s_ij, m_tilde[:, None])  # (BLOCK_M, BLOCK_N)
            l_tilde = p_tilde.sum(axis=1)  # (BLOCK_M,)

            m_new = np.maximum(m_i, m_tilde)  # (BLOCK_M,)
            alpha = _exp_minus(m_i, m_new)  # (BLOCK_M,) rescales the old state
            beta = _exp_minus(m_tilde, m_new)  # (BLOCK_M,) rescales this tile
            l_new = alpha * l_i + beta * l_tilde  # (BLOCK_M,)
            acc = (l_i * alpha)[:, None] * O_i + beta[:, None] * (p_tilde @ v_j)  # (BLOCK_M, D)

            O[q_start:q_stop] = _safe_divide(acc, l_new)  # write back, normalised
            l[q_start:q_stop] = l_new
            m[q_start:q_stop] = m_new
            _record(trace, q_start // block_m, k_start // block_n, m_new, l_new, acc)
    return O


def flash_attention_tiled(q, k, v, *, block_m, block_n, loop_order="fa2", causal=False, scale=None, record=False):
    """Tiled FlashAttention in NumPy; the same result as :func:`attention`.

    Scores are computed one ``(BLOCK_M, BLOCK_N)`` tile at a time and folded
    into per-row running statistics with the online softmax, so the full
    ``(N_q, N_k)`` score matrix never exists.

    * ``loop_order="fa1"``: K/V blocks outer, Q blocks inner
      (Dao et al. 2022, Algorithm 1).
    * ``loop_order="fa2"``: Q blocks outer, K/V blocks inner, accumulator
      kept un-normalised until the end (Dao 2023, Algorithm 1).

    With ``causal=True`` the tiles that lie entirely above the diagonal are
    skipped, never visited. Sequence lengths need not be multiples of the
    block sizes: the last tile is simply smaller. GQA / MQA shapes work as in
    :func:`attention`.

    Args:
        q: ``(B, H, N_q, D)``; k, v: ``(B, H_kv, N_k, D)``.
        block_m: BLOCK_M, query rows per tile.
        block_n: BLOCK_N, keys per tile.
        record: also return the visited tiles, in visit order.

    Returns:
        ``out`` of shape ``(B, H, N_q, D)``; with ``record=True``,
        ``(out, steps)`` where each step is a dict with ``q_block``,
        ``kv_block``, ``batch``, ``head`` and the state after the step:
        ``m`` and ``l`` of shape ``(rows,)`` and the un-normalised ``acc`` of
        shape ``(rows, D)``, so ``acc / l`` is the output so far.
    """
    block_m = _check_positive_int(block_m, "block_m")
    block_n = _check_positive_int(block_n, "block_n")
    if loop_order not in LOOP_ORDERS:
        raise ValueError(f"loop_order must be one of {LOOP_ORDERS}, got {loop_order!r}")
    q, k, v, n_rep = _check_qkv(q, k, v)
    B, H, n_q, d = q.shape
    scale = _default_scale(scale, d)
    one_head = _fa1_one_head if loop_order == "fa1" else _fa2_one_head

    out = np.zeros((B, H, n_q, d))  # (B, H, N_q, D)
    steps = []
    for b in range(B):
        for h in range(H):
            h_kv = h // n_rep  # GQA: this query head's shared K/V head
            trace = [] if record else None
            out[b, h] = one_head(q[b, h], k[b, h_kv], v[b, h_kv], block_m, block_n, scale, causal, trace)
            if record:
                steps += [{"batch": b, "head": h, **step} for step in trace]
    return (out, steps) if record else out
