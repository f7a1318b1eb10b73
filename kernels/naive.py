"""Standard attention in Triton: three kernels that write S and P to memory.

This is the baseline FlashAttention was measured against, Algorithm 0
("Standard Attention Implementation") of Dao et al. 2022, arXiv:2205.14135:

1. load Q, K by blocks, compute ``S = Q K^T * scale``, write S to HBM;
2. read S, compute ``P = softmax(S)`` row by row, write P to HBM;
3. load P and V by blocks, compute ``O = P V``, write O to HBM.

Steps 1 and 3 are one tiled matmul kernel, ``_matmul``: each program computes
a ``(BLOCK_M, BLOCK_N)`` tile of ``C = A B`` in ``BLOCK_K``-deep steps of the
contraction. Step 2 is ``_softmax``, one program per query row, holding the
whole row in registers as Triton's fused-softmax tutorial does (so rows of
more than a few thousand keys would spill registers on a GPU). The causal
mask is applied there: S is still computed and stored in full, as a plain
implementation does.

Tiles. ``attention()`` names its tiles in attention's own vocabulary:
``block_m`` tiles queries, ``block_n`` tiles keys and ``block_k`` tiles the
head dim. So ``S = Q K^T`` is a matmul with (BLOCK_M, BLOCK_N, BLOCK_K) =
(block_m, block_n, block_k) and ``O = P V`` one with (block_m, block_k,
block_n): its output columns are head dims and it contracts over keys.

Precision. S and P are stored in the inputs' dtype, as a plain PyTorch
``softmax(q @ k.transpose(-2, -1) * scale) @ v`` does, and as the paper's
fp16 baseline did: that is the memory traffic FlashAttention removes. Each
matmul accumulates in fp32 and the softmax computes in fp32 (like
``torch.softmax`` on fp16), rounding once when it stores. fp32 inputs use
IEEE fp32 matmuls, not TF32, as in kernels/flash.py.
"""


import torch

from kernels import triton_runtime  # before `import triton`: it picks the interpreter or the GPU compiler

# isort: split
import triton
import triton.language as tl

from kernels.flash import _block_size, _check_inputs, _softmax_scale

__all__ = ["attention", "hbm_bytes"]


@triton.jit
def _matmul(A, B, C, scale,  #
            stride_ab, stride_ah, stride_am, stride_ak,  #
            stride_bb, stride_bh, stride_bk, stride_bn,  #
            stride_cb, stride_ch, stride_cm, stride_cn,  #
            H, GROUP, M, N, K,  #
            BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """One (BLOCK_M, BLOCK_N) tile of C[b, h] = scale * A[b, h] @ B[b, h // GROUP].

    A is per query head (Q or P), B per K/V head (K^T or V): GROUP consecutive
    query heads share one B (GQA).
    """
    pid_m = tl.program_id(0)  # which row tile of C
    pid_n = tl.program_id(1)  # which column tile of C
    off_bh = tl.program_id(2)  # which (batch, query head)
    off_b = (off_bh // H).to(tl.int64)  # int64: batch * stride overflows int32 on big inputs
    off_h = (off_bh % H).to(tl.int64)
    A += off_b * stride_ab + off_h * stride_ah
    B += off_b * stride_bb + (off_h // GROUP) * stride_bh
    C += off_b * stride_cb + off_h * stride_ch

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # (BLOCK_M,) rows of C
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # (BLOCK_N,) columns of C
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for start_k in range(0, K, BLOCK_K):
        offs_k = start_k + tl.arange(0, BLOCK_K)  # (BLOCK_K,) contraction index
        # Out-of-range elements load as 0 so they add nothing to the dot product.
        a = tl.load(A + offs_m[:, None] * stride_am + offs_k[None, :] * stride_ak,
                    mask=(offs_m[:, None] < M) & (offs_k[None, :] < K), other=0.0)  # (BLOCK_M, BLOCK_K)
        b = tl.load(B + offs_k[:, None] * stride_bk + offs_n[None, :] * stride_bn,
                    mask=(offs_k[:, None] < K) & (offs_n[None, :] < N), other=0.0)  # (BLOCK_K, BLOCK_N)
        acc = tl.dot(a, b, acc, input_precision="ieee")
    c = (acc * scale).to(C.dtype.element_ty)
    tl.store(C + offs_m[:, None] * stride_cm + offs_n[None, :] * stride_cn, c,
             mask=(offs_m[:, None] < M) & (offs_n[None, :] < N))


@triton.jit
def _softmax(S, P, N_CTX_Q, N_CTX_K, CAUSAL: tl.constexpr, ROW: tl.constexpr):
    """P[b, h, i] = softmax(S[b, h, i]) for one query row i, read once and written once.

    S and P are contiguous (B, H, N_CTX_Q, N_CTX_K); ROW >= N_CTX_K is the
    row length padded to a power of two.
    """
    row_i = tl.program_id(0)  # query position
    off_bh = tl.program_id(1)  # which (batch, query head)
    row = (off_bh.to(tl.int64) * N_CTX_Q + row_i) * N_CTX_K  # offset of S[b, h, i, 0]
    offs_n = tl.arange(0, ROW)  # (ROW,) key positions
    key_exists = offs_n < N_CTX_K
    s = tl.load(S + row + offs_n, mask=key_exists, other=float("-inf")).to(tl.float32)  # (ROW,)
    if CAUSAL:
        s = tl.where(offs_n <= row_i, s, float("-inf"))  # key 0 stays visible, so m_i is finite
    m_i = tl.max(s, 0)  # row max, for a softmax that cannot overflow
    p = tl.exp(s - m_i)  # (ROW,)
    l_i = tl.sum(p, 0)
    tl.store(P + row + offs_n, (p / l_i).to(P.dtype.element_ty), mask=key_exists)


def _default_block(dtype, interpreted):
    """The default tile size, before clipping to the sequence length or head dim."""
    if interpreted:
        return 32  # as kernels/flash.py: few, cheap interpreter steps
    # 16-bit inputs run on tensor cores with 64x64 tiles; fp32 FMAs keep 32x32 tiles in registers.
    return 32 if dtype == torch.float32 else 64


def _matmul_launch(a, b, c, scale, heads, group, blocks):
    """c = scale * a @ b per (batch, head) with (BLOCK_M, BLOCK_N, BLOCK_K) = blocks; b is per K/V head."""
    block_m, block_n, block_k = blocks
    (m, k), n = a.shape[2:], b.shape[3]
    grid = (triton.cdiv(m, block_m), triton.cdiv(n, block_n), c.shape[0] * heads)
    _matmul[grid](a, b, c, scale, *a.stride(), *b.stride(), *c.stride(),  #
                  heads, group, m, n, k,  #
                  BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k)


def attention(q, k, v, causal=False, scale=None, *, block_m=None, block_n=None, block_k=None, intermediates=False):
    """Standard attention ``softmax(q k^T * scale) v`` as three kernels, S and P written to memory.

    Args:
        q, k, v, causal, scale: as kernels.flash.attention (same checks, GQA included).
        block_m, block_n, block_k: tiles of queries, keys and head dims,
            powers of two; default 64 on a GPU (32 for fp32) and 32 under
            the interpreter, clipped to N_q, N_k and D.
        intermediates: also return the S and P buffers the kernels wrote
            (to inspect them, or to name them for kernels.io_count).

    Returns:
        The (B, H, N_q, D) output in q's dtype, or ``(out, s, p)`` with
        ``intermediates=True``, s and p (B, H, N_q, N_k) in q's dtype.
    """
    interpreted = triton_runtime.interpreted()
    _check_inputs(q, k, v, causal, interpreted)
    batch, heads, n_q, head_dim = q.shape
    heads_kv, n_k = k.shape[1], k.shape[2]
    scale = _softmax_scale(scale, head_dim)
    default_block = _default_block(q.dtype, interpreted)
    block_m = _block_size(block_m, "block_m", default_block, n_q, interpreted)
    block_n = _block_size(block_n, "block_n", default_block, n_k, interpreted)
    block_k = _block_size(block_k, "block_k", default_block, head_dim, interpreted)
    group = heads // heads_kv

    s = torch.empty((batch, heads, n_q, n_k), dtype=q.dtype, device=q.device)  # (B, H, N_q, N_k)
    p = torch.empty_like(s)
    out = torch.empty((batch, heads, n_q, head_dim), dtype=q.dtype, device=q.device)
    # 1. S = Q K^T * scale: K^T is K with its last two strides swapped, no copy.
    _matmul_launch(q, k.transpose(2, 3), s, scale, heads, group, (block_m, block_n, block_k))
    # 2. P = softmax(S), one program per query row.
    _softmax[(n_q, batch * heads)](s, p, n_q, n_k, CAUSAL=causal, ROW=triton.next_power_of_2(n_k))
    # 3. O = P V: output columns are head dims (block_k), the contraction runs over keys (block_n).
    _matmul_launch(p, v, out, 1.0, heads, group, (block_m, block_k, block_n))
    return (out, s, p) if intermediates else out


def _check_counts(**sizes):
    """Raise ValueError, naming the argument, unless every size is a positive int."""
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive int")


def _matmul_bytes(m, n, k, block_m, block_n):
    """Elements (A loaded, B loaded, C stored) by _matmul for an (m, k) @ (k, n) product.

    Every program loads its full BLOCK_M rows of A and BLOCK_N columns of B
    over the whole contraction, masked to the matrix: A is read once per
    column tile of C and B once per row tile.
    """
    return m * k * triton.cdiv(n, block_n), k * n * triton.cdiv(m, block_m), m * n


def hbm_bytes(batch, heads, heads_kv, n_q, n_k, head_dim, block_m, block_n, block_k, itemsize, causal=False):
    """Bytes ``attention()`` loads and stores, per tensor: ``{"Q": {"load": ..., "store": ...}, ...}``.

    The Theta(N^2) part is S written, S read, P written and P read, once
    each; the matmuls read Q and K once per tile of S, P once per tile of
    head dims of O, and V once per query tile. ``causal`` changes nothing:
    the mask is applied in the softmax, after S is computed in full. Nor
    does ``heads_kv``: each query head's programs load their K/V head
    themselves (on a GPU, L2 may serve some of those repeats; these are the
    bytes the kernels request from global memory).
    """
    _check_counts(batch=batch, heads=heads, heads_kv=heads_kv, n_q=n_q, n_k=n_k, head_dim=head_dim,
                  block_m=block_m, block_n=block_n, block_k=block_k, itemsize=itemsize)
    if heads % heads_kv:
        raise ValueError(f"heads={heads} must be a multiple of heads_kv={heads_kv}")
    if causal and n_q != n_k:
        raise ValueError(f"causal=True needs n_q == n_k, got n_q={n_q} and n_k={n_k}")
    q_load, k_load, s_store = _matmul_bytes(n_q, n_k, head_dim, block_m, block_n)  # S = Q K^T
    p_load, v_load, o_store = _matmul_bytes(n_q, head_dim, n_k, block_m, block_k)  # O = P V
    per_head = {
        "Q": (q_load, 0),
        "K": (k_load, 0),
        "V": (v_load, 0),
        "S": (n_q * n_k, s_store),  # the softmax reads each score once
        "P": (p_load, n_q * n_k),  # the softmax writes each probability once
        "O": (0, o_store),
    }
    scale = batch * heads * itemsize
    return {name: {"load": load * scale, "store": store * scale} for name, (load, store) in per_head.items()}
