"""Tests for standard attention as three Triton kernels (kernels/naive.py).

The accuracy rule, the input helpers and the bad-input table are the ones
kernels/flash.py is tested with (tests/kernels/test_flash.py), so the two
kernels answer to the same contract. Interpreter runs stay at N <= 64 with
B * H <= 8: the softmax kernel runs one program per query row.
"""

import re

import pytest
import torch

from kernels import naive
from tests.kernels.gpu_compile import compile_in_subprocesses, ptx_summary
from tests.kernels.test_flash import (
    BAD_INPUTS,
    DTYPES,
    INTERPRETED,
    SHARED_MEMORY_LIMIT,
    TRITON_POINTER,
    _assert_accurate,
    _qkv,
    interpreter_only,
)

# --------------------------------------------------------------------------
# Accuracy
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("causal", [False, True])
def test_ragged_sequence_matches_reference(dtype, causal):
    # N = 45 is a multiple of no tile; D = 32 takes two BLOCK_K steps.
    q, k, v = _qkv(1, 2, 45, 32, dtype=dtype)
    out = naive.attention(q, k, v, causal=causal, block_m=16, block_n=32, block_k=16)
    _assert_accurate(out, q, k, v, causal)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("causal", [False, True])
def test_single_token(dtype, causal):
    q, k, v = _qkv(1, 2, 1, 16, dtype=dtype)
    out = naive.attention(q, k, v, causal=causal)
    torch.testing.assert_close(out, v, rtol=0, atol=0)  # one key: its softmax weight is exactly 1


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("n_q, n_k", [(20, 47), (47, 20), (1, 40)])
def test_cross_attention_lengths(dtype, n_q, n_k):
    q, k, v = _qkv(1, 2, n_q, 16, n_k=n_k, dtype=dtype)
    _assert_accurate(naive.attention(q, k, v, block_m=16, block_n=16, block_k=16), q, k, v)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("heads, heads_kv", [(4, 2), (4, 1)], ids=["gqa", "mqa"])
@pytest.mark.parametrize("causal", [False, True])
def test_grouped_and_multi_query(dtype, heads, heads_kv, causal):
    q, k, v = _qkv(2, heads, 24, 16, heads_kv=heads_kv, dtype=dtype)
    _assert_accurate(naive.attention(q, k, v, causal=causal, block_m=16, block_n=16, block_k=16), q, k, v, causal)


@pytest.mark.parametrize("head_dim", [64, 128])
def test_large_head_dims(head_dim):
    q, k, v = _qkv(1, 1, 24, head_dim, dtype=torch.float16)
    _assert_accurate(naive.attention(q, k, v, causal=True, block_m=16, block_n=16, block_k=32), q, k, v, True)


def test_strided_inputs_and_custom_scale():
    # (B, N, H, D) storage viewed as (B, H, N, D): no stride is the contiguous one.
    q, k, v = (t.transpose(1, 2).contiguous().transpose(1, 2) for t in _qkv(1, 3, 33, 16))
    assert not q.is_contiguous()
    out = naive.attention(q, k, v, causal=True, scale=0.3, block_m=16, block_n=16, block_k=16)
    _assert_accurate(out, q, k, v, True, 0.3)


@interpreter_only
def test_tiny_tiles_for_teaching():
    q, k, v = _qkv(1, 1, 12, 4)
    _assert_accurate(naive.attention(q, k, v, causal=True, block_m=4, block_n=4, block_k=2), q, k, v, causal=True)


# --------------------------------------------------------------------------
# What is written to memory: S and P
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("causal", [False, True])
def test_intermediates_are_scores_and_probabilities(dtype, causal):
    q, k, v = _qkv(1, 4, 21, 16, heads_kv=2, dtype=dtype)
    out, s, p = naive.attention(q, k, v, causal=causal, scale=0.5, block_m=8, block_n=16, block_k=8,
                                intermediates=True)
    assert s.shape == p.shape == (1, 4, 21, 21) and s.dtype == p.dtype == dtype
    # S is every score, masked or not, in the inputs' dtype: fp32 sums rounded once.
    k_per_head = k.repeat_interleave(2, dim=1)
    scores = (q.double() @ k_per_head.double().transpose(-1, -2) * 0.5).to(dtype)  # (B, H, N, N)
    torch.testing.assert_close(s, scores, rtol=1e-5 if dtype == torch.float32 else 2**-10, atol=1e-5)
    # P: rows sum to one up to P's own rounding (half an ulp of each p, 2^-11 of the row in fp16).
    rows = p.double().sum(-1)
    torch.testing.assert_close(rows, torch.ones_like(rows), rtol=0, atol=1e-6 if dtype == torch.float32 else 2**-10)
    hidden = torch.ones(21, 21, dtype=torch.bool).triu(1)
    assert (p[..., hidden] == 0).all() == causal
    assert (p[..., ~hidden] > 0).all()
    # O = P V from the P that was stored.
    expected = (p.double() @ v.repeat_interleave(2, dim=1).double()).to(dtype)
    torch.testing.assert_close(out, expected, rtol=1e-5 if dtype == torch.float32 else 2**-10, atol=1e-5)


def test_query_head_reads_its_group_kv_head():
    # Adding 1 to K/V head 1's values adds 1 to the output of exactly heads 2 and 3 (H // H_kv = 2).
    q, k, v = _qkv(1, 6, 20, 16, heads_kv=3)
    v_shifted = v.clone()
    v_shifted[:, 1] += 1.0
    diff = (naive.attention(q, k, v_shifted) - naive.attention(q, k, v)).abs().amax(dim=(0, 2, 3)).cpu()  # (H,)
    torch.testing.assert_close(diff, torch.tensor([0, 0, 1, 1, 0, 0.0]), atol=1e-5, rtol=0)


# --------------------------------------------------------------------------
# Bad input: the same table as kernels/flash.py, plus block_k
# --------------------------------------------------------------------------

NAIVE_BAD_INPUTS = {
    **BAD_INPUTS,
    "block_k": (lambda q, k, v: dict(block_k=3), "block_k=3 must be a power of two"),
}


@pytest.mark.parametrize("name", NAIVE_BAD_INPUTS)
def test_bad_input_raises_value_error(name):
    overrides, message = NAIVE_BAD_INPUTS[name]
    q, k, v = _qkv(1, 4, 8, 16, heads_kv=2)
    with pytest.raises(ValueError, match=re.escape(message)):
        naive.attention(**{"q": q, "k": k, "v": v, **overrides(q, k, v)})


@pytest.mark.parametrize("overrides, message", [
    (dict(heads=3, heads_kv=2), "heads=3 must be a multiple of heads_kv=2"),
    (dict(n_k=5, causal=True), "causal=True needs n_q == n_k, got n_q=8 and n_k=5"),
    (dict(block_k=0), "block_k=0 must be a positive int"),
    (dict(itemsize=2.0), "itemsize=2.0 must be a positive int"),
])
def test_hbm_bytes_bad_input(overrides, message):
    sizes = dict(batch=1, heads=2, heads_kv=1, n_q=8, n_k=8, head_dim=16, block_m=4, block_n=4, block_k=4,
                 itemsize=2, causal=False)
    with pytest.raises(ValueError, match=re.escape(message)):
        naive.hbm_bytes(**{**sizes, **overrides})


# --------------------------------------------------------------------------
# Compiling for real GPU targets, without a GPU
# --------------------------------------------------------------------------

# Which strides of the contiguous tensors are 1 (the JIT makes them constexprs):
# S = Q K^T reads Q along d and K^T down d; O = P V reads P along keys and V along d.
UNIT_STRIDES = {"qk": ("stride_ak", "stride_bk", "stride_cn"), "pv": ("stride_ak", "stride_bn", "stride_cn")}


def _matmul_source(dtype, product, blocks):
    """naive._matmul as the JIT would specialise it for contiguous inputs (see tests/kernels/test_flash.py)."""
    from triton.compiler import ASTSource

    kernel = naive._matmul
    signature = {name: "i32" for name in kernel.arg_names}  # strides, H, GROUP, M, N, K
    signature.update(dict.fromkeys("ABC", TRITON_POINTER[dtype]), scale="fp32")
    constexprs = dict(zip(("BLOCK_M", "BLOCK_N", "BLOCK_K"), blocks))
    constexprs.update(dict.fromkeys(UNIT_STRIDES[product], 1))
    signature.update(dict.fromkeys(constexprs, "constexpr"))
    aligned = ["A", "B", "C", *(name for name in kernel.arg_names if name.startswith("stride_"))]
    attrs = {(kernel.arg_names.index(name), ): [["tt.divisibility", 16]]
             for name in aligned if signature[name] != "constexpr"}
    return ASTSource(kernel, signature, constexprs, attrs)


def _softmax_source(dtype, causal, row):
    from triton.compiler import ASTSource

    kernel = naive._softmax
    signature = {"S": TRITON_POINTER[dtype], "P": TRITON_POINTER[dtype], "N_CTX_Q": "i32", "N_CTX_K": "i32",
                 "CAUSAL": "constexpr", "ROW": "constexpr"}
    attrs = {(kernel.arg_names.index(name), ): [["tt.divisibility", 16]] for name in ("S", "P")}
    return ASTSource(kernel, signature, {"CAUSAL": causal, "ROW": row}, attrs)


def _compile_for_targets(cases):
    """Compile each (arch, dtype, kernel, params) case for a GPU; summarise the PTX and metadata.

    Runs in a TRITON_INTERPRET=0 process (see gpu_compile.compile_in_subprocesses). The
    matmul tiles are those attention() defaults to for that dtype and head dim.
    """
    import triton
    from triton.backends.compiler import GPUTarget

    results = []
    for arch, dtype, kernel, params in cases:
        if kernel == "softmax":
            source = _softmax_source(dtype, **params)
        else:
            block = naive._default_block(getattr(torch, dtype), interpreted=False)
            blocks = (block, block, min(block, params["head_dim"]))  # (block_m, block_n, block_k), clipped to D
            source = _matmul_source(dtype, kernel, blocks if kernel == "qk" else (blocks[0], blocks[2], blocks[1]))
        compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32))
        results.append(ptx_summary(compiled, ""))
    return results


COMPILE_CASES = [
    # (arch, dtype, kernel, params): both products, the softmax, both dtypes, both targets.
    (80, "float16", "qk", {"head_dim": 64}),
    (80, "float32", "pv", {"head_dim": 128}),
    (80, "float16", "softmax", {"causal": True, "row": 4096}),
    (90, "float16", "pv", {"head_dim": 128}),
    (90, "float32", "qk", {"head_dim": 64}),
    (90, "float32", "softmax", {"causal": False, "row": 1024}),
]


def test_compiles_for_sm80_and_sm90(tmp_path):
    results = compile_in_subprocesses("tests.kernels.test_naive", COMPILE_CASES, tmp_path)
    for (arch, dtype, kernel, _), got in zip(COMPILE_CASES, results):
        assert got["target"] == ("sm_90a" if arch == 90 else f"sm_{arch}")
        assert got["cubin_is_elf"]
        assert got["shared_bytes"] <= SHARED_MEMORY_LIMIT[arch]
        # 16-bit matmuls run on tensor cores (mma on sm80, wgmma on sm90); fp32 and the softmax do not.
        assert (got["tensor_core_ops"] > 0) == (dtype == "float16" and kernel != "softmax")


# --------------------------------------------------------------------------
# Native GPU
# --------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or INTERPRETED, reason="needs a CUDA GPU, not the interpreter")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32], ids=str)
@pytest.mark.parametrize("causal", [False, True])
def test_native_gpu(dtype, causal):
    q, k, v = _qkv(2, 8, 1000, 64, heads_kv=2, dtype=dtype, device="cuda")
    _assert_accurate(naive.attention(q, k, v, causal=causal), q, k, v, causal)
