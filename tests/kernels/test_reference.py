"""Tests for the NumPy attention oracle in kernels/reference.py.

Every expected value comes from somewhere independent of the module under
test: PyTorch's scaled_dot_product_attention (float64), masks built with
plain Python loops, or hand-computed numbers.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernels import reference as ref

ATOL = 1e-12
RTOL = 1e-10
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------
# Independent helpers (no calls into kernels.reference)
# --------------------------------------------------------------------------


def rand(rng, *shape):
    return rng.standard_normal(shape)


def qkv(rng, B, H, H_kv, N_q, N_k, D):
    return rand(rng, B, H, N_q, D), rand(rng, B, H_kv, N_k, D), rand(rng, B, H_kv, N_k, D)


def loop_mask(n_q, n_k, causal=False, window=None, key_padding_mask=None):
    """The "may attend" mask, one element at a time, shape (B or 1, 1, n_q, n_k)."""
    B = 1 if key_padding_mask is None else key_padding_mask.shape[0]
    mask = np.zeros((B, 1, n_q, n_k), dtype=bool)
    for b in range(B):
        for i in range(n_q):
            for j in range(n_k):
                ok = True
                if causal and j > i:
                    ok = False
                if window is not None:
                    if causal and not (i - window < j <= i):
                        ok = False
                    if not causal and not abs(i - j) < window:
                        ok = False
                if key_padding_mask is not None and not key_padding_mask[b, j]:
                    ok = False
                mask[b, 0, i, j] = ok
    return mask


def sdpa(q, k, v, *, attn_mask=None, is_causal=False, scale=None):
    """PyTorch's attention in float64; GQA handled by torch itself (enable_gqa)."""
    t = torch.from_numpy
    out = F.scaled_dot_product_attention(
        t(q), t(k), t(v),
        attn_mask=None if attn_mask is None else t(attn_mask),
        is_causal=is_causal, scale=scale, enable_gqa=True,
    )
    return out.numpy()


def masked_scores(q, k, scale, mask):
    """Scaled scores for one head, -inf where hidden. q (N_q, D), k (N_k, D)."""
    return np.where(mask, (q @ k.T) * scale, -np.inf)


# --------------------------------------------------------------------------
# attention_mask
# --------------------------------------------------------------------------


@pytest.mark.parametrize("n_q, n_k", [(1, 1), (5, 5), (4, 7), (7, 3)])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("window", [None, 1, 2, 4])
def test_attention_mask_matches_loops(n_q, n_k, causal, window):
    got = ref.attention_mask(n_q, n_k, causal=causal, window=window)
    assert got.dtype == bool and got.shape == (1, 1, n_q, n_k)
    np.testing.assert_array_equal(got, loop_mask(n_q, n_k, causal, window))


def test_attention_mask_with_padding():
    kpm = np.array([[True, True, False, True], [False, False, False, False], [True] * 4])
    got = ref.attention_mask(3, 4, causal=True, key_padding_mask=kpm)
    assert got.shape == (3, 1, 3, 4)
    np.testing.assert_array_equal(got, loop_mask(3, 4, True, None, kpm))


def test_attention_mask_known_window():
    # window=2, causal: each query sees itself and the one key before it.
    expected = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]], dtype=bool)
    np.testing.assert_array_equal(ref.attention_mask(4, 4, causal=True, window=2)[0, 0], expected)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(window=0), "window"),
        (dict(window=-3), "window"),
        (dict(key_padding_mask=np.ones((2, 5), dtype=bool)), "key_padding_mask"),
        (dict(key_padding_mask=np.ones((2, 4))), "key_padding_mask"),
    ],
)
def test_attention_mask_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ref.attention_mask(3, 4, **kwargs)


# --------------------------------------------------------------------------
# softmax
# --------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_matches_torch(axis):
    x = rand(np.random.default_rng(0), 3, 4, 7) * 5
    expected = torch.softmax(torch.from_numpy(x), dim=axis).numpy()
    np.testing.assert_allclose(ref.softmax(x, axis=axis), expected, rtol=RTOL, atol=ATOL)


def test_softmax_is_stable_for_huge_scores():
    x = np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1001.0, -1002.0]])
    expected = torch.softmax(torch.from_numpy(x), dim=-1).numpy()
    got = ref.softmax(x)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


def test_softmax_mask_and_fully_masked_row():
    x = rand(np.random.default_rng(1), 3, 5)
    mask = np.array([[1, 0, 1, 1, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=bool)
    got = ref.softmax(x, mask)
    assert not np.any(np.isnan(got))
    assert np.all(got[~mask] == 0.0)
    np.testing.assert_array_equal(got[1], np.zeros(5))  # nothing visible: zeros, not NaN
    for r in (0, 2):
        expected = torch.softmax(torch.from_numpy(x[r][mask[r]]), dim=0).numpy()
        np.testing.assert_allclose(got[r][mask[r]], expected, rtol=RTOL, atol=ATOL)


def test_softmax_treats_minus_inf_as_masked():
    got = ref.softmax(np.array([[-np.inf, 0.0, 0.0], [-np.inf, -np.inf, -np.inf]]))
    np.testing.assert_array_equal(got, [[0.0, 0.5, 0.5], [0.0, 0.0, 0.0]])


# --------------------------------------------------------------------------
# attention
# --------------------------------------------------------------------------

# (B, H, H_kv, N_q, N_k, D, causal); N_q != N_k is mostly non-causal, but one
# causal case checks the top-left alignment that PyTorch's is_causal also uses.
ATTENTION_CASES = [
    (2, 4, 4, 7, 7, 8, False),    # MHA
    (2, 4, 4, 7, 7, 8, True),
    (1, 1, 1, 1, 1, 1, False),    # N = 1
    (1, 1, 1, 1, 1, 1, True),
    (2, 4, 2, 5, 9, 64, False),   # GQA, N_q != N_k
    (1, 8, 1, 13, 13, 64, True),  # MQA
    (3, 6, 3, 1, 11, 8, False),   # single query, many keys
    (2, 2, 1, 9, 4, 1, False),    # D = 1
    (1, 3, 3, 17, 17, 1, True),
    (1, 2, 2, 6, 10, 8, True),    # causal, N_q != N_k (top-left aligned)
]


@pytest.mark.parametrize("B, H, H_kv, N_q, N_k, D, causal", ATTENTION_CASES)
def test_attention_matches_sdpa(B, H, H_kv, N_q, N_k, D, causal):
    q, k, v = qkv(np.random.default_rng(B * 100 + N_q), B, H, H_kv, N_q, N_k, D)
    got = ref.attention(q, k, v, causal=causal)
    assert got.shape == (B, H, N_q, D) and got.dtype == np.float64
    np.testing.assert_allclose(got, sdpa(q, k, v, is_causal=causal), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("B, H, H_kv, N_q, N_k, D, causal", ATTENTION_CASES)
def test_attention_gqa_equals_mha_on_repeated_kv(B, H, H_kv, N_q, N_k, D, causal):
    # SDPA without enable_gqa, on k/v expanded by hand with torch.
    q, k, v = qkv(np.random.default_rng(7), B, H, H_kv, N_q, N_k, D)
    t = torch.from_numpy
    k_full = t(k).repeat_interleave(H // H_kv, dim=1)
    v_full = t(v).repeat_interleave(H // H_kv, dim=1)
    expected = F.scaled_dot_product_attention(t(q), k_full, v_full, is_causal=causal).numpy()
    np.testing.assert_allclose(ref.attention(q, k, v, causal=causal), expected, rtol=RTOL, atol=ATOL)


def test_attention_probs_and_scale():
    rng = np.random.default_rng(3)
    q, k, v = qkv(rng, 2, 4, 2, 5, 6, 8)
    out, probs = ref.attention(q, k, v, causal=True, scale=0.3, return_probs=True)
    assert probs.shape == (2, 4, 5, 6)
    np.testing.assert_allclose(out, sdpa(q, k, v, is_causal=True, scale=0.3), rtol=RTOL, atol=ATOL)
    # Expected probabilities in torch, by hand.
    t = torch.from_numpy
    s = t(q) @ t(k).repeat_interleave(2, dim=1).transpose(-1, -2) * 0.3
    s = s.masked_fill(~torch.ones(5, 6, dtype=torch.bool).tril(), float("-inf"))
    np.testing.assert_allclose(probs, torch.softmax(s, dim=-1).numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("causal", [False, True])
def test_attention_padding_mask(causal):
    rng = np.random.default_rng(4)
    B, H, N, D = 3, 4, 6, 8
    q, k, v = qkv(rng, B, H, 2, N, N, D)
    kpm = np.ones((B, N), dtype=bool)
    kpm[0, 4:] = False    # right padding
    kpm[1, :2] = False    # left padding: with causal, queries 0 and 1 see nothing
    kpm[2, :] = False     # nothing at all
    got = ref.attention(q, k, v, causal=causal, key_padding_mask=kpm)
    expected = sdpa(q, k, v, attn_mask=loop_mask(N, N, causal, None, kpm))
    assert not np.any(np.isnan(got))
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(got[2], 0.0)
    if causal:
        np.testing.assert_array_equal(got[1, :, :2], 0.0)


def test_attention_padding_mask_hides_padded_values():
    # Changing k/v at padded positions must not change the output.
    rng = np.random.default_rng(5)
    q, k, v = qkv(rng, 2, 2, 2, 4, 5, 8)
    kpm = np.array([[True, True, True, False, False], [True, False, True, False, True]])
    k2, v2 = k.copy(), v.copy()
    hidden = ~kpm  # (B, N_k)
    k2.transpose(0, 2, 1, 3)[hidden] = 1e3 * rand(rng, hidden.sum(), 2, 8)  # (B, N_k, H_kv, D) view
    v2.transpose(0, 2, 1, 3)[hidden] = 1e3
    np.testing.assert_allclose(
        ref.attention(q, k, v, key_padding_mask=kpm),
        ref.attention(q, k2, v2, key_padding_mask=kpm),
        rtol=RTOL, atol=ATOL,
    )


@pytest.mark.parametrize("n_q, n_k, window, causal", [(8, 8, 1, True), (8, 8, 3, True), (8, 8, 3, False),
                                                       (5, 9, 2, False), (9, 9, 20, False), (1, 1, 1, False)])
def test_attention_sliding_window(n_q, n_k, window, causal):
    q, k, v = qkv(np.random.default_rng(6), 2, 4, 1, n_q, n_k, 8)
    got = ref.attention(q, k, v, causal=causal, window=window)
    expected = sdpa(q, k, v, attn_mask=loop_mask(n_q, n_k, causal, window))
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


@st.composite
def attention_problems(draw):
    B = draw(st.integers(1, 2))
    H_kv = draw(st.integers(1, 3))
    H = H_kv * draw(st.integers(1, 3))
    N_q, N_k = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    D = draw(st.sampled_from([1, 3, 8]))
    causal = draw(st.booleans())
    window = draw(st.none() | st.integers(1, 10))
    kpm = draw(st.none() | st.lists(st.lists(st.booleans(), min_size=N_k, max_size=N_k), min_size=B, max_size=B))
    seed = draw(st.integers(0, 2**32 - 1))
    return B, H, H_kv, N_q, N_k, D, causal, window, None if kpm is None else np.array(kpm, dtype=bool), seed


@FAST
@given(attention_problems())
def test_attention_property_matches_sdpa(problem):
    B, H, H_kv, N_q, N_k, D, causal, window, kpm, seed = problem
    q, k, v = qkv(np.random.default_rng(seed), B, H, H_kv, N_q, N_k, D)
    got = ref.attention(q, k, v, causal=causal, window=window, key_padding_mask=kpm)
    mask = loop_mask(N_q, N_k, causal, window, kpm)
    assert not np.any(np.isnan(got))
    np.testing.assert_allclose(got, sdpa(q, k, v, attn_mask=mask), rtol=RTOL, atol=ATOL)
    # Rows that see no key are exactly zero.
    hidden = ~mask.any(axis=-1)  # (B or 1, 1, N_q)
    np.testing.assert_array_equal(np.broadcast_to(hidden[..., None], got.shape) * got, 0.0)


@pytest.mark.parametrize(
    "shapes, name",
    [
        (((1, 4, 3, 8), (1, 3, 3, 8), (1, 3, 3, 8)), "heads"),
        (((1, 2, 3, 8), (1, 2, 3, 4), (1, 2, 3, 4)), "k must have shape"),
        (((1, 2, 3, 8), (1, 2, 3, 8), (1, 2, 4, 8)), "k and v"),
        (((2, 3, 8), (2, 3, 8), (2, 3, 8)), "q must have shape"),
    ],
)
def test_attention_rejects_bad_shapes(shapes, name):
    q, k, v = (np.zeros(s) for s in shapes)
    with pytest.raises(ValueError, match=name):
        ref.attention(q, k, v)


# --------------------------------------------------------------------------
# split_heads / merge_heads / repeat_kv
# --------------------------------------------------------------------------


def test_split_and_merge_heads_match_torch_and_invert():
    x = rand(np.random.default_rng(8), 2, 5, 12)
    expected = torch.from_numpy(x).view(2, 5, 3, 4).transpose(1, 2).numpy()
    split = ref.split_heads(x, 3)
    assert split.shape == (2, 3, 5, 4)
    np.testing.assert_array_equal(split, expected)
    np.testing.assert_array_equal(ref.merge_heads(split), x)


def test_split_heads_rejects_indivisible_width():
    with pytest.raises(ValueError, match="num_heads=5"):
        ref.split_heads(np.zeros((1, 2, 12)), 5)


@pytest.mark.parametrize("n_rep", [1, 2, 4])
def test_repeat_kv(n_rep):
    k = rand(np.random.default_rng(9), 2, 3, 5, 4)
    got = ref.repeat_kv(k, n_rep)
    assert got.shape == (2, 3 * n_rep, 5, 4)
    np.testing.assert_array_equal(got, torch.from_numpy(k).repeat_interleave(n_rep, dim=1).numpy())
    for h in range(3 * n_rep):  # query head h reads kv head h // n_rep
        np.testing.assert_array_equal(got[:, h], k[:, h // n_rep])


# --------------------------------------------------------------------------
# multi_head_attention
# --------------------------------------------------------------------------


def mha_weights(rng, d_model, num_heads, num_kv_heads, D):
    return (
        rand(rng, d_model, num_heads * D) / math.sqrt(d_model),
        rand(rng, d_model, num_kv_heads * D) / math.sqrt(d_model),
        rand(rng, d_model, num_kv_heads * D) / math.sqrt(d_model),
        rand(rng, num_heads * D, d_model) / math.sqrt(num_heads * D),
    )


def torch_mha(x, w_q, w_k, w_v, w_o, num_heads, num_kv_heads, causal, kpm):
    """Projections, head split, attention and output projection, all in torch."""
    t = torch.from_numpy
    B, N, _ = x.shape
    D = w_q.shape[1] // num_heads
    q = (t(x) @ t(w_q)).view(B, N, num_heads, D).transpose(1, 2)
    k = (t(x) @ t(w_k)).view(B, N, num_kv_heads, D).transpose(1, 2)
    v = (t(x) @ t(w_v)).view(B, N, num_kv_heads, D).transpose(1, 2)
    attn_mask = None if kpm is None else t(loop_mask(N, N, causal, None, kpm))
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=attn_mask, is_causal=causal and kpm is None, enable_gqa=True
    )
    return (out.transpose(1, 2).reshape(B, N, num_heads * D) @ t(w_o)).numpy()


@pytest.mark.parametrize("num_heads, num_kv_heads", [(4, None), (4, 4), (4, 2), (6, 3), (4, 1), (1, 1)])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_multi_head_attention_matches_torch(num_heads, num_kv_heads, causal, padded):
    rng = np.random.default_rng(10)
    B, N, d_model, D = 2, 7, 16, 8
    x = rand(rng, B, N, d_model)
    weights = mha_weights(rng, d_model, num_heads, num_kv_heads or num_heads, D)
    kpm = np.array([[True] * N, [True] * 4 + [False] * (N - 4)]) if padded else None
    got = ref.multi_head_attention(x, *weights, num_heads=num_heads, num_kv_heads=num_kv_heads,
                                   causal=causal, key_padding_mask=kpm)
    expected = torch_mha(x, *weights, num_heads, num_kv_heads or num_heads, causal, kpm)
    assert got.shape == (B, N, d_model)
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("causal", [False, True])
def test_multi_head_attention_matches_torch_mha_forward(causal):
    # A second, fully independent path for plain MHA: PyTorch's own nn.MultiheadAttention kernel.
    rng = np.random.default_rng(11)
    B, N, d_model, H = 2, 5, 12, 3
    x = rand(rng, B, N, d_model)
    w_q, w_k, w_v, w_o = mha_weights(rng, d_model, H, H, d_model // H)
    kpm = np.array([[True] * N, [True, True, True, False, False]])
    t = torch.from_numpy
    xt = t(x).transpose(0, 1)  # (N, B, d_model), the function's default layout
    causal_mask = t(~np.tril(np.ones((N, N), dtype=bool))) if causal else None  # True = hidden
    expected, _ = F.multi_head_attention_forward(
        xt, xt, xt, d_model, H,
        in_proj_weight=None, in_proj_bias=None, bias_k=None, bias_v=None, add_zero_attn=False,
        dropout_p=0.0, out_proj_weight=t(w_o.T.copy()), out_proj_bias=None, training=False,
        key_padding_mask=t(~kpm), need_weights=False, attn_mask=causal_mask,
        use_separate_proj_weight=True,
        q_proj_weight=t(w_q.T.copy()), k_proj_weight=t(w_k.T.copy()), v_proj_weight=t(w_v.T.copy()),
    )
    got = ref.multi_head_attention(x, w_q, w_k, w_v, w_o, num_heads=H, causal=causal, key_padding_mask=kpm)
    np.testing.assert_allclose(got, expected.transpose(0, 1).numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(
    "num_heads, num_kv_heads, shapes, pattern",
    [
        (4, 3, None, r"num_heads \(4\).*num_kv_heads \(3\)"),
        (4, 8, None, r"num_heads \(4\).*num_kv_heads \(8\)"),
        (4, 0, None, "num_kv_heads"),
        (0, None, None, "num_heads"),
        (5, None, None, r"w_q.*num_heads=5"),
        (4, 2, {"w_k": (16, 32)}, r"w_k must have shape \(16, 16\)"),
        (4, 2, {"w_v": (16, 8)}, r"w_v must have shape \(16, 16\)"),
        (4, 2, {"w_o": (32, 15)}, r"w_o must have shape \(32, 16\)"),
        (4, 2, {"x": (7, 16)}, "x must have shape"),
    ],
)
def test_multi_head_attention_rejects_bad_shapes(num_heads, num_kv_heads, shapes, pattern):
    arrays = {"x": (2, 7, 16), "w_q": (16, 32), "w_k": (16, 16), "w_v": (16, 16), "w_o": (32, 16)}
    arrays.update(shapes or {})
    args = [np.zeros(arrays[n]) for n in ("x", "w_q", "w_k", "w_v", "w_o")]
    with pytest.raises(ValueError, match=pattern) as err:
        ref.multi_head_attention(*args, num_heads=num_heads, num_kv_heads=num_kv_heads)
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------
# online_softmax
# --------------------------------------------------------------------------


def test_online_softmax_known_history():
    s = np.array([1.0, 3.0, 2.0])
    result = ref.online_softmax(s, block=1)
    e = math.exp
    expected = [(0, 1, 1.0, 1.0), (1, 2, 3.0, e(-2) + 1), (2, 3, 3.0, e(-2) + 1 + e(-1))]
    assert len(result.history) == 3
    for step, (start, stop, m, l) in zip(result.history, expected):
        assert (step[0], step[1]) == (start, stop)
        assert step[2] == m
        assert step[3] == pytest.approx(l, rel=1e-14)
    np.testing.assert_allclose(result.probs, np.exp(s - 3) / (e(-2) + 1 + e(-1)), rtol=1e-14)


def test_online_softmax_all_masked():
    result = ref.online_softmax(np.full(5, -np.inf), block=2)
    assert [(st_.m, st_.l) for st_ in result.history] == [(-np.inf, 0.0)] * 3
    np.testing.assert_array_equal(result.probs, np.zeros(5))


def test_online_softmax_result_is_frozen():
    result = ref.online_softmax(np.array([0.0, 1.0]))
    with pytest.raises(AttributeError):
        result.probs = None


@pytest.mark.parametrize("block", [0, -1, 1.5])
def test_online_softmax_rejects_bad_block(block):
    with pytest.raises(ValueError, match="block"):
        ref.online_softmax(np.zeros(3), block=block)


score_vectors = st.lists(
    st.one_of(st.floats(-80, 80), st.just(-np.inf)), min_size=1, max_size=40
).map(np.array)


@FAST
@given(score_vectors, st.integers(1, 45))
def test_online_softmax_property(s, block):
    result = ref.online_softmax(s, block=block)
    n = len(s)

    # probs equal the ordinary softmax, computed independently in torch.
    if np.isneginf(s).all():
        expected = np.zeros(n)
    else:
        expected = torch.softmax(torch.from_numpy(s), dim=0).numpy()
    assert not np.any(np.isnan(result.probs))
    np.testing.assert_allclose(result.probs, expected, rtol=1e-12, atol=1e-15)

    # One history entry per block, covering the vector left to right.
    assert len(result.history) == math.ceil(n / block)
    assert [(h[0], h[1]) for h in result.history] == [(a, min(a + block, n)) for a in range(0, n, block)]

    # After each block, (m, l) summarise exactly the prefix read so far.
    for start, stop, m, l in result.history:
        prefix = s[:stop]
        assert m == prefix.max()
        expected_l = 0.0 if m == -np.inf else np.exp(prefix - m).sum()
        assert l == pytest.approx(expected_l, rel=1e-12, abs=0.0)

    # The final state is max and sum(exp(s - max)) of the whole vector.
    assert result.m == s.max()
    assert result.l == pytest.approx(0.0 if s.max() == -np.inf else np.exp(s - s.max()).sum(), rel=1e-12)


# --------------------------------------------------------------------------
# flash_attention_tiled
# --------------------------------------------------------------------------


def needed_tiles(n_q, n_k, block_m, block_n, causal):
    """Tiles holding at least one visible (query, key) pair, found element by element."""
    tiles = set()
    for i in range(n_q):
        for j in range(n_k):
            if not causal or j <= i:
                tiles.add((i // block_m, j // block_n))
    return tiles


@st.composite
def tiled_problems(draw):
    B = draw(st.integers(1, 2))
    H_kv = draw(st.integers(1, 2))
    H = H_kv * draw(st.integers(1, 3))
    N_q, N_k = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    D = draw(st.sampled_from([1, 3, 8]))
    block_m, block_n = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    causal = draw(st.booleans())
    loop_order = draw(st.sampled_from(["fa1", "fa2"]))
    seed = draw(st.integers(0, 2**32 - 1))
    return B, H, H_kv, N_q, N_k, D, block_m, block_n, causal, loop_order, seed


@FAST
@given(tiled_problems())
def test_tiled_property_equals_attention(problem):
    B, H, H_kv, N_q, N_k, D, block_m, block_n, causal, loop_order, seed = problem
    q, k, v = qkv(np.random.default_rng(seed), B, H, H_kv, N_q, N_k, D)
    got = ref.flash_attention_tiled(q, k, v, block_m=block_m, block_n=block_n, loop_order=loop_order, causal=causal)
    assert got.shape == (B, H, N_q, D)
    np.testing.assert_allclose(got, ref.attention(q, k, v, causal=causal), rtol=0, atol=ATOL)


@pytest.mark.parametrize("loop_order", ["fa1", "fa2"])
@pytest.mark.parametrize(
    "B, H, H_kv, N_q, N_k, D, block_m, block_n, causal",
    [
        (1, 2, 2, 10, 10, 64, 4, 3, True),    # ragged tiles both ways
        (2, 4, 1, 7, 13, 64, 3, 5, False),    # MQA, N_q != N_k
        (1, 4, 2, 9, 9, 8, 16, 16, True),     # one tile larger than N
        (1, 1, 1, 1, 1, 1, 1, 1, True),       # N = 1
        (1, 1, 1, 1, 1, 8, 4, 4, False),
        (2, 6, 3, 17, 17, 8, 4, 8, True),     # GQA, BLOCK_M != BLOCK_N
    ],
)
def test_tiled_matches_sdpa(loop_order, B, H, H_kv, N_q, N_k, D, block_m, block_n, causal):
    q, k, v = qkv(np.random.default_rng(12), B, H, H_kv, N_q, N_k, D)
    got = ref.flash_attention_tiled(q, k, v, block_m=block_m, block_n=block_n, loop_order=loop_order,
                                    causal=causal, scale=0.2)
    np.testing.assert_allclose(got, sdpa(q, k, v, is_causal=causal, scale=0.2), rtol=RTOL, atol=ATOL)


@FAST
@given(tiled_problems())
def test_tiled_trace(problem):
    """Visit set, visit order and every recorded state, checked against first principles."""
    B, H, H_kv, N_q, N_k, D, block_m, block_n, causal, loop_order, seed = problem
    q, k, v = qkv(np.random.default_rng(seed), B, H, H_kv, N_q, N_k, D)
    out, steps = ref.flash_attention_tiled(q, k, v, block_m=block_m, block_n=block_n,
                                           loop_order=loop_order, causal=causal, record=True)
    n_rep, scale = H // H_kv, 1 / math.sqrt(D)
    tiles = needed_tiles(N_q, N_k, block_m, block_n, causal)

    # Exactly the needed tiles are visited, each once, per (batch, head), in loop order:
    # fa2 walks Q blocks outside, fa1 walks K/V blocks outside.
    if loop_order == "fa2":
        order = sorted(tiles)
    else:
        order = sorted(tiles, key=lambda ij: (ij[1], ij[0]))
    expected_visits = [(b, h, i, j) for b in range(B) for h in range(H) for i, j in order]
    assert [(s["batch"], s["head"], s["q_block"], s["kv_block"]) for s in steps] == expected_visits
    if not causal:
        assert len(tiles) == math.ceil(N_q / block_m) * math.ceil(N_k / block_n)

    full_mask = loop_mask(N_q, N_k, causal)[0, 0]
    for s in steps:
        b, h, i, j = s["batch"], s["head"], s["q_block"], s["kv_block"]
        rows = slice(i * block_m, min((i + 1) * block_m, N_q))
        seen = slice(0, min((j + 1) * block_n, N_k))  # keys folded in so far
        scores = masked_scores(q[b, h, rows], k[b, h // n_rep, seen], scale, full_mask[rows, seen])
        m = scores.max(axis=1)
        p = np.exp(scores - m[:, None])
        np.testing.assert_allclose(s["m"], m, rtol=0, atol=ATOL)
        np.testing.assert_allclose(s["l"], p.sum(axis=1), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(s["acc"], p @ v[b, h // n_rep, seen], rtol=RTOL, atol=ATOL)

    # The last step of each Q block holds the answer: acc / l is the output row.
    last = {}
    for s in steps:
        last[(s["batch"], s["head"], s["q_block"])] = s
    assert len(last) == B * H * math.ceil(N_q / block_m)
    for (b, h, i), s in last.items():
        rows = slice(i * block_m, min((i + 1) * block_m, N_q))
        np.testing.assert_allclose(s["acc"] / s["l"][:, None], out[b, h, rows], rtol=0, atol=ATOL)


def test_tiled_causal_skips_tiles_above_diagonal():
    # N = 8, 2x2 tiles of size 4: the top-right tile (q_block 0, kv_block 1) is never visited.
    q, k, v = qkv(np.random.default_rng(13), 1, 1, 1, 8, 8, 4)
    for loop_order in ("fa1", "fa2"):
        _, steps = ref.flash_attention_tiled(q, k, v, block_m=4, block_n=4, loop_order=loop_order,
                                             causal=True, record=True)
        visited = [(s["q_block"], s["kv_block"]) for s in steps]
        assert (0, 1) not in visited
        assert sorted(visited) == [(0, 0), (1, 0), (1, 1)]


def test_tiled_fa1_and_fa2_visit_orders_differ():
    q, k, v = qkv(np.random.default_rng(14), 1, 1, 1, 6, 6, 4)
    orders = {}
    for loop_order in ("fa1", "fa2"):
        _, steps = ref.flash_attention_tiled(q, k, v, block_m=3, block_n=3, loop_order=loop_order, record=True)
        orders[loop_order] = [(s["q_block"], s["kv_block"]) for s in steps]
    assert orders["fa2"] == [(0, 0), (0, 1), (1, 0), (1, 1)]  # Q blocks outer
    assert orders["fa1"] == [(0, 0), (1, 0), (0, 1), (1, 1)]  # K/V blocks outer


def test_tiled_fa1_and_fa2_reach_the_same_states():
    # Same math in a different order: the state of tile (i, j) does not depend on the loop order.
    q, k, v = qkv(np.random.default_rng(15), 2, 2, 1, 7, 9, 8)
    traces = {}
    for loop_order in ("fa1", "fa2"):
        _, steps = ref.flash_attention_tiled(q, k, v, block_m=3, block_n=4, loop_order=loop_order,
                                             causal=True, record=True)
        traces[loop_order] = {(s["batch"], s["head"], s["q_block"], s["kv_block"]): s for s in steps}
    assert traces["fa1"].keys() == traces["fa2"].keys()
    for key, s1 in traces["fa1"].items():
        s2 = traces["fa2"][key]
        for name in ("m", "l", "acc"):
            np.testing.assert_allclose(s1[name], s2[name], rtol=RTOL, atol=ATOL)


def test_tiled_record_false_returns_only_output():
    q, k, v = qkv(np.random.default_rng(16), 1, 1, 1, 3, 3, 2)
    out = ref.flash_attention_tiled(q, k, v, block_m=2, block_n=2)
    assert isinstance(out, np.ndarray) and out.shape == (1, 1, 3, 2)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(block_m=0, block_n=2), "block_m"),
        (dict(block_m=-1, block_n=2), "block_m"),
        (dict(block_m=2, block_n=0), "block_n"),
        (dict(block_m=2, block_n=2.0), "block_n"),
        (dict(block_m=2, block_n=2, loop_order="fa3"), "loop_order"),
    ],
)
def test_tiled_rejects_bad_arguments(kwargs, name):
    q, k, v = qkv(np.random.default_rng(17), 1, 1, 1, 3, 3, 2)
    with pytest.raises(ValueError, match=name):
        ref.flash_attention_tiled(q, k, v, **kwargs)
