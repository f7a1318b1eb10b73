"""Tests for counting a Triton kernel's memory traffic (kernels/io_count.py).

Counted bytes must equal the closed forms next to each kernel
(kernels.flash.hbm_bytes, kernels.naive.hbm_bytes) exactly, on ragged and
tiny shapes, causal or not, fp16 and fp32, GQA: the closed forms are what
the post quotes, the counts are what the kernels did.
"""

import os
import re
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import triton_runtime  # before `import triton`: it picks the interpreter or the GPU compiler

# isort: split
import triton
import triton.language as tl

from kernels import flash, io_count, naive
from kernels.io_count import Access, count_io, paper_io_model
from tests.kernels.test_flash import REPO_ROOT, _qkv

pytestmark = pytest.mark.skipif(not triton_runtime.interpreted(), reason="counting needs the Triton interpreter")

# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _count_flash(q, k, v, causal, block_m, block_n):
    """(IOLog, out) of one flash.attention call with Q, K, V and O named."""
    with count_io({"Q": q, "K": k, "V": v}) as log:
        out = flash.attention(q, k, v, causal=causal, block_m=block_m, block_n=block_n)
    log.attribute("O", out)  # allocated inside the call
    return log, out


def _count_naive(q, k, v, causal, block_m, block_n, block_k):
    """IOLog of one naive.attention call with Q, K, V, S, P and O named."""
    with count_io({"Q": q, "K": k, "V": v}) as log:
        out, s, p = naive.attention(q, k, v, causal=causal, block_m=block_m, block_n=block_n, block_k=block_k,
                                    intermediates=True)
    for name, t in (("S", s), ("P", p), ("O", out)):
        log.attribute(name, t)
    return log


def _sizes(q, k):
    batch, heads, n_q, head_dim = q.shape
    return dict(batch=batch, heads=heads, heads_kv=k.shape[1], n_q=n_q, n_k=k.shape[2], head_dim=head_dim,
                itemsize=q.element_size())


# (B, H, H_kv, N_q, N_k, D, BLOCK_M, BLOCK_N, dtype, causal)
FLASH_CASES = [
    pytest.param(1, 2, 1, 45, 45, 16, 16, 16, torch.float16, True, id="ragged-causal-gqa-fp16"),
    pytest.param(1, 2, 1, 45, 45, 16, 16, 16, torch.float32, False, id="ragged-fp32"),
    pytest.param(2, 1, 1, 1, 1, 16, 16, 16, torch.float32, True, id="n1"),
    pytest.param(1, 1, 1, 33, 33, 32, 32, 8, torch.float16, True, id="block_m>block_n"),
    pytest.param(1, 1, 1, 37, 37, 16, 8, 32, torch.float32, True, id="block_n>block_m"),
    pytest.param(1, 1, 1, 20, 53, 64, 16, 16, torch.float16, False, id="cross-d64"),
    pytest.param(1, 4, 1, 24, 24, 8, 16, 16, torch.float32, True, id="mqa"),
]


@pytest.mark.parametrize("batch, heads, heads_kv, n_q, n_k, head_dim, block_m, block_n, dtype, causal", FLASH_CASES)
def test_flash_counts_equal_closed_form(batch, heads, heads_kv, n_q, n_k, head_dim, block_m, block_n, dtype,
                                        causal):
    q, k, v = _qkv(batch, heads, n_q, head_dim, heads_kv=heads_kv, n_k=n_k, dtype=dtype)
    log, _ = _count_flash(q, k, v, causal, block_m, block_n)
    expected = flash.hbm_bytes(**_sizes(q, k), block_m=block_m, block_n=block_n, causal=causal)
    assert log.by_tensor() == expected  # no "?" key: every byte belongs to a named tensor
    # One program per (Q block, batch * head), in the interpreter's grid order; Q read once.
    n_q_blocks = -(-n_q // block_m)
    assert list(log.by_program()) == [(i, bh, 0) for i in range(n_q_blocks) for bh in range(batch * heads)]
    assert log.total("Q") == q.numel() * q.element_size()


# (B, H, H_kv, N_q, N_k, D, BLOCK_M, BLOCK_N, BLOCK_K, dtype, causal)
NAIVE_CASES = [
    pytest.param(1, 2, 1, 45, 45, 16, 16, 16, 8, torch.float16, True, id="ragged-causal-gqa-fp16"),
    pytest.param(1, 2, 2, 45, 45, 16, 32, 16, 16, torch.float32, False, id="ragged-fp32"),
    pytest.param(1, 1, 1, 1, 1, 16, 16, 16, 16, torch.float32, True, id="n1"),
    pytest.param(1, 1, 1, 20, 37, 32, 8, 16, 32, torch.float16, False, id="cross"),
    pytest.param(2, 2, 1, 17, 17, 8, 16, 4, 4, torch.float32, True, id="tiny-tiles"),
]


@pytest.mark.parametrize("batch, heads, heads_kv, n_q, n_k, head_dim, block_m, block_n, block_k, dtype, causal",
                         NAIVE_CASES)
def test_naive_counts_equal_closed_form(batch, heads, heads_kv, n_q, n_k, head_dim, block_m, block_n, block_k,
                                        dtype, causal):
    q, k, v = _qkv(batch, heads, n_q, head_dim, heads_kv=heads_kv, n_k=n_k, dtype=dtype)
    log = _count_naive(q, k, v, causal, block_m, block_n, block_k)
    expected = naive.hbm_bytes(**_sizes(q, k), block_m=block_m, block_n=block_n, block_k=block_k, causal=causal)
    assert log.by_tensor() == expected
    # The N^2 traffic: S written once and read once, P written once, in the inputs' dtype.
    n2_bytes = batch * heads * n_q * n_k * q.element_size()
    assert log.total("S", "store") == log.total("S", "load") == log.total("P", "store") == n2_bytes


@settings(max_examples=8, deadline=None, derandomize=True)
@given(
    n=st.integers(1, 40),
    head_dim=st.sampled_from([4, 16]),
    block_m=st.sampled_from([4, 16]),
    block_n=st.sampled_from([8, 32]),
    causal=st.booleans(),
    dtype=st.sampled_from([torch.float16, torch.float32]),
)
def test_counts_equal_closed_forms_sweep(n, head_dim, block_m, block_n, causal, dtype):
    q, k, v = _qkv(1, 2, n, head_dim, heads_kv=1, dtype=dtype, seed=n)
    log, _ = _count_flash(q, k, v, causal, block_m, block_n)
    assert log.by_tensor() == flash.hbm_bytes(**_sizes(q, k), block_m=block_m, block_n=block_n, causal=causal)
    log = _count_naive(q, k, v, causal, block_m, block_n, head_dim)
    expected = naive.hbm_bytes(**_sizes(q, k), block_m=block_m, block_n=block_n, block_k=head_dim, causal=causal)
    assert log.by_tensor() == expected


def _total(by_tensor):
    return sum(kinds["load"] + kinds["store"] for kinds in by_tensor.values())


def test_naive_over_flash_grows_with_n():
    """Standard attention's bytes outgrow FlashAttention's as N grows: counted, then in closed form."""
    ratios = []
    for n in (16, 32, 64):
        q, k, v = _qkv(1, 1, n, 16, dtype=torch.float16)
        naive_bytes = _count_naive(q, k, v, False, 16, 16, 16).total()
        flash_bytes = _count_flash(q, k, v, False, 16, 16)[0].total()
        ratios.append(naive_bytes / flash_bytes)
    assert ratios == sorted(ratios) and len(set(ratios)) == 3 and ratios[0] > 1
    # With fixed tiles both are Theta(N^2): per head, naive moves ~(4 + d/BLOCK_N + 2 d/BLOCK_M) N^2
    # elements (S, P twice each; Q; K and V) and flash 2 d/BLOCK_M N^2 (K and V), so the ratio
    # rises towards 3.5 for d = BLOCK_M = BLOCK_N = BLOCK_K = 64.
    sizes = dict(batch=1, heads=1, heads_kv=1, head_dim=64, itemsize=2, block_m=64, block_n=64)
    model = [_total(naive.hbm_bytes(n_q=n, n_k=n, block_k=64, **sizes)) / _total(flash.hbm_bytes(n_q=n, n_k=n, **sizes))
             for n in (64, 1024, 16384)]
    assert model == sorted(model) and 3.4 < model[-1] < 3.5


def test_flash_causal_reads_fewer_kv_bytes():
    q, k, v = _qkv(1, 1, 64, 16, dtype=torch.float16)
    full, _ = _count_flash(q, k, v, False, 16, 16)
    causal, _ = _count_flash(q, k, v, True, 16, 16)
    # 4 Q blocks visit 1 + 2 + 3 + 4 of the 4 K/V tiles: 10 / 16 of the K and V bytes.
    assert causal.total("K") * 16 == full.total("K") * 10
    assert causal.total("Q") == full.total("Q") and causal.total("O") == full.total("O")


# --------------------------------------------------------------------------
# The counter itself, on a kernel whose traffic is known by hand
# --------------------------------------------------------------------------


@triton.jit
def _copy(X, Y, n, BLOCK: tl.constexpr):
    """Y[i] = X[i] for i < n (masked), then Y[0] read and written unmasked by program 0."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(Y + offs, tl.load(X + offs, mask=offs < n), mask=offs < n)
    if tl.program_id(0) == 0:
        tl.store(Y, tl.load(Y) + 1)


def _copy_log(x, y, names):
    with count_io(names) as log:
        _copy[(triton.cdiv(x.numel(), 8), )](x, y, x.numel(), BLOCK=8)
    return log


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.int64], ids=str)
def test_counts_masked_in_elements_of_each_access(dtype):
    x = torch.arange(13, dtype=dtype)
    y = torch.zeros_like(x)
    log = _copy_log(x, y, {"X": x, "Y": y})
    size = x.element_size()
    # Program 0: 8 elements and then Y[0] twice; program 1: the 5 its mask lets through.
    assert log.accesses == [
        Access((0, 0, 0), "X", "load", 8 * size, 8),
        Access((0, 0, 0), "Y", "store", 8 * size, 8),
        Access((0, 0, 0), "Y", "load", size, 1),
        Access((0, 0, 0), "Y", "store", size, 1),
        Access((1, 0, 0), "X", "load", 5 * size, 5),
        Access((1, 0, 0), "Y", "store", 5 * size, 5),
    ]
    assert log.by_tensor() == {"X": {"load": 13 * size, "store": 0}, "Y": {"load": size, "store": 14 * size}}
    assert log.by_program() == {(0, 0, 0): 18 * size, (1, 0, 0): 10 * size}
    assert log.total(kind="store", program=(1, 0, 0)) == 5 * size
    assert y[0] == 1 and torch.equal(y[1:], x[1:])  # counting changed nothing the kernel did


def test_unnamed_bytes_and_attribute():
    x, y = torch.arange(13.0), torch.zeros(13)
    log = _copy_log(x, y, {"X": x})
    assert log.by_tensor() == {"X": {"load": 52, "store": 0}, "?": {"load": 4, "store": 56}}
    # Naming part of Y splits program 0's 8-element store; execution order is kept.
    log.attribute("Y[:4]", y[:4])
    assert log.by_tensor() == {"X": {"load": 52, "store": 0}, "Y[:4]": {"load": 4, "store": 20},
                               "?": {"load": 0, "store": 36}}
    assert [(a.tensor, a.elements) for a in log.accesses] == [
        ("X", 8), ("Y[:4]", 4), ("?", 4), ("Y[:4]", 1), ("Y[:4]", 1), ("X", 5), ("?", 5)]
    log.attribute("Y", y)
    assert [a.tensor for a in log.accesses] == ["X", "Y[:4]", "Y", "Y[:4]", "Y[:4]", "X", "Y"]
    assert log.total("Y") + log.total("Y[:4]") == 60


def test_view_is_named_by_its_own_span():
    # Y's second half is named; stores to the first half are nobody's.
    x, y = torch.arange(13.0), torch.zeros(26)
    log = _copy_log(x, y[13:], {"X": x, "Y[:13]": y[:13]})
    assert log.total("Y[:13]") == 0 and log.total("?", "store") == 14 * 4


# --------------------------------------------------------------------------
# The builder is hooked only inside the block
# --------------------------------------------------------------------------

HOOKED = ("create_masked_load", "create_masked_store")


def _hooked():
    return [name for name in HOOKED if name in vars(io_count.interpreter.interpreter_builder)]


def test_builder_is_restored_after_an_error():
    x = torch.arange(4.0)
    with pytest.raises(RuntimeError, match="inside"), count_io({"X": x}):
        assert _hooked() == list(HOOKED)
        raise RuntimeError("inside")
    assert _hooked() == []


def test_blocks_nest():
    x, y = torch.arange(13.0), torch.zeros(13)
    with count_io({"X": x, "Y": y}) as outer:
        inner = _copy_log(x, y, {"X": x})
        assert _hooked() == list(HOOKED)  # the outer block's hooks are back
        _copy[(2, )](x, y, 13, BLOCK=8)
    assert _hooked() == []
    assert inner.total() == 112 and outer.total() == 2 * 112


@pytest.mark.parametrize("tensors, message", [
    (lambda x: [x], "tensors must be a dict of name -> torch.Tensor, got list"),
    (lambda x: {"X": x.numpy()}, "tensors['X'] must be a torch.Tensor, got ndarray"),
    (lambda x: {"X": x, "X[2:]": x[2:]}, "tensors 'X' and 'X[2:]' overlap in memory"),
])
def test_bad_tensors_raise_value_error(tensors, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        with count_io(tensors(torch.arange(4.0))):
            pass
    assert _hooked() == []


def _run_python(script, **env):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **env}
    return subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_refused_without_the_interpreter():
    script = ("from kernels.io_count import count_io\n"
              "try:\n"
              "    with count_io({}):\n"
              "        pass\n"
              "except ValueError as err:\n"
              "    print(err)\n")
    done = _run_python(script, TRITON_INTERPRET="0")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("count_io needs the Triton interpreter")


def test_refuses_another_triton_version():
    script = "import triton\ntriton.__version__ = '9.9.9'\nimport kernels.io_count\n"
    done = _run_python(script)
    assert done.returncode != 0
    assert "ImportError: kernels.io_count hooks private interpreter API of triton==3.8.0; found triton==9.9.9" \
        in done.stderr


# --------------------------------------------------------------------------
# The paper's asymptotic model (Theorem 2 of arXiv:2205.14135)
# --------------------------------------------------------------------------


def test_paper_model():
    # N = 4096, d = 64, 192 KB of fp16 SRAM: M = 98304 elements, inside d <= M <= N d = 262144.
    model = paper_io_model(4096, 64, 192 * 1024, itemsize=2)
    assert model["M"] == 98304 and model["in_range"]
    assert model["standard"] == 4096 * 64 + 4096**2
    assert model["flash"] == pytest.approx(4096**2 * 64**2 / 98304)
    assert model["ratio"] == pytest.approx(model["standard"] / model["flash"])
    # For N >> d the saving tends to M / d^2 = 24 from above.
    ratios = [paper_io_model(n, 64, 192 * 1024)["ratio"] for n in (4096, 16384, 65536)]
    assert ratios == sorted(ratios, reverse=True) and 24 < ratios[-1] < 24.1
    # Below N = M / d the theorem's hypothesis fails: flash would "read" less than its input.
    small = paper_io_model(1024, 64, 192 * 1024)
    assert not small["in_range"] and small["flash"] < 1024 * 64


@pytest.mark.parametrize("args, message", [
    ((0, 64, 1024), "n=0 must be a positive int"),
    ((16, 64.0, 1024), "head_dim=64.0 must be a positive int"),
    ((16, 64, 1, 2), "sram_bytes=1 holds no element of 2 bytes"),
])
def test_paper_model_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        paper_io_model(*args)
