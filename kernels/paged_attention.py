"""PagedAttention decode in Triton: one new query token per sequence, K/V read through a block table.

Kwon et al. 2023, "Efficient Memory Management for Large Language Model
Serving with PagedAttention" (arXiv:2309.06180): the KV cache is cut into
fixed-size physical blocks of ``BLOCK_SIZE`` tokens that live anywhere in one
pool; a per-sequence *block table* maps logical block ``j`` (tokens
``[j * BLOCK_SIZE, (j + 1) * BLOCK_SIZE)``) to its physical block id.
Sequences that share a prefix share its physical blocks.

The kernel streams each sequence's blocks past its query with the online
softmax of Milakov & Gimelshein 2018 (arXiv:1805.02867) and reuses the
FlashAttention-2 inner step of ``kernels.flash`` unchanged
(``_attn_fwd_inner``, arXiv:2307.08691): a paged block is one K/V tile whose
base address comes from the block table instead of from ``start_n``.

Cache layout: ``(num_blocks, H_kv, BLOCK_SIZE, D)``, FlashInfer's "HND".
One program reads one KV head of one block, and in this layout that is a
single contiguous ``BLOCK_SIZE x D`` tile (4 KB at 16 x 128 fp16). vLLM's
original CUDA kernel keeps the same head-before-token order but reshapes
within the head: K as ``(num_blocks, H_kv, D / x, BLOCK_SIZE, x)`` with
``x = 16 bytes / itemsize``, V as ``(num_blocks, H_kv, D, BLOCK_SIZE)``, to
suit the 16-byte loads of its hand-written thread groups; Triton picks its
own vector widths, so the plain tile suffices. The other common layout,
``(num_blocks, BLOCK_SIZE, H_kv, D)`` ("NHD", flash-attn's
``flash_attn_with_kvcache``), makes appending one token for all heads one
contiguous write; pass it as ``k_cache.transpose(1, 2)``: every stride is
honoured.

Grid: one program per (sequence, KV head), covering the ``GROUP = H / H_kv``
query heads that share that KV head (GQA, arXiv:2305.13245; MQA,
arXiv:1911.02150, is ``H_kv = 1``). Each K/V block is then loaded once per
KV head rather than once per query head: the kernel's cache reads shrink
with ``H_kv`` as the cache itself does. And the group's queries stack into a
``(BLOCK_G, D)`` tile, which turns the decode mat-vec into the small matmuls
the FA2 step is written for. ``BLOCK_G`` pads ``GROUP`` to a power of two
(``tl.arange`` sizes must be); padded rows load zeros and are never stored.
Triton 3.8 accepts any M >= 1 in ``tl.dot`` on NVIDIA GPUs and pads small
ones to the tensor-core tile itself (``min_dot_size`` in its NVIDIA
backend), so the group needs no further padding; its K dimensions, D and
BLOCK_SIZE, must be >= 16 for 16-bit inputs, hence the GPU's smallest block.

Trace. ``paged_decode(..., trace=True)`` compiles the kernel with
``TRACE=True``, which stores, for each program and step, the physical block
it just read: the block tables as the kernel walked them.
"""

from dataclasses import dataclass

import numpy as np
import torch

from kernels import triton_runtime  # before `import triton`: it picks the interpreter or the GPU compiler

# isort: split
import triton
import triton.language as tl

from kernels.flash import LOG2E, _attn_fwd_inner, _defaults, _softmax_scale, _supported

__all__ = ["PagedTrace", "paged_decode"]


@triton.jit
def _fold_block(acc, l_i, m_i, q, K, V, Table, logical, seq_len,  #
                stride_kb, stride_kn, stride_kd, stride_vb, stride_vn, stride_vd, stride_tj,  #
                qk_scale, offs_g, TraceBlock, trace_row,  #
                BLOCK_SIZE: tl.constexpr, HEAD_DIM: tl.constexpr, MASK: tl.constexpr, TRACE: tl.constexpr):
    """Look up logical block `logical` in the block table and fold its physical block into (acc, l_i, m_i)."""
    physical = tl.load(Table + logical * stride_tj).to(tl.int64)  # int64: block * stride overflows int32 in big pools
    # The FA2 step with the tile's base at the physical block: its key j is token logical * BLOCK_SIZE + j,
    # and keys at or past the block's share of seq_len load as 0 and score -inf (MASK, last block only).
    acc, l_i, m_i = _attn_fwd_inner(acc, l_i, m_i, q,  #
                                    K + physical * stride_kb, V + physical * stride_vb,  #
                                    stride_kn, stride_kd, stride_vn, stride_vd,  #
                                    0, qk_scale, offs_g, seq_len - logical * BLOCK_SIZE,  #
                                    BLOCK_SIZE, HEAD_DIM, CAUSAL=False, MASK=MASK)
    if TRACE:
        tl.store(TraceBlock + trace_row + logical, physical.to(tl.int32))
    return acc, l_i, m_i


@triton.jit
def _paged_decode(Q, KCache, VCache, BlockTables, SeqLens, Out, sm_scale,  #
                  stride_s,  #
                  stride_qb, stride_qh, stride_qd,  #
                  stride_kb, stride_kh, stride_kn, stride_kd,  #
                  stride_vb, stride_vh, stride_vn, stride_vd,  #
                  stride_tb, stride_tj,  #
                  stride_ob, stride_oh, stride_od,  #
                  GROUP, MAX_BLOCKS,  #
                  TraceBlock,  #
                  HEAD_DIM: tl.constexpr, BLOCK_SIZE: tl.constexpr, BLOCK_G: tl.constexpr, TRACE: tl.constexpr):
    """One program: the GROUP query heads of one (sequence, KV head), streamed past the sequence's blocks."""
    off_h_kv = tl.program_id(0).to(tl.int64)  # which KV head: axis 0, fastest in grid order
    off_b = tl.program_id(1).to(tl.int64)  # which sequence
    seq_len = tl.load(SeqLens + off_b * stride_s)  # >= 1, checked by the host

    offs_g = tl.arange(0, BLOCK_G)  # (BLOCK_G,) row within the query-head group
    offs_d = tl.arange(0, HEAD_DIM)  # (HEAD_DIM,)
    heads = off_h_kv * GROUP + offs_g  # (BLOCK_G,) query heads h with h // GROUP == off_h_kv
    head_exists = offs_g[:, None] < GROUP  # (BLOCK_G, 1)
    q = tl.load(Q + off_b * stride_qb + heads[:, None] * stride_qh + offs_d[None, :] * stride_qd,
                mask=head_exists, other=0.0)  # (BLOCK_G, HEAD_DIM)

    m_i = tl.full([BLOCK_G], float("-inf"), dtype=tl.float32)  # running max (base 2)
    l_i = tl.zeros([BLOCK_G], dtype=tl.float32)  # running sum of exp(s - m_i)
    acc = tl.zeros([BLOCK_G, HEAD_DIM], dtype=tl.float32)  # un-normalised output
    qk_scale = sm_scale * LOG2E

    K = KCache + off_h_kv * stride_kh
    V = VCache + off_h_kv * stride_vh
    Table = BlockTables + off_b * stride_tb
    trace_row = (off_b * tl.num_programs(0) + off_h_kv) * MAX_BLOCKS  # this program's row of the trace
    n_full = seq_len // BLOCK_SIZE  # blocks with every slot holding a token: no mask
    n_blocks = tl.cdiv(seq_len, BLOCK_SIZE)  # plus at most one partly filled last block
    for logical in range(0, n_full):
        acc, l_i, m_i = _fold_block(acc, l_i, m_i, q, K, V, Table, logical, seq_len,  #
                                    stride_kb, stride_kn, stride_kd, stride_vb, stride_vn, stride_vd, stride_tj,  #
                                    qk_scale, offs_g, TraceBlock, trace_row,  #
                                    BLOCK_SIZE, HEAD_DIM, MASK=False, TRACE=TRACE)
    for logical in range(n_full, n_blocks):
        acc, l_i, m_i = _fold_block(acc, l_i, m_i, q, K, V, Table, logical, seq_len,  #
                                    stride_kb, stride_kn, stride_kd, stride_vb, stride_vn, stride_vd, stride_tj,  #
                                    qk_scale, offs_g, TraceBlock, trace_row,  #
                                    BLOCK_SIZE, HEAD_DIM, MASK=True, TRACE=TRACE)

    out = acc / l_i[:, None]  # normalise once, at the end (FA2)
    tl.store(Out + off_b * stride_ob + heads[:, None] * stride_oh + offs_d[None, :] * stride_od,
             out.to(Out.dtype.element_ty), mask=head_exists)


@dataclass(frozen=True, eq=False)
class PagedTrace:
    """The physical blocks every program of one ``paged_decode(..., trace=True)`` call read, in order.

    Programs are listed in grid order (KV head fastest, then sequence).
    Program ``p`` reads ``ceil(seq_lens[b] / block_size)`` blocks: step ``j``
    is logical block ``j``, so ``physical_block[p, j] == block_tables[b, j]``
    for those steps, and ``-1`` after them.
    """

    block_size: int  # tokens per physical block: the cache's BLOCK_SIZE
    group: int  # query heads per KV head: program (b, h_kv) serves heads h_kv * group ... + group - 1
    seq_lens: np.ndarray  # (B,) int: tokens each sequence attends to
    programs: np.ndarray  # (P, 2) int: (sequence, kv_head) of each program
    physical_block: np.ndarray  # (P, max_blocks) int: block read at each step, -1 where none was

    def blocks_read(self, p: int) -> list[int]:
        """The physical blocks program ``p`` read, in the order it read them."""
        row = self.physical_block[p]
        return row[row >= 0].tolist()


def _check_paged_inputs(q, k_cache, v_cache, block_tables, seq_lens, interpreted):
    """Raise ValueError, naming the argument, unless the call is a shape and dtype the kernel handles.

    Returns seq_lens as host ints (the value checks copy them to the CPU anyway).
    """
    shapes = {"q": (q, 3, "(B, H, D)"), "k_cache": (k_cache, 4, "(num_blocks, H_kv, BLOCK_SIZE, D)"),
              "v_cache": (v_cache, 4, "(num_blocks, H_kv, BLOCK_SIZE, D)"),
              "block_tables": (block_tables, 2, "(B, max_blocks)"), "seq_lens": (seq_lens, 1, "(B,)")}
    for name, (t, ndim, layout) in shapes.items():
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.ndim != ndim:
            raise ValueError(f"{name} must be {ndim}-D {layout}, got shape {tuple(t.shape)}")
        if 0 in t.shape:
            raise ValueError(f"{name} must have no empty dimension, got shape {tuple(t.shape)}")
        if t.device != q.device:
            raise ValueError(f"{name}.device={t.device} must match q.device={q.device}")
    dtypes, min_head_dim, min_block = _supported(interpreted)
    if q.dtype not in dtypes:
        mode = "the Triton interpreter" if interpreted else "the GPU"
        raise ValueError(f"q.dtype={q.dtype} is not supported under {mode}; use one of {dtypes}")
    for name, t in (("k_cache", k_cache), ("v_cache", v_cache)):
        if t.dtype != q.dtype:
            raise ValueError(f"{name}.dtype={t.dtype} must match q.dtype={q.dtype}")
    for name, t in (("block_tables", block_tables), ("seq_lens", seq_lens)):
        if t.dtype != torch.int32:
            raise ValueError(f"{name}.dtype={t.dtype} must be torch.int32")
    if not interpreted and q.device.type != "cuda":
        raise ValueError(f"q.device={q.device} must be a CUDA device when Triton compiles for the GPU")
    if v_cache.shape != k_cache.shape:
        raise ValueError(f"v_cache.shape={tuple(v_cache.shape)} must equal k_cache.shape={tuple(k_cache.shape)}")
    (batch, heads, head_dim), (num_blocks, heads_kv, block_size, head_dim_kv) = q.shape, k_cache.shape
    if head_dim_kv != head_dim:
        raise ValueError(f"k_cache.shape[3]={head_dim_kv} (head dim) must equal q.shape[2]={head_dim}")
    if heads % heads_kv:
        raise ValueError(f"q.shape[1]={heads} query heads must be a multiple of k_cache.shape[1]={heads_kv} k/v heads")
    if head_dim < min_head_dim or head_dim > 128 or head_dim & (head_dim - 1):
        raise ValueError(f"q.shape[2]={head_dim} (head dim) must be a power of two in [{min_head_dim}, 128]")
    if block_size < min_block or block_size & (block_size - 1):
        raise ValueError(f"k_cache.shape[2]={block_size} (BLOCK_SIZE) must be a power of two >= {min_block}")
    for name, t in (("block_tables", block_tables), ("seq_lens", seq_lens)):
        if t.shape[0] != batch:
            raise ValueError(f"{name}.shape[0]={t.shape[0]} must equal q.shape[0]={batch} sequences")

    # Values: an out-of-range length or block id would make the kernel read outside the pool.
    max_blocks = block_tables.shape[1]
    lens = seq_lens.cpu().tolist()
    tables = block_tables.cpu().numpy()
    for b, n in enumerate(lens):
        if not 1 <= n <= max_blocks * block_size:
            raise ValueError(f"seq_lens[{b}]={n} must be in [1, {max_blocks * block_size}]: "
                             f"{max_blocks} blocks of {block_size} tokens")
        used = tables[b, :-(-n // block_size)]  # the ceil(n / BLOCK_SIZE) blocks the kernel reads
        bad = used[(used < 0) | (used >= num_blocks)]
        if bad.size:
            raise ValueError(f"block_tables[{b}] holds physical block {bad[0]} among its first {used.size} entries; "
                             f"the cache has blocks [0, {num_blocks})")
    return lens


def paged_decode(q, k_cache, v_cache, block_tables, seq_lens, scale=None, *, trace=False):
    """Decode attention over a paged KV cache: ``out[b, h] = softmax(q[b, h] K_b^T * scale) V_b``.

    ``K_b`` is sequence b's first ``seq_lens[b]`` cached keys: token t lives in
    physical block ``block_tables[b, t // BLOCK_SIZE]`` at slot ``t % BLOCK_SIZE``.

    Args:
        q: (B, H, D) fp16 or fp32 (bf16 on a GPU), one query token per
            sequence; D a power of two in [16, 128] ([2, 128] under the interpreter).
        k_cache, v_cache: (num_blocks, H_kv, BLOCK_SIZE, D) with H % H_kv == 0
            (query head h reads KV head h // (H // H_kv)); BLOCK_SIZE a power
            of two, >= 16 on a GPU. Any strides.
        block_tables: (B, max_blocks) int32 physical block ids; entries past a
            sequence's ceil(seq_lens[b] / BLOCK_SIZE) are never read.
        seq_lens: (B,) int32, each in [1, max_blocks * BLOCK_SIZE].
        scale: multiplies the scores; default 1 / sqrt(D).
        trace: also return the physical blocks each program read (PagedTrace).

    Returns:
        The (B, H, D) output in q's dtype, or ``(out, PagedTrace)`` with ``trace=True``.

    The host checks every used block id, which copies the block tables and
    lengths to the CPU (a synchronisation a production server would not make).
    """
    interpreted = triton_runtime.interpreted()
    lens = _check_paged_inputs(q, k_cache, v_cache, block_tables, seq_lens, interpreted)
    batch, heads, head_dim = q.shape
    heads_kv, block_size = k_cache.shape[1], k_cache.shape[2]
    max_blocks = block_tables.shape[1]
    group = heads // heads_kv
    scale = _softmax_scale(scale, head_dim)
    # The (BLOCK_G, D) acc is a (BLOCK_M, D) FA2 tile: the same warps and pipelining suit it.
    _, launch_options = _defaults(q.dtype, head_dim, interpreted)

    out = torch.empty_like(q, memory_format=torch.contiguous_format)  # (B, H, D)
    grid = (heads_kv, batch)
    n_programs = heads_kv * batch
    trace_block = (torch.full((n_programs, max_blocks), -1, dtype=torch.int32, device=q.device) if trace else None)
    _paged_decode[grid](q, k_cache, v_cache, block_tables, seq_lens, out, scale, seq_lens.stride(0),  #
                        *q.stride(), *k_cache.stride(), *v_cache.stride(), *block_tables.stride(), *out.stride(),  #
                        group, max_blocks,  #
                        trace_block,  #
                        HEAD_DIM=head_dim, BLOCK_SIZE=block_size,
                        BLOCK_G=triton.next_power_of_2(group), TRACE=trace,  #
                        **launch_options)
    if not trace:
        return out

    program = np.arange(n_programs)
    return out, PagedTrace(block_size=block_size, group=group, seq_lens=np.array(lens, dtype=np.int64),
                           programs=np.stack([program // heads_kv, program % heads_kv], axis=1),
                           physical_block=trace_block.cpu().numpy().astype(np.int64))
