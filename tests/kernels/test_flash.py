"""Tests for the Triton FlashAttention-2 forward kernel (kernels/flash.py).

Without a GPU the kernel runs under the Triton interpreter, which costs a few
ms per program per K/V step, so sequences stay at N <= 128 and the tiles are
chosen to give a handful of programs and steps.

Accuracy follows flash-attention's own tests: the kernel's max abs error
against an fp64 reference may be at most twice that of a plain PyTorch
implementation at the inputs' dtype.
"""

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import flash, reference, triton_runtime
from kernels.flash import FlashTrace, attention
from tests.kernels.gpu_compile import compile_in_subprocesses, ptx_summary

REPO_ROOT = Path(__file__).resolve().parents[2]
# Under the interpreter the kernel runs on CPU tensors; compiled, it needs CUDA ones.
INTERPRETED = triton_runtime.interpreted()
DEVICE = "cpu" if INTERPRETED else "cuda"
interpreter_only = pytest.mark.skipif(not INTERPRETED, reason="dims below 16 run only under the interpreter")


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _qkv(batch, heads, n_q, head_dim, *, heads_kv=None, n_k=None, dtype=torch.float32, device=DEVICE, seed=0):
    """Random (B, H, N_q, D) q and (B, H_kv, N_k, D) k, v."""
    gen = torch.Generator().manual_seed(seed)
    heads_kv = heads if heads_kv is None else heads_kv
    n_k = n_q if n_k is None else n_k
    q = torch.randn(batch, heads, n_q, head_dim, generator=gen)
    k = torch.randn(batch, heads_kv, n_k, head_dim, generator=gen)
    v = torch.randn(batch, heads_kv, n_k, head_dim, generator=gen)
    return (t.to(dtype=dtype, device=device) for t in (q, k, v))


def _default_scale(q, scale):
    return 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale


def _reference_fp64(q, k, v, causal, scale):
    """fp64 attention from the repository's oracle, kernels/reference.py."""
    q, k, v = (t.detach().cpu().double().numpy() for t in (q, k, v))
    return torch.from_numpy(reference.attention(q, k, v, causal=causal, scale=scale))


def _plain_torch(q, k, v, causal, scale):
    """softmax(q k^T * scale) v written out in torch at the inputs' dtype: the error yardstick."""
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    s = q @ k.transpose(-1, -2) * scale  # (B, H, N_q, N_k)
    if causal:
        n = s.shape[-1]
        s = s.masked_fill(torch.ones(n, n, dtype=torch.bool, device=s.device).triu(1), float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def _assert_accurate(out, q, k, v, causal=False, scale=None):
    """Kernel error vs fp64 <= 2x the plain torch error (flash-attention's rule), plus one output rounding."""
    scale = _default_scale(q, scale)
    assert out.shape == q.shape and out.dtype == q.dtype and out.device == q.device
    assert torch.isfinite(out).all()
    ref = _reference_fp64(q, k, v, causal, scale)
    kernel_err = (out.cpu().double() - ref).abs().max().item()
    torch_err = (_plain_torch(q, k, v, causal, scale).cpu().double() - ref).abs().max().item()
    # Floor: returning q.dtype costs one rounding of the output that no implementation
    # can avoid, while the plain one can be exact by luck (flash-attention's hopper tests
    # add the same rounding error, `fwd_atol`). It is ~1e-7 in fp32 and ~5e-4 in fp16.
    rounding = (ref.to(q.dtype).double() - ref).abs().max().item()
    assert kernel_err <= 2 * torch_err + rounding, f"kernel {kernel_err:.3g} vs plain torch {torch_err:.3g}"


# --------------------------------------------------------------------------
# Accuracy
# --------------------------------------------------------------------------

DTYPES = [torch.float32, torch.float16]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("causal", [False, True])
def test_ragged_sequence_matches_reference(dtype, causal):
    # N = 77 is a multiple of neither tile: the last Q block and K/V tile are both ragged.
    q, k, v = _qkv(2, 2, 77, 32, dtype=dtype)
    _assert_accurate(attention(q, k, v, causal=causal, block_m=16, block_n=32), q, k, v, causal)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("causal", [False, True])
def test_single_token(dtype, causal):
    q, k, v = _qkv(1, 2, 1, 16, dtype=dtype)
    out = attention(q, k, v, causal=causal)
    _assert_accurate(out, q, k, v, causal)
    torch.testing.assert_close(out, v, rtol=0, atol=0)  # one key: its softmax weight is exactly 1


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("n_q, n_k", [(50, 93), (93, 50), (1, 70), (70, 1)])
def test_cross_attention_lengths(dtype, n_q, n_k):
    q, k, v = _qkv(1, 2, n_q, 16, n_k=n_k, dtype=dtype)
    _assert_accurate(attention(q, k, v, block_m=16, block_n=16), q, k, v)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("head_dim, n", [(16, 64), (32, 64), (64, 40), (128, 24)])
def test_head_dims(dtype, head_dim, n):
    q, k, v = _qkv(1, 2, n, head_dim, dtype=dtype)
    for causal in (False, True):
        _assert_accurate(attention(q, k, v, causal=causal, block_m=16, block_n=16), q, k, v, causal)


@interpreter_only
@pytest.mark.parametrize("head_dim", [2, 4, 8])
def test_tiny_head_dims_for_teaching_traces(head_dim):
    q, k, v = _qkv(1, 1, 12, head_dim)
    _assert_accurate(attention(q, k, v, causal=True, block_m=4, block_n=4), q, k, v, causal=True)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("heads, heads_kv", [(4, 2), (4, 1)], ids=["gqa", "mqa"])
@pytest.mark.parametrize("causal", [False, True])
def test_grouped_and_multi_query(dtype, heads, heads_kv, causal):
    q, k, v = _qkv(2, heads, 40, 16, heads_kv=heads_kv, dtype=dtype)
    _assert_accurate(attention(q, k, v, causal=causal, block_m=16, block_n=16), q, k, v, causal)


def test_query_head_reads_its_group_kv_head():
    # Adding 1 to K/V head 1's values adds 1 to the output of exactly the query heads
    # reading it (softmax rows sum to one): h // (H // H_kv) == 1, i.e. heads 2 and 3.
    q, k, v = _qkv(1, 6, 20, 16, heads_kv=3)
    v_shifted = v.clone()
    v_shifted[:, 1] += 1.0
    diff = (attention(q, k, v_shifted) - attention(q, k, v)).abs().amax(dim=(0, 2, 3)).cpu()  # (H,)
    torch.testing.assert_close(diff, torch.tensor([0, 0, 1, 1, 0, 0.0]), atol=1e-5, rtol=0)


def test_strided_inputs_and_custom_scale():
    # (B, N, H, D) storage viewed as (B, H, N, D): no stride is the contiguous one.
    q, k, v = (t.transpose(1, 2).contiguous().transpose(1, 2) for t in _qkv(2, 3, 33, 16))
    assert not q.is_contiguous()
    _assert_accurate(attention(q, k, v, causal=True, scale=0.3, block_m=16, block_n=16), q, k, v, True, 0.3)


@settings(max_examples=12, deadline=None, derandomize=True)
@given(
    n_q=st.integers(1, 72),
    n_k=st.integers(1, 72),
    head_dim=st.sampled_from([16, 32]),
    heads_kv=st.sampled_from([1, 2]),
    group=st.sampled_from([1, 2]),
    causal=st.booleans(),
    dtype=st.sampled_from(DTYPES),
    block_m=st.sampled_from([16, 32]),
    block_n=st.sampled_from([16, 32]),
)
def test_shape_sweep(n_q, n_k, head_dim, heads_kv, group, causal, dtype, block_m, block_n):
    n_k = n_q if causal else n_k
    q, k, v = _qkv(1, heads_kv * group, n_q, head_dim, heads_kv=heads_kv, n_k=n_k, dtype=dtype, seed=n_q * 100 + n_k)
    out = attention(q, k, v, causal=causal, block_m=block_m, block_n=block_n)
    _assert_accurate(out, q, k, v, causal)


# --------------------------------------------------------------------------
# Trace
# --------------------------------------------------------------------------

# (un-normalised acc, everything else): fp16 rounds p to fp16 before P V.
TRACE_TOL = {torch.float32: (1e-5, 1e-5), torch.float16: (2e-3, 1e-5)}
TRACE_SHAPES = [
    # (N, HEAD_DIM, BLOCK_M, BLOCK_N)
    # 45 = 2 full tiles + 13: a ragged last Q block and K/V tile; 3 programs x 3 steps a head.
    pytest.param((45, 16, 16, 16), id="tiles"),
    # The size of a teaching widget: 4 Q blocks x 7 K/V steps.
    pytest.param((13, 4, 4, 2), id="teaching", marks=interpreter_only),
]


def _traced(shape, dtype, causal):
    """One traced call: B = 1, two query heads sharing one K/V head (GQA)."""
    n, head_dim, block_m, block_n = shape
    q, k, v = _qkv(1, 2, n, head_dim, heads_kv=1, dtype=dtype, seed=7)
    out, trace = attention(q, k, v, causal=causal, block_m=block_m, block_n=block_n, trace=True)
    return q, k, v, out, trace


def _executed(trace, p):
    """Indices of the steps program p executed."""
    return np.flatnonzero(trace.kv_block[p] >= 0)


@pytest.mark.parametrize("shape", TRACE_SHAPES)
@pytest.mark.parametrize("causal", [False, True])
def test_trace_layout(shape, causal):
    n, head_dim, block_m, block_n = shape
    *_, trace = _traced(shape, torch.float32, causal)
    assert isinstance(trace, FlashTrace)
    n_q_blocks, n_steps = math.ceil(n / block_m), math.ceil(n / block_n)
    assert (trace.block_m, trace.block_n, trace.n_q, trace.n_k, trace.head_dim) == (block_m, block_n, n, n, head_dim)
    assert trace.causal is causal and trace.scale == pytest.approx(1 / math.sqrt(head_dim))
    # Grid order: Q block fastest, then head (batch 0 only).
    assert trace.programs.tolist() == [[qb, 0, h] for h in range(2) for qb in range(n_q_blocks)]
    n_programs = 2 * n_q_blocks
    assert trace.kv_block.shape == (n_programs, n_steps)
    assert trace.m.shape == trace.l.shape == (n_programs, n_steps, block_m)
    assert trace.acc.shape == (n_programs, n_steps, block_m, head_dim)

    for p, (q_block, _, _) in enumerate(trace.programs):
        last_query = min((q_block + 1) * block_m, n) - 1
        # Causal: a tile whose first key comes after the block's last query is never visited.
        visited = [j for j in range(n_steps) if not causal or j * block_n <= last_query]
        assert trace.kv_block[p].tolist() == visited + [-1] * (n_steps - len(visited))
        steps = _executed(trace, p)
        # Everything the kernel held is finite, padding rows past N included; skipped steps stay NaN.
        for state in (trace.m, trace.l, trace.acc):
            assert np.isfinite(state[p, steps]).all()
            assert np.isnan(state[p, len(steps):]).all()
    assert (trace.kv_block == -1).any() == causal


@pytest.mark.parametrize("shape", TRACE_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("causal", [False, True])
def test_trace_reconstructs_output(shape, dtype, causal):
    q, k, v, out, trace = _traced(shape, dtype, causal)
    final = trace.final_output()  # (B, H, N_q, D) fp32 acc / l
    assert final.shape == tuple(q.shape)
    # fp32: the same division; fp16: out is final rounded to fp16 (half an ulp, 2^-11).
    rtol = 1e-6 if dtype == torch.float32 else 2**-10
    np.testing.assert_allclose(final, out.float().cpu().numpy(), rtol=rtol, atol=1e-7)
    # Recording changes nothing in the result.
    _, _, block_m, block_n = shape
    assert torch.equal(attention(q, k, v, causal=causal, block_m=block_m, block_n=block_n), out)


@pytest.mark.parametrize("shape", TRACE_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("causal", [False, True])
def test_trace_steps_follow_online_softmax(shape, dtype, causal):
    """Each recorded (m_i, l_i, acc) equals the online softmax recomputed in fp64 over the tiles seen so far."""
    q, k, v, _, trace = _traced(shape, dtype, causal)
    n, _, block_m, block_n = shape
    acc_tol, tol = TRACE_TOL[dtype]
    qd, kd, vd = (t.double().cpu().numpy() for t in (q, k, v))
    group = q.shape[1] // k.shape[1]
    for p, (q_block, b, h) in enumerate(trace.programs):
        rows = np.arange(q_block * block_m, min((q_block + 1) * block_m, n))  # real query rows of this block
        r = len(rows)
        s = qd[b, h, rows] @ kd[b, h // group].T * trace.scale  # (r, N_k) natural-log units
        if causal:
            s = np.where(np.arange(n)[None, :] <= rows[:, None], s, -np.inf)
        m_prev = np.full(r, -np.inf)
        for step in _executed(trace, p):
            seen = slice(0, min((trace.kv_block[p, step] + 1) * block_n, n))  # keys folded in so far
            m, l, acc = trace.m[p, step, :r], trace.l[p, step, :r], trace.acc[p, step, :r]
            assert (m >= m_prev).all(), "m_i must never decrease"
            np.testing.assert_allclose(m, s[:, seen].max(axis=1), rtol=tol, atol=tol)
            e = np.exp(s[:, seen] - m[:, None])  # (r, seen) with the kernel's own m_i
            np.testing.assert_allclose(l, e.sum(axis=1), rtol=tol)
            np.testing.assert_allclose((e / l[:, None]).sum(axis=1), 1.0, rtol=tol)  # implied softmax rows
            np.testing.assert_allclose(acc, e @ vd[b, h // group, seen], rtol=acc_tol, atol=acc_tol)
            m_prev = m


@pytest.mark.parametrize("shape", TRACE_SHAPES)
@pytest.mark.parametrize("causal", [False, True])
def test_trace_matches_numpy_tiled_reference(shape, causal):
    """The kernel's trace and kernels.reference.flash_attention_tiled visit the same tiles with the same state."""

    q, k, v, _, trace = _traced(shape, torch.float32, causal)
    _, _, block_m, block_n = shape
    q, k, v = (t.cpu().numpy() for t in (q, k, v))
    _, steps = reference.flash_attention_tiled(q, k, v, block_m=block_m, block_n=block_n, loop_order="fa2",
                                               causal=causal, record=True)
    program = {tuple(prog): p for p, prog in enumerate(trace.programs.tolist())}
    assert len(steps) == (trace.kv_block >= 0).sum()
    for ref in steps:
        p = program[(ref["q_block"], ref["batch"], ref["head"])]
        step = ref["kv_block"]  # tiles are visited in order, so step index == tile index
        assert trace.kv_block[p, step] == ref["kv_block"]
        r = len(ref["l"])
        np.testing.assert_allclose(trace.m[p, step, :r], ref["m"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(trace.l[p, step, :r], ref["l"], rtol=1e-5)
        np.testing.assert_allclose(trace.acc[p, step, :r], ref["acc"], rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------


BAD_INPUTS = {
    # name: (overrides of a valid (q, k, v) call, expected message)
    "ndim": (lambda q, k, v: dict(q=q[0]), "q must be 4-D (B, H, N, D), got shape (4, 8, 16)"),
    "not-tensor": (lambda q, k, v: dict(k=k.cpu().numpy()), "k must be a torch.Tensor, got ndarray"),
    "empty": (lambda q, k, v: dict(q=q[:, :, :0]), "q must have no empty dimension, got shape (1, 4, 0, 16)"),
    "kv-shape": (lambda q, k, v: dict(v=v[:, :, :5]), "v.shape=(1, 2, 5, 16) must equal k.shape=(1, 2, 8, 16)"),
    "batch": (lambda q, k, v: dict(k=torch.cat([k, k]), v=torch.cat([v, v])),
              "k.shape[0]=2 (batch) must equal q.shape[0]=1"),
    "head-dim": (lambda q, k, v: dict(k=k[..., :8], v=v[..., :8]), "k.shape[3]=8 (head dim) must equal q.shape[3]=16"),
    "heads": (lambda q, k, v: dict(k=k[:, :1].expand(1, 3, 8, 16), v=v[:, :1].expand(1, 3, 8, 16)),
              "q.shape[1]=4 query heads must be a multiple of k.shape[1]=3 k/v heads"),
    "dtype": (lambda q, k, v: dict(k=k.half()), "k.dtype=torch.float16 must match q.dtype=torch.float32"),
    "float64": (lambda q, k, v: dict(q=q.double(), k=k.double(), v=v.double()),
                "q.dtype=torch.float64 is not supported"),
    "not-pow2": (lambda q, k, v: dict(q=q[..., :12], k=k[..., :12], v=v[..., :12]),
                 "q.shape[3]=12 (head dim) must be a power of two"),
    "too-big": (lambda q, k, v: dict(q=q.repeat(1, 1, 1, 16), k=k.repeat(1, 1, 1, 16), v=v.repeat(1, 1, 1, 16)),
                "q.shape[3]=256 (head dim) must be a power of two"),
    "causal": (lambda q, k, v: dict(k=k[:, :, :5], v=v[:, :, :5], causal=True),
               "causal=True needs q.shape[2] == k.shape[2], got N_q=8 and N_k=5"),
    "block_m": (lambda q, k, v: dict(block_m=24), "block_m=24 must be a power of two"),
    "block_n": (lambda q, k, v: dict(block_n=0), "block_n=0 must be a power of two"),
    "scale": (lambda q, k, v: dict(scale=float("inf")), "scale=inf must be finite"),
}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input_raises_value_error(name):
    overrides, message = BAD_INPUTS[name]
    q, k, v = _qkv(1, 4, 8, 16, heads_kv=2)
    with pytest.raises(ValueError, match=re.escape(message)):
        attention(**{"q": q, "k": k, "v": v, **overrides(q, k, v)})


@pytest.mark.skipif(not INTERPRETED, reason="bf16 is only refused under the interpreter")
def test_bf16_refused_under_interpreter():
    q, k, v = _qkv(1, 1, 8, 16, dtype=torch.bfloat16)
    message = "q.dtype=torch.bfloat16 is not supported under the Triton interpreter"
    with pytest.raises(ValueError, match=re.escape(message)):
        attention(q, k, v)


# --------------------------------------------------------------------------
# Compiling for real GPU targets, without a GPU
# --------------------------------------------------------------------------

TRITON_POINTER = {"float16": "*fp16", "bfloat16": "*bf16", "float32": "*fp32"}
TRACE_POINTERS = {"TraceKV": "*i32", "TraceM": "*fp32", "TraceL": "*fp32", "TraceAcc": "*fp32"}


def _kernel_source(dtype, head_dim, block, causal, trace):
    """_attn_fwd as the JIT would specialise it for contiguous inputs.

    Pointers are 16-byte aligned, the head-dim strides are 1 (a constexpr,
    as the JIT makes any int argument equal to 1) and the other strides are
    divisible by 16. Without TRACE the launcher passes None for the buffers.
    """
    from triton.compiler import ASTSource

    kernel = flash._attn_fwd
    signature = {name: "i32" for name in kernel.arg_names}  # strides, H, GROUP, N_CTX_Q, N_CTX_K
    signature.update(dict.fromkeys(["Q", "K", "V", "Out"], TRITON_POINTER[dtype]), sm_scale="fp32")
    constexprs = {"HEAD_DIM": head_dim, "BLOCK_M": block, "BLOCK_N": block, "CAUSAL": causal, "TRACE": trace}
    constexprs.update({f"stride_{t}d": 1 for t in "qkvo"})
    if trace:
        signature.update(TRACE_POINTERS)
    else:
        constexprs.update(dict.fromkeys(TRACE_POINTERS))
    signature.update(dict.fromkeys(constexprs, "constexpr"))
    aligned = ["Q", "K", "V", "Out", *TRACE_POINTERS, "stride_qm", "stride_kn", "stride_vn", "stride_om",
               *(f"stride_{t}{axis}" for t in "qkvo" for axis in "bh")]
    attrs = {(kernel.arg_names.index(name), ): [["tt.divisibility", 16]]
             for name in aligned if signature[name] != "constexpr"}
    return ASTSource(kernel, signature, constexprs, attrs)


def _compile_for_targets(cases):
    """Compile _attn_fwd for each (arch, dtype, head_dim, causal, trace) case; summarise what came out.

    Runs in a TRITON_INTERPRET=0 process (see gpu_compile.compile_in_subprocesses), where
    `_attn_fwd` is a real JITFunction, with the tiles and launch options
    attention() would use on that GPU.
    """
    import triton
    from triton.backends.compiler import GPUTarget

    results = []
    for arch, dtype, head_dim, causal, trace in cases:
        block, options = flash._defaults(getattr(torch, dtype), head_dim, interpreted=False)
        compiled = triton.compile(_kernel_source(dtype, head_dim, block, causal, trace),
                                  target=GPUTarget("cuda", arch, 32), options=options)
        results.append(ptx_summary(compiled, "_attn_fwd"))
    return results


# Most shared memory one block may use: A100 (sm80) 163 KB, H100 (sm90) 227 KB. Triton
# does not check this at compile time, only when launching, so a config that overflows
# would fail on the GPU alone.
SHARED_MEMORY_LIMIT = {80: 166912, 90: 232448}


def _check_compiled(cases, results):
    for (arch, dtype, _, _, _), got in zip(cases, results):
        assert got["target"] == ("sm_90a" if arch == 90 else f"sm_{arch}")
        assert got["entry"] and got["cubin_is_elf"]
        assert 0 < got["shared_bytes"] <= SHARED_MEMORY_LIMIT[arch]
        # 16-bit inputs must run on tensor cores (mma on sm80, wgmma on sm90); fp32 is IEEE FMAs.
        assert (got["tensor_core_ops"] > 0) == (dtype != "float32")
    # TRACE=False compiles the recording out: only the output stores are left.
    by_case = {tuple(case): got for case, got in zip(cases, results)}
    for case, got in by_case.items():
        twin = by_case.get((*case[:4], not case[4]))
        if twin is not None and case[4]:
            assert got["global_stores"] > twin["global_stores"]


FAST_COMPILE_CASES = [
    # (arch, dtype, head_dim, causal, trace): every value of every axis at least once.
    (80, "float16", 64, False, False),
    (80, "float16", 64, False, True),
    (90, "float16", 128, True, False),
    (90, "float32", 64, True, True),
    (80, "float32", 128, False, False),
]


def test_compiles_for_sm80_and_sm90(tmp_path):
    _check_compiled(FAST_COMPILE_CASES, compile_in_subprocesses("tests.kernels.test_flash", FAST_COMPILE_CASES, tmp_path))


@pytest.mark.slow
def test_compiles_every_variant(tmp_path):
    cases = [(arch, dtype, head_dim, causal, trace) for arch in (80, 90) for dtype in ("float16", "float32")
             for head_dim in (64, 128) for causal in (False, True) for trace in (False, True)]
    cases += [(arch, "bfloat16", head_dim, True, False) for arch in (80, 90) for head_dim in (64, 128)]
    _check_compiled(cases, compile_in_subprocesses("tests.kernels.test_flash", cases, tmp_path))


# --------------------------------------------------------------------------
# Native GPU
# --------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or INTERPRETED, reason="needs a CUDA GPU, not the interpreter")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32], ids=str)
@pytest.mark.parametrize("head_dim", [64, 128])
@pytest.mark.parametrize("causal", [False, True])
def test_native_gpu(dtype, head_dim, causal):
    q, k, v = _qkv(2, 8, 1000, head_dim, heads_kv=2, dtype=dtype, device="cuda")
    _assert_accurate(attention(q, k, v, causal=causal), q, k, v, causal)
    out, trace = attention(q[:, :2, :100], k[:, :1, :100], v[:, :1, :100], causal=causal, trace=True)
    np.testing.assert_allclose(trace.final_output(), out.float().cpu().numpy(), rtol=1e-2, atol=1e-2)


# --------------------------------------------------------------------------
# Runtime mode
# --------------------------------------------------------------------------


def test_interpreter_is_chosen_without_a_gpu():
    env = {name: value for name, value in os.environ.items() if name != "TRITON_INTERPRET"}
    env.update(CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(REPO_ROOT))  # hide any GPU
    script = ("import os\n"
              "from kernels import triton_runtime\n"
              "print(os.environ['TRITON_INTERPRET'], triton_runtime.interpreted())")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["1", "True"]
