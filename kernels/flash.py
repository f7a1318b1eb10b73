"""FlashAttention-2 forward pass in Triton, with a step-by-step trace.

Computes ``softmax(Q K^T * scale) V`` without ever materialising the
``(N_q, N_k)`` score matrix:

* Dao et al. 2022, "FlashAttention" (arXiv:2205.14135): tile Q, K and V so
  that every tile lives in on-chip memory, and stream K/V past each Q tile.
* Dao 2023, "FlashAttention-2" (arXiv:2307.08691): parallelise over the
  sequence (one program per ``BLOCK_M`` query rows, the grid's first axis),
  keep the output accumulator ``acc`` un-normalised and divide by ``l_i`` once
  at the end, and, under a causal mask, skip the K/V tiles above the diagonal
  and mask only the tiles that straddle it.
* Milakov & Gimelshein 2018, "Online normalizer calculation for softmax"
  (arXiv:1805.02867): the running max ``m_i`` and running sum
  ``l_i = sum_j exp(s_ij - m_i)``. When a tile raises the max, everything
  accumulated so far is rescaled by ``alpha = exp(m_old - m_new)``.

Units. Like FlashAttention-2, the kernel folds ``log2(e)`` into the score
scale and uses ``exp2``: ``exp(x) = exp2(x * log2(e))`` costs one multiply
per score instead of two. Inside the kernel ``m_i`` is therefore in base-2
units; ``l_i``, ``alpha``, ``p`` and ``acc`` are unchanged by the switch. The
trace converts ``m_i`` back to natural units (multiplies by ln 2) as it
records it, so a recorded step reads like the paper:
``l_i = sum_j exp(s_ij - m_i)`` with ``s_ij = q_i . k_j * scale``.

Precision. Inputs are fp16 or fp32 (bf16 too on a GPU); scores, ``m_i``,
``l_i`` and ``acc`` are always fp32. For 16-bit inputs ``p`` is rounded to
the input dtype before ``P V`` so both matmuls run on tensor cores. fp32
inputs use IEEE fp32 matmuls: TF32 would drop 13 mantissa bits and make the
kernel less accurate than a plain PyTorch implementation.

Trace. ``attention(..., trace=True)`` compiles the kernel with ``TRACE=True``,
which stores the state ``(kv_block, m_i, l_i, acc)`` after every K/V step of
every program into preallocated buffers indexed ``(program, step)``. With
``TRACE=False`` that branch is compiled out.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch

from kernels import triton_runtime  # before `import triton`: it picks the interpreter or the GPU compiler

# isort: split
import triton
import triton.language as tl

__all__ = ["FlashTrace", "attention", "hbm_bytes"]

LOG2E: tl.constexpr = tl.constexpr(1.4426950408889634)  # exp(x) == exp2(x * LOG2E)
LN2: tl.constexpr = tl.constexpr(0.6931471805599453)  # base-2 max -> natural-log max


@triton.jit
def _attn_fwd_inner(acc, l_i, m_i, q,  #
                    K, V, stride_kn, stride_kd, stride_vn, stride_vd,  #
                    start_n, qk_scale, offs_m, N_CTX_K,  #
                    BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,  #
                    CAUSAL: tl.constexpr, MASK: tl.constexpr):
    """One online-softmax step: fold the K/V tile of keys [start_n, start_n + BLOCK_N) into (acc, l_i, m_i).

    MASK=False is the fast path for tiles with nothing to hide: every key
    exists and, if CAUSAL, no key lies after any query row of the block.
    """
    offs_n = start_n + tl.arange(0, BLOCK_N)  # (BLOCK_N,) key positions
    offs_d = tl.arange(0, HEAD_DIM)  # (HEAD_DIM,)
    # Keys past N_CTX_K load as 0, not garbage: 0 * NaN in P V would poison acc.
    key_exists = offs_n[:, None] < N_CTX_K  # (BLOCK_N, 1)
    k = tl.load(K + offs_n[:, None] * stride_kn + offs_d[None, :] * stride_kd, mask=key_exists, other=0.0)
    v = tl.load(V + offs_n[:, None] * stride_vn + offs_d[None, :] * stride_vd, mask=key_exists, other=0.0)

    # Scores in base-2 units: qk_scale = scale * log2(e).
    s = tl.dot(q, tl.trans(k), input_precision="ieee") * qk_scale  # (BLOCK_M, BLOCK_N)
    if MASK:
        visible = offs_n[None, :] < N_CTX_K  # (1, BLOCK_N)
        if CAUSAL:
            visible = visible & (offs_m[:, None] >= offs_n[None, :])  # (BLOCK_M, BLOCK_N)
        s = tl.where(visible, s, float("-inf"))

    # Every row sees key 0 in its first tile, so m_i is finite after step one
    # and m_i - m_ij below is never (-inf) - (-inf).
    m_ij = tl.maximum(m_i, tl.max(s, 1))  # (BLOCK_M,) new running max
    alpha = tl.math.exp2(m_i - m_ij)  # (BLOCK_M,) rescales what was summed against the old max
    p = tl.math.exp2(s - m_ij[:, None])  # (BLOCK_M, BLOCK_N) un-normalised probabilities
    l_i = l_i * alpha + tl.sum(p, 1)  # (BLOCK_M,)
    # acc = alpha * acc + P V; p takes V's dtype so 16-bit inputs run on tensor cores.
    acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None], input_precision="ieee")  # (BLOCK_M, HEAD_DIM)
    return acc, l_i, m_ij


@triton.jit
def _kv_tile_range(start_m, N_CTX_K, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr):
    """(n_full, n_tiles): K/V tiles [0, n_full) need no mask, [n_full, n_tiles) do, later ones are skipped."""
    if CAUSAL:
        # Keys after the block's last query are hidden from every row: never visit them.
        hi = tl.minimum((start_m + 1) * BLOCK_M, N_CTX_K)
        # A tile is fully visible when its last key is at or before the block's first query.
        full = tl.minimum(start_m * BLOCK_M + 1, N_CTX_K)
    else:
        hi = N_CTX_K
        full = N_CTX_K
    return full // BLOCK_N, tl.cdiv(hi, BLOCK_N)


@triton.jit
def _trace_step(TraceKV, TraceM, TraceL, TraceAcc, kv_block, acc, l_i, m_i, N_CTX_K,  #
                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr):
    """Record the state after folding in K/V tile `kv_block` at trace[program, kv_block]."""
    program = tl.program_id(1) * tl.num_programs(0) + tl.program_id(0)  # grid order: axis 0 fastest
    n_steps = tl.cdiv(N_CTX_K, BLOCK_N)  # the most steps any program takes
    step = program.to(tl.int64) * n_steps + kv_block  # row of the (P, S) trace grid
    offs_r = tl.arange(0, BLOCK_M)  # (BLOCK_M,) row within the Q block
    offs_d = tl.arange(0, HEAD_DIM)  # (HEAD_DIM,)
    tl.store(TraceKV + step, kv_block)
    tl.store(TraceM + step * BLOCK_M + offs_r, m_i * LN2)  # natural-log units, as in the paper
    tl.store(TraceL + step * BLOCK_M + offs_r, l_i)
    tl.store(TraceAcc + step * BLOCK_M * HEAD_DIM + offs_r[:, None] * HEAD_DIM + offs_d[None, :], acc)


@triton.jit
def _attn_fwd(Q, K, V, Out, sm_scale,  #
              stride_qb, stride_qh, stride_qm, stride_qd,  #
              stride_kb, stride_kh, stride_kn, stride_kd,  #
              stride_vb, stride_vh, stride_vn, stride_vd,  #
              stride_ob, stride_oh, stride_om, stride_od,  #
              H, GROUP, N_CTX_Q, N_CTX_K,  #
              TraceKV, TraceM, TraceL, TraceAcc,  #
              HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,  #
              CAUSAL: tl.constexpr, TRACE: tl.constexpr):
    """One program: BLOCK_M query rows of one (batch, head), streamed past all visible K/V tiles."""
    start_m = tl.program_id(0)  # which Q block: FA2 parallelises over the sequence
    off_bh = tl.program_id(1)  # which (batch, head)
    off_b = (off_bh // H).to(tl.int64)  # int64: batch * stride overflows int32 on big inputs
    off_h = (off_bh % H).to(tl.int64)
    off_h_kv = off_h // GROUP  # GQA: GROUP consecutive query heads share one K/V head
    Q += off_b * stride_qb + off_h * stride_qh
    K += off_b * stride_kb + off_h_kv * stride_kh
    V += off_b * stride_vb + off_h_kv * stride_vh
    Out += off_b * stride_ob + off_h * stride_oh

    offs_m = start_m * BLOCK_M + tl.arange(0, BLOCK_M)  # (BLOCK_M,) query positions
    offs_d = tl.arange(0, HEAD_DIM)  # (HEAD_DIM,)
    # Rows past N_CTX_Q load as 0: they compute a harmless uniform softmax and are never stored.
    row_exists = offs_m[:, None] < N_CTX_Q  # (BLOCK_M, 1)
    q = tl.load(Q + offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qd, mask=row_exists, other=0.0)

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)  # running max (base 2)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)  # running sum of exp(s - m_i)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)  # un-normalised output
    qk_scale = sm_scale * LOG2E

    n_full, n_tiles = _kv_tile_range(start_m, N_CTX_K, BLOCK_M, BLOCK_N, CAUSAL)
    # Two loops over one inner step, so the mask costs nothing off the diagonal.
    for kv_block in range(0, n_full):
        acc, l_i, m_i = _attn_fwd_inner(acc, l_i, m_i, q, K, V, stride_kn, stride_kd, stride_vn, stride_vd,  #
                                        kv_block * BLOCK_N, qk_scale, offs_m, N_CTX_K,  #
                                        BLOCK_N, HEAD_DIM, CAUSAL, MASK=False)
        if TRACE:
            _trace_step(TraceKV, TraceM, TraceL, TraceAcc, kv_block, acc, l_i, m_i, N_CTX_K, BLOCK_M, BLOCK_N, HEAD_DIM)
    for kv_block in range(n_full, n_tiles):
        acc, l_i, m_i = _attn_fwd_inner(acc, l_i, m_i, q, K, V, stride_kn, stride_kd, stride_vn, stride_vd,  #
                                        kv_block * BLOCK_N, qk_scale, offs_m, N_CTX_K,  #
                                        BLOCK_N, HEAD_DIM, CAUSAL, MASK=True)
        if TRACE:
            _trace_step(TraceKV, TraceM, TraceL, TraceAcc, kv_block, acc, l_i, m_i, N_CTX_K, BLOCK_M, BLOCK_N, HEAD_DIM)

    out = acc / l_i[:, None]  # normalise once, at the end (FA2)
    tl.store(Out + offs_m[:, None] * stride_om + offs_d[None, :] * stride_od, out.to(Out.dtype.element_ty),
             mask=row_exists)


@dataclass(frozen=True, eq=False)
class FlashTrace:
    """The state of every program after every K/V step of one ``attention(..., trace=True)`` call.

    Programs are listed in grid order (Q block fastest, then head, then
    batch); step ``s`` of a program folds in K/V tile ``kv_block[p, s]``.
    Steps a program never took (tiles above the causal diagonal) have
    ``kv_block == -1`` and NaN state. Rows past ``n_q`` in a ragged last Q
    block are kept: they are what the kernel held, though never stored.
    """

    block_m: int
    block_n: int
    n_q: int
    n_k: int
    head_dim: int
    causal: bool
    scale: float
    programs: np.ndarray  # (P, 3) int: (q_block, batch, head) of each program
    kv_block: np.ndarray  # (P, S) int: K/V tile folded in at each step, -1 if not executed
    m: np.ndarray  # (P, S, BLOCK_M) fp32 running max, natural-log units
    l: np.ndarray  # (P, S, BLOCK_M) fp32 running sum of exp(s - m)
    acc: np.ndarray  # (P, S, BLOCK_M, HEAD_DIM) fp32 un-normalised output

    def final_output(self) -> np.ndarray:
        """acc / l after each program's last executed step, as (B, H, N_q, D) fp32: the kernel's output."""
        n_programs, n_steps = self.kv_block.shape
        last = np.where(self.kv_block >= 0, np.arange(n_steps), -1).max(axis=1)  # (P,)
        every = np.arange(n_programs)
        rows = self.acc[every, last] / self.l[every, last][..., None]  # (P, BLOCK_M, HEAD_DIM)
        q_block, batch, head = self.programs.T
        out = np.empty((batch.max() + 1, head.max() + 1, q_block.max() + 1, self.block_m, self.head_dim), np.float32)
        out[batch, head, q_block] = rows
        return out.reshape(*out.shape[:2], -1, self.head_dim)[:, :, :self.n_q]


def _supported(interpreted: bool):
    """(dtypes, smallest head dim, smallest block) this Triton mode runs correctly."""
    if interpreted:
        # The interpreter's bf16 tl.dot is wrong; tiny dims are fine on NumPy and make readable traces.
        return (torch.float16, torch.float32), 2, 1
    # tl.dot needs K >= 16 for 16-bit inputs; HEAD_DIM and BLOCK_N are both contraction dims.
    return (torch.float16, torch.bfloat16, torch.float32), 16, 16


def _check_inputs(q, k, v, causal, interpreted):
    """Raise ValueError, naming the argument, unless (q, k, v) is a shape and dtype the kernel handles."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.ndim != 4:
            raise ValueError(f"{name} must be 4-D (B, H, N, D), got shape {tuple(t.shape)}")
        if 0 in t.shape:
            raise ValueError(f"{name} must have no empty dimension, got shape {tuple(t.shape)}")
    dtypes, min_head_dim, _ = _supported(interpreted)
    if q.dtype not in dtypes:
        mode = "the Triton interpreter" if interpreted else "the GPU"
        raise ValueError(f"q.dtype={q.dtype} is not supported under {mode}; use one of {dtypes}")
    for name, t in (("k", k), ("v", v)):
        if t.dtype != q.dtype:
            raise ValueError(f"{name}.dtype={t.dtype} must match q.dtype={q.dtype}")
        if t.device != q.device:
            raise ValueError(f"{name}.device={t.device} must match q.device={q.device}")
    if not interpreted and q.device.type != "cuda":
        raise ValueError(f"q.device={q.device} must be a CUDA device when Triton compiles for the GPU")
    if v.shape != k.shape:
        raise ValueError(f"v.shape={tuple(v.shape)} must equal k.shape={tuple(k.shape)}")
    (batch, heads, n_q, head_dim), (batch_kv, heads_kv, n_k, head_dim_kv) = q.shape, k.shape
    if batch_kv != batch:
        raise ValueError(f"k.shape[0]={batch_kv} (batch) must equal q.shape[0]={batch}")
    if head_dim_kv != head_dim:
        raise ValueError(f"k.shape[3]={head_dim_kv} (head dim) must equal q.shape[3]={head_dim}")
    if heads % heads_kv:
        raise ValueError(f"q.shape[1]={heads} query heads must be a multiple of k.shape[1]={heads_kv} k/v heads")
    if head_dim < min_head_dim or head_dim > 128 or head_dim & (head_dim - 1):
        raise ValueError(f"q.shape[3]={head_dim} (head dim) must be a power of two in [{min_head_dim}, 128]")
    if causal and n_q != n_k:
        raise ValueError(f"causal=True needs q.shape[2] == k.shape[2], got N_q={n_q} and N_k={n_k}")


def _softmax_scale(scale, head_dim):
    """The factor on the scores: 1/sqrt(D) unless given, and finite."""
    scale = 1.0 / math.sqrt(head_dim) if scale is None else float(scale)
    if not math.isfinite(scale):
        raise ValueError(f"scale={scale} must be finite")
    return scale


def _defaults(dtype, head_dim, interpreted):
    """(default BLOCK_M and BLOCK_N, launch options) for inputs of this dtype and head dim."""
    if interpreted:
        # Every program-step costs a few ms of NumPy whatever its size: 32x32
        # tiles keep tests quick and still give N = 100 several steps to trace.
        return 32, {}
    # 16-bit inputs run on tensor cores with 64x64 tiles. fp32 runs IEEE FMAs
    # whose operands live in registers: 32x32 tiles keep them from spilling.
    block = 32 if dtype == torch.float32 else 64
    # A (64, 128) fp32 acc alone takes 64 registers a thread with 4 warps: use 8 for D = 128.
    num_warps = 8 if head_dim > 64 else 4
    return block, {"num_warps": num_warps, "num_stages": 2 if dtype == torch.float32 else 3}


def _block_size(value, name, default, n, interpreted):
    """The tile size to use: `value` checked, or `default` clipped to the sequence length."""
    if value is None:
        return min(default, max(16, triton.next_power_of_2(n)))
    _, _, min_block = _supported(interpreted)
    if isinstance(value, bool) or not isinstance(value, int) or value < min_block or value & (value - 1):
        raise ValueError(f"{name}={value!r} must be a power of two >= {min_block}")
    return value


def _trace_buffers(n_programs, n_steps, block_m, head_dim, device):
    """Trace storage, (program, step)-indexed; steps never executed keep kv_block -1 and NaN state."""
    kv_block = torch.full((n_programs, n_steps), -1, dtype=torch.int32, device=device)
    m = torch.full((n_programs, n_steps, block_m), math.nan, dtype=torch.float32, device=device)
    l = torch.full_like(m, math.nan)
    acc = torch.full((*m.shape, head_dim), math.nan, dtype=torch.float32, device=device)
    return kv_block, m, l, acc


def attention(q, k, v, causal=False, scale=None, *, block_m=None, block_n=None, trace=False):
    """FlashAttention-2 forward: ``softmax(q k^T * scale) v``, one Triton program per BLOCK_M query rows.

    Args:
        q: (B, H, N_q, D) fp16 or fp32 (bf16 on a GPU), D a power of two in
            [16, 128] ([2, 128] under the interpreter).
        k, v: (B, H_kv, N_k, D) with H % H_kv == 0: query head h reads k/v
            head h // (H // H_kv) (GQA; MQA when H_kv == 1).
        causal: query i sees keys j <= i; needs N_q == N_k.
        scale: multiplies the scores; default 1 / sqrt(D).
        block_m, block_n: BLOCK_M query rows and BLOCK_N keys per tile,
            powers of two; default 64 on a GPU (32 for fp32) and 32 under
            the interpreter, clipped to the sequence length.
        trace: also record every K/V step (see FlashTrace).

    Returns:
        The (B, H, N_q, D) output in q's dtype, or ``(out, FlashTrace)`` with ``trace=True``.
    """
    interpreted = triton_runtime.interpreted()
    _check_inputs(q, k, v, causal, interpreted)
    batch, heads, n_q, head_dim = q.shape
    heads_kv, n_k = k.shape[1], k.shape[2]
    scale = _softmax_scale(scale, head_dim)
    default_block, launch_options = _defaults(q.dtype, head_dim, interpreted)
    block_m = _block_size(block_m, "block_m", default_block, n_q, interpreted)
    block_n = _block_size(block_n, "block_n", default_block, n_k, interpreted)

    out = torch.empty((batch, heads, n_q, head_dim), dtype=q.dtype, device=q.device)
    grid = (triton.cdiv(n_q, block_m), batch * heads)
    n_programs, n_steps = grid[0] * grid[1], triton.cdiv(n_k, block_n)
    buffers = _trace_buffers(n_programs, n_steps, block_m, head_dim, q.device) if trace else (None, ) * 4
    _attn_fwd[grid](q, k, v, out, scale,  #
                    *q.stride(), *k.stride(), *v.stride(), *out.stride(),  #
                    heads, heads // heads_kv, n_q, n_k,  #
                    *buffers,  #
                    HEAD_DIM=head_dim, BLOCK_M=block_m, BLOCK_N=block_n, CAUSAL=causal, TRACE=trace,  #
                    **launch_options)
    if not trace:
        return out

    program = np.arange(n_programs)
    q_block, bh = program % grid[0], program // grid[0]  # grid order: axis 0 fastest
    kv_block, m, l, acc = (b.cpu().numpy() for b in buffers)
    return out, FlashTrace(block_m=block_m, block_n=block_n, n_q=n_q, n_k=n_k, head_dim=head_dim, causal=causal,
                           scale=scale, programs=np.stack([q_block, bh // heads, bh % heads], axis=1),
                           kv_block=kv_block.astype(np.int64), m=m, l=l, acc=acc)


def hbm_bytes(batch, heads, heads_kv, n_q, n_k, head_dim, block_m, block_n, itemsize, causal=False):
    """Bytes ``attention(trace=False)`` loads and stores per tensor: ``{"Q": {"load": ..., "store": ...}, ...}``.

    Each program loads its Q block once and stores its O block once; it
    loads K and V for every key of the tiles it visits: all N_k keys, or
    under a causal mask the tiles up to its last query row (a ragged last
    tile only up to N_k). So K and V are read once per Q block, N^2 d / BLOCK_M
    elements in all: Theorem 2's Theta(N^2 d^2 / M) of arXiv:2205.14135 with
    BLOCK_M = Theta(M / d) for an SRAM of M elements. ``heads_kv``
    changes nothing: each query head's programs load their K/V head
    themselves (on a GPU, L2 may serve some repeats; these are the bytes the
    kernel requests from global memory).
    """
    sizes = dict(batch=batch, heads=heads, heads_kv=heads_kv, n_q=n_q, n_k=n_k, head_dim=head_dim,
                 block_m=block_m, block_n=block_n, itemsize=itemsize)
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive int")
    if heads % heads_kv:
        raise ValueError(f"heads={heads} must be a multiple of heads_kv={heads_kv}")
    if causal and n_q != n_k:
        raise ValueError(f"causal=True needs n_q == n_k, got n_q={n_q} and n_k={n_k}")
    keys_loaded = 0  # per (batch, head): keys each Q block's program loads, summed over Q blocks
    for start_m in range(math.ceil(n_q / block_m)):
        last_key = min((start_m + 1) * block_m, n_k) if causal else n_k  # as _kv_tile_range's hi
        keys_loaded += min(math.ceil(last_key / block_n) * block_n, n_k)
    per_head = {"Q": (n_q * head_dim, 0), "K": (keys_loaded * head_dim, 0), "V": (keys_loaded * head_dim, 0),
                "O": (0, n_q * head_dim)}
    scale = batch * heads * itemsize
    return {name: {"load": load * scale, "store": store * scale} for name, (load, store) in per_head.items()}
