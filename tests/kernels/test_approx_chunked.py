"""Tests for kernels/approx/chunked.py (Rabe & Staats chunked exact attention)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernels import reference as ref
from kernels.approx import chunked
from kernels.approx.measure import measured_peak_bytes
from kernels.approx.result import Coverage

FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def qkv(n, d, seed=0):
    return np.random.default_rng(seed).standard_normal((3, n, d))


@FAST
@given(
    n=st.integers(1, 70),
    d=st.integers(1, 8),
    qc=st.integers(1, 80),
    kc=st.integers(1, 80),
    causal=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_equals_sdpa_for_any_chunking(n, d, qc, kc, causal, seed):
    q, k, v = qkv(n, d, seed)
    t = [torch.from_numpy(x)[None, None] for x in (q, k, v)]
    expected = F.scaled_dot_product_attention(*t, is_causal=causal)[0, 0].numpy()
    got = chunked.chunked_attention(q, k, v, query_chunk=qc, key_chunk=kc, causal=causal)
    np.testing.assert_allclose(got.out, expected, atol=1e-12, rtol=1e-10)
    assert got.coverage is Coverage.ALL


def test_flops_are_dense_and_causal_skips_chunks():
    n, d = 96, 4
    q, k, v = qkv(n, d)
    assert chunked.chunked_attention(q, k, v, query_chunk=32, key_chunk=32).flops == chunked.chunked_attention_flops(n, d)
    # causal, 3 x 3 chunks of 32: the 3 chunks above the diagonal are skipped
    assert chunked.chunked_attention(q, k, v, query_chunk=32, key_chunk=32, causal=True).flops == 6 * 4 * 32 * 32 * d


def test_memory_stays_flat_while_dense_grows_as_n_squared():
    d, chunk = 16, 64
    extra = {}
    for n in (256, 1024):
        q, k, v = qkv(n, d)
        got, measured = measured_peak_bytes(chunked.chunked_attention, q, k, v, query_chunk=chunk, key_chunk=chunk)
        assert got.peak_bytes <= measured <= 3 * got.peak_bytes
        _, dense = measured_peak_bytes(ref.attention, q[None, None], k[None, None], v[None, None])
        extra[n] = (measured - 8 * n * d, dense)  # working set beyond the output; the oracle's peak
    assert extra[1024][0] < 1.5 * extra[256][0]  # flat in N
    assert extra[1024][1] > 10 * extra[256][1]  # 16x more scores
    assert extra[1024][0] < extra[1024][1] / 50


@pytest.mark.parametrize("kwargs", [{"query_chunk": 0}, {"key_chunk": -1}])
def test_bad_chunks_raise(kwargs):
    with pytest.raises(ValueError, match="chunk"):
        chunked.chunked_attention(*qkv(4, 2), **kwargs)
