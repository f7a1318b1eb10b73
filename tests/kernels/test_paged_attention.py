"""Tests for the Triton paged decode kernel (kernels/paged_attention.py).

Each case writes every sequence's K/V token by token into a shuffled pool of
physical blocks, fills every slot no sequence owns with NaN (a kernel that
read one would return NaN), then checks the kernel against
``kernels.reference.attention`` over the same tokens gathered back into a
contiguous (1, H_kv, N, D) tensor through the block table, under the flash
tolerance rule of tests/kernels/test_flash.py.

Under the interpreter a program costs a few ms per block it reads, so pools
stay at tens of blocks and sequences at a handful of blocks.
"""

import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import paged_attention
from kernels.paged_attention import PagedTrace, paged_decode
from tests.kernels.gpu_compile import compile_in_subprocesses, ptx_summary
from tests.kernels.test_flash import (
    DEVICE,
    DTYPES,
    INTERPRETED,
    TRITON_POINTER,
    _assert_accurate,
    _check_compiled,
    interpreter_only,
)

# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _paged_case(seq_lens, heads, heads_kv, head_dim, block_size, *, shared_prefix_blocks=0, spare_blocks=3,
                dtype=torch.float32, device=DEVICE, seed=0):
    """(q, k_cache, v_cache, block_tables, seq_lens): a random batch stored in a shuffled, NaN-padded pool.

    Sequences share their first `shared_prefix_blocks` logical blocks (same
    physical blocks, same K/V), as forked requests do in vLLM; each needs at
    least that many blocks. The pool also holds `spare_blocks` unowned blocks.
    Table entries past a sequence's last block are -1, which the kernel must
    never follow.
    """
    gen = torch.Generator().manual_seed(seed)
    n_blocks = [-(-n // block_size) for n in seq_lens]  # ceil(n / BLOCK_SIZE) per sequence
    assert min(n_blocks) >= shared_prefix_blocks
    own = [n - shared_prefix_blocks for n in n_blocks]  # blocks each sequence holds alone
    num_blocks = shared_prefix_blocks + sum(own) + spare_blocks
    physical = torch.randperm(num_blocks, generator=gen).tolist()  # non-contiguous, out of order
    shared, physical = physical[:shared_prefix_blocks], physical[shared_prefix_blocks:]
    block_tables = torch.full((len(seq_lens), max(n_blocks) + 1), -1, dtype=torch.int32)
    for b, n_own in enumerate(own):
        block_tables[b, :n_blocks[b]] = torch.tensor(shared + physical[:n_own], dtype=torch.int32)
        physical = physical[n_own:]

    q = torch.randn(len(seq_lens), heads, head_dim, generator=gen)
    k_cache = torch.full((num_blocks, heads_kv, block_size, head_dim), float("nan"))
    v_cache = torch.full_like(k_cache, float("nan"))
    prefix_k, prefix_v = (torch.randn(heads_kv, shared_prefix_blocks * block_size, head_dim, generator=gen)
                          for _ in "kv")
    for b, n in enumerate(seq_lens):
        k = torch.cat([prefix_k, torch.randn(heads_kv, n, head_dim, generator=gen)], dim=1)[:, :n]  # (H_kv, N, D)
        v = torch.cat([prefix_v, torch.randn(heads_kv, n, head_dim, generator=gen)], dim=1)[:, :n]
        for t in range(n):
            block, slot = block_tables[b, t // block_size], t % block_size
            k_cache[block, :, slot], v_cache[block, :, slot] = k[:, t], v[:, t]
    seq_lens = torch.tensor(seq_lens, dtype=torch.int32)
    return (*(x.to(dtype=dtype, device=device) for x in (q, k_cache, v_cache)),
            block_tables.to(device), seq_lens.to(device))


def _gather(cache, block_tables, seq_lens, b):
    """Sequence b's (1, H_kv, N, D) keys or values, gathered token by token through its block table."""
    tokens = torch.arange(int(seq_lens[b]), device=cache.device)
    block_size = cache.shape[2]
    blocks = block_tables[b].long()[tokens // block_size]  # (N,) physical block of each token
    return cache[blocks, :, tokens % block_size].transpose(0, 1)[None]  # (N, H_kv, D) -> (1, H_kv, N, D)


def _assert_matches_reference(out, q, k_cache, v_cache, block_tables, seq_lens, scale=None):
    """Every sequence's output within the flash tolerance of fp64 attention over its gathered tokens."""
    assert out.shape == q.shape and out.dtype == q.dtype
    for b in range(q.shape[0]):
        k, v = _gather(k_cache, block_tables, seq_lens, b), _gather(v_cache, block_tables, seq_lens, b)
        assert not k.isnan().any(), "the test's own gather touched an unowned slot"
        # (H, D) -> (1, H, 1, D): one query token, as flash's rule expects.
        _assert_accurate(out[b][None, :, None], q[b][None, :, None], k, v, causal=False, scale=scale)


# --------------------------------------------------------------------------
# Accuracy
# --------------------------------------------------------------------------

# 1 token; exactly one full block; exactly three full blocks; ragged 2 + 3/4 blocks.
SEQ_LENS = [1, 8, 24, 19]
HEADS = [pytest.param(4, 2, id="gqa"), pytest.param(4, 1, id="mqa"), pytest.param(2, 2, id="mha")]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("heads, heads_kv", HEADS)
def test_matches_reference_on_shuffled_pool(dtype, heads, heads_kv):
    case = _paged_case(SEQ_LENS, heads, heads_kv, 16, 8, dtype=dtype, seed=1)
    _assert_matches_reference(paged_decode(*case), *case)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_shared_prefix_blocks(dtype):
    # All sequences read the same 2 physical blocks first, then their own.
    q, k_cache, v_cache, block_tables, seq_lens = case = _paged_case([16, 17, 30], 4, 2, 16, 8, shared_prefix_blocks=2,
                                                                     dtype=dtype, seed=2)
    assert (block_tables[:, :2] == block_tables[0, :2]).all()
    _assert_matches_reference(paged_decode(*case), *case)
    # A sequence that is only the shared prefix answers like any other over those tokens.
    same_q = q[:1].expand(3, -1, -1)
    out = paged_decode(same_q, k_cache, v_cache, block_tables, torch.full_like(seq_lens, 16))
    assert torch.equal(out[1], out[0]) and torch.equal(out[2], out[0])


def test_single_token_returns_its_value():
    q, k_cache, v_cache, block_tables, seq_lens = case = _paged_case([1, 1], 2, 1, 16, 4, seed=3)
    out = paged_decode(*case)
    for b in range(2):
        expected = v_cache[block_tables[b, 0].long(), 0, 0]  # (D,): one key, softmax weight exactly 1
        torch.testing.assert_close(out[b], expected.expand(2, -1), rtol=0, atol=0)


def test_query_head_reads_its_group_kv_head():
    # Adding 1 to KV head 1's values adds 1 to the output of exactly the query heads
    # h with h // (H // H_kv) == 1: heads 2 and 3 of 6 sharing 3 KV heads.
    q, k_cache, v_cache, block_tables, seq_lens = _paged_case([5, 12], 6, 3, 16, 4, seed=4)
    v_shifted = v_cache.clone()
    v_shifted[:, 1] += 1.0
    diff = (paged_decode(q, k_cache, v_shifted, block_tables, seq_lens)
            - paged_decode(q, k_cache, v_cache, block_tables, seq_lens)).abs().amax(dim=(0, 2)).cpu()  # (H,)
    torch.testing.assert_close(diff, torch.tensor([0, 0, 1, 1, 0, 0.0]), atol=1e-5, rtol=0)


def test_token_major_layout_and_strided_inputs():
    # The (num_blocks, BLOCK_SIZE, H_kv, D) layout, passed as a transposed view; q non-contiguous too.
    q, k_cache, v_cache, block_tables, seq_lens = _paged_case([9, 4, 16], 4, 2, 16, 8, seed=5)
    k_nhd, v_nhd = (c.transpose(1, 2).contiguous() for c in (k_cache, v_cache))  # token-major storage
    q_strided = q.transpose(0, 1).contiguous().transpose(0, 1)
    assert not (k_nhd.transpose(1, 2).is_contiguous() or q_strided.is_contiguous())
    out = paged_decode(q_strided, k_nhd.transpose(1, 2), v_nhd.transpose(1, 2), block_tables, seq_lens, scale=0.3)
    _assert_matches_reference(out, q, k_cache, v_cache, block_tables, seq_lens, scale=0.3)


@settings(max_examples=10, deadline=None, derandomize=True)
@given(
    seq_lens=st.lists(st.integers(1, 40), min_size=1, max_size=4),
    block_size=st.sampled_from([4, 8, 16]),
    heads_kv=st.sampled_from([1, 2]),
    group=st.sampled_from([1, 3, 4]),
    head_dim=st.sampled_from([16, 32]),
    shared=st.integers(0, 2),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**16),
)
def test_random_block_tables(seq_lens, block_size, heads_kv, group, head_dim, shared, dtype, seed):
    shared = min([shared] + [-(-n // block_size) for n in seq_lens])
    case = _paged_case(seq_lens, heads_kv * group, heads_kv, head_dim, block_size, shared_prefix_blocks=shared,
                       dtype=dtype, seed=seed)
    _assert_matches_reference(paged_decode(*case), *case)


@interpreter_only
def test_tiny_sizes_for_teaching_traces():
    case = _paged_case([3, 7, 4], 2, 1, 4, 2, shared_prefix_blocks=1, seed=6)
    _assert_matches_reference(paged_decode(*case), *case)


# --------------------------------------------------------------------------
# Trace: the block tables the kernel read
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_trace_reads_each_block_table_prefix_in_order(dtype):
    q, k_cache, v_cache, block_tables, seq_lens = case = _paged_case(SEQ_LENS, 4, 2, 16, 8, shared_prefix_blocks=1,
                                                                     dtype=dtype, seed=7)
    out, trace = paged_decode(*case, trace=True)
    assert isinstance(trace, PagedTrace)
    assert (trace.block_size, trace.group) == (8, 2)
    assert trace.seq_lens.tolist() == SEQ_LENS
    # Grid order: KV head fastest, then sequence.
    assert trace.programs.tolist() == [[b, h] for b in range(len(SEQ_LENS)) for h in range(2)]
    assert trace.physical_block.shape == (len(SEQ_LENS) * 2, block_tables.shape[1])
    tables = block_tables.cpu().numpy()
    for p, (b, _) in enumerate(trace.programs):
        n_read = -(-SEQ_LENS[b] // 8)
        assert trace.blocks_read(p) == tables[b, :n_read].tolist()
        assert (trace.physical_block[p, n_read:] == -1).all()
    # Recording changes nothing in the result.
    assert torch.equal(paged_decode(*case), out)


# --------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------

BAD_INPUTS = {
    # name: (overrides of a valid call, expected message)
    "q-ndim": (lambda c: dict(q=c["q"][:, :, None]), "q must be 3-D (B, H, D), got shape (2, 4, 1, 16)"),
    "not-tensor": (lambda c: dict(seq_lens=[5, 12]), "seq_lens must be a torch.Tensor, got list"),
    "empty": (lambda c: dict(q=c["q"][:, :0]), "q must have no empty dimension, got shape (2, 0, 16)"),
    "cache-shape": (lambda c: dict(v_cache=c["v_cache"][:3]),
                    "v_cache.shape=(3, 2, 4, 16) must equal k_cache.shape=(5, 2, 4, 16)"),
    "heads": (lambda c: dict(k_cache=c["k_cache"][:, :1].expand(5, 3, 4, 16),
                             v_cache=c["v_cache"][:, :1].expand(5, 3, 4, 16)),
              "q.shape[1]=4 query heads must be a multiple of k_cache.shape[1]=3 k/v heads"),
    "head-dim": (lambda c: dict(k_cache=c["k_cache"][..., :8], v_cache=c["v_cache"][..., :8]),
                 "k_cache.shape[3]=8 (head dim) must equal q.shape[2]=16"),
    "not-pow2": (lambda c: dict(q=c["q"][..., :12], k_cache=c["k_cache"][..., :12], v_cache=c["v_cache"][..., :12]),
                 "q.shape[2]=12 (head dim) must be a power of two"),
    "block-size": (lambda c: dict(k_cache=c["k_cache"][:, :, :3], v_cache=c["v_cache"][:, :, :3]),
                   "k_cache.shape[2]=3 (BLOCK_SIZE) must be a power of two"),
    "dtype": (lambda c: dict(k_cache=c["k_cache"].half()), "k_cache.dtype=torch.float16 must match q.dtype"),
    "float64": (lambda c: dict(q=c["q"].double(), k_cache=c["k_cache"].double(), v_cache=c["v_cache"].double()),
                "q.dtype=torch.float64 is not supported"),
    "table-dtype": (lambda c: dict(block_tables=c["block_tables"].long()),
                    "block_tables.dtype=torch.int64 must be torch.int32"),
    "batch": (lambda c: dict(seq_lens=c["seq_lens"][:1]), "seq_lens.shape[0]=1 must equal q.shape[0]=2 sequences"),
    "zero-length": (lambda c: dict(seq_lens=torch.tensor([0, 12], dtype=torch.int32, device=DEVICE)),
                    "seq_lens[0]=0 must be in [1, 16]: 4 blocks of 4 tokens"),
    "too-long": (lambda c: dict(seq_lens=torch.tensor([5, 17], dtype=torch.int32, device=DEVICE)),
                 "seq_lens[1]=17 must be in [1, 16]: 4 blocks of 4 tokens"),
    # Sequence 0 reads 2 blocks; the table's -1 padding starts at its third entry.
    "unallocated-block": (lambda c: dict(seq_lens=torch.tensor([9, 12], dtype=torch.int32, device=DEVICE)),
                          ("block_tables[0] holds physical block -1 among its first 3 entries; "
                           "the cache has blocks [0, 5)")),
    "scale": (lambda c: dict(scale=float("nan")), "scale=nan must be finite"),
}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input_raises_value_error(name):
    overrides, message = BAD_INPUTS[name]
    valid = dict(zip(["q", "k_cache", "v_cache", "block_tables", "seq_lens"],
                     _paged_case([5, 12], 4, 2, 16, 4, spare_blocks=0)))
    with pytest.raises(ValueError, match=re.escape(message)):
        paged_decode(**{**valid, **overrides(valid)})


def test_never_reads_table_entries_past_the_sequence():
    # -1 entries after each sequence's blocks are legal: the kernel stops at ceil(N / BLOCK_SIZE).
    case = _paged_case([5, 12], 4, 2, 16, 4, spare_blocks=0, seed=8)
    assert (case[3] == -1).any(dim=1).all()
    _assert_matches_reference(paged_decode(*case), *case)


# --------------------------------------------------------------------------
# Compiling for real GPU targets, without a GPU
# --------------------------------------------------------------------------


def _kernel_source(dtype, head_dim, block_size, block_g, trace):
    """_paged_decode as the JIT would specialise it for contiguous inputs (cf. test_flash._kernel_source)."""
    from triton.compiler import ASTSource

    kernel = paged_attention._paged_decode
    signature = {name: "i32" for name in kernel.arg_names}  # strides, GROUP, MAX_BLOCKS
    signature.update(dict.fromkeys(["Q", "KCache", "VCache", "Out"], TRITON_POINTER[dtype]), sm_scale="fp32")
    signature.update(BlockTables="*i32", SeqLens="*i32")
    constexprs = {"HEAD_DIM": head_dim, "BLOCK_SIZE": block_size, "BLOCK_G": block_g, "TRACE": trace}
    constexprs.update(dict.fromkeys(["stride_s", "stride_tj", "stride_qd", "stride_kd", "stride_vd", "stride_od"], 1))
    if trace:
        signature["TraceBlock"] = "*i32"
    else:
        constexprs["TraceBlock"] = None
    signature.update(dict.fromkeys(constexprs, "constexpr"))
    aligned = ["Q", "KCache", "VCache", "BlockTables", "SeqLens", "Out", "TraceBlock", "stride_qb", "stride_qh",
               "stride_kb", "stride_kh", "stride_kn", "stride_vb", "stride_vh", "stride_vn", "stride_ob", "stride_oh"]
    attrs = {(kernel.arg_names.index(name), ): [["tt.divisibility", 16]]
             for name in aligned if signature[name] != "constexpr"}
    return ASTSource(kernel, signature, constexprs, attrs)


def _compile_for_targets(cases):
    """Compile _paged_decode per (arch, dtype, head_dim, BLOCK_G, trace) case, summarised as test_flash does.

    The summaries have test_flash._compile_for_targets' keys, so its
    _check_compiled judges them. Runs in a TRITON_INTERPRET=0 process.
    """
    import triton
    from triton.backends.compiler import GPUTarget

    results = []
    for arch, dtype, head_dim, block_g, trace in cases:
        _, options = paged_attention._defaults(getattr(torch, dtype), head_dim, interpreted=False)
        source = _kernel_source(dtype, head_dim, COMPILE_BLOCK_SIZE, block_g, trace)
        compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32), options=options)
        results.append(ptx_summary(compiled, "_paged_decode"))
    return results


# The smallest block a GPU takes: BLOCK_SIZE is P V's contraction dim, which tl.dot needs >= 16 for fp16.
COMPILE_BLOCK_SIZE = 16
COMPILE_CASES = [
    # (arch, dtype, head_dim, BLOCK_G, trace): every value of every axis at least once;
    # BLOCK_G 1 is MHA (one query head per program), 8 a GQA group of eight query heads.
    (80, "float16", 128, 8, False),
    (80, "float16", 128, 8, True),
    (90, "float16", 64, 1, False),
    (90, "float32", 128, 8, True),
    (80, "float32", 64, 1, False),
]


def test_compiles_for_sm80_and_sm90(tmp_path):
    _check_compiled(COMPILE_CASES, compile_in_subprocesses("tests.kernels.test_paged_attention", COMPILE_CASES, tmp_path))


# --------------------------------------------------------------------------
# Native GPU
# --------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or INTERPRETED, reason="needs a CUDA GPU, not the interpreter")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32], ids=str)
@pytest.mark.parametrize("heads, heads_kv", [(32, 8), (16, 1)], ids=["gqa", "mqa"])
def test_native_gpu(dtype, heads, heads_kv):
    case = _paged_case([1, 16, 500, 1000, 333], heads, heads_kv, 128, 16, shared_prefix_blocks=1, dtype=dtype,
                       device="cuda", seed=9)
    out, trace = paged_decode(*case, trace=True)
    _assert_matches_reference(out, *case)
    tables = case[3].cpu().numpy()
    for p, (b, _) in enumerate(trace.programs):
        assert trace.blocks_read(p) == tables[b, :-(-int(trace.seq_lens[b]) // 16)].tolist()
