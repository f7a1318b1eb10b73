"""Number formats decode and round like torch's casts; the FP8 attention schemes behave
as FlashAttention-3 (arXiv:2407.08608, Sections 3.3 and 4.3) says they should."""

import math

import numpy as np
import pytest
import torch

from kernels import lowp, reference
from kernels.lowp import BF16, E2M1, E4M3, E5M2, FP16

TORCH_DTYPES = {FP16: torch.float16, BF16: torch.bfloat16, E4M3: torch.float8_e4m3fn, E5M2: torch.float8_e5m2}
PATTERN_VIEWS = {8: torch.uint8, 16: torch.int16}


def torch_decode(fmt) -> torch.Tensor:
    """Every pattern of `fmt` decoded by torch, by reinterpreting the bits."""
    patterns = torch.arange(1 << fmt.bits).to(PATTERN_VIEWS[fmt.bits])  # int16 wraps like C
    return patterns.view(TORCH_DTYPES[fmt]).double()


def torch_bits(x32: torch.Tensor, fmt) -> torch.Tensor:
    """torch's cast of float32 `x32` to `fmt`, as unsigned bit patterns."""
    bits = x32.to(TORCH_DTYPES[fmt]).view(PATTERN_VIEWS[fmt.bits]).long()
    return bits & ((1 << fmt.bits) - 1)


def same_values(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal, NaN where the other is NaN, and with the same sign of zero."""
    nan = torch.isnan(a)
    return bool(torch.equal(nan, torch.isnan(b)) and torch.equal(a[~nan], b[~nan])
                and torch.equal(torch.signbit(a[~nan]), torch.signbit(b[~nan])))


# --------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("fmt", list(TORCH_DTYPES), ids=lambda f: f.name)
def test_every_pattern_decodes_as_torch_does(fmt):
    assert same_values(lowp.all_values(fmt), torch_decode(fmt))


def test_e2m1_holds_the_ocp_mx_values():
    # OCP MX v1.0: sign-magnitude, patterns 0..7 positive, 8..15 their negatives.
    magnitudes = [0, 0.5, 1, 1.5, 2, 3, 4, 6]
    values = lowp.all_values(E2M1).tolist()
    assert values[:8] == magnitudes
    assert values[8:] == [-m for m in magnitudes]
    assert math.copysign(1, values[8]) == -1  # pattern 1000 is -0


@pytest.mark.parametrize("fmt, finite, max_, min_normal, min_subnormal", [
    (FP16, 65536 - 2 * 1024, 65504.0, 2.0**-14, 2.0**-24),
    (BF16, 65536 - 2 * 128, (2 - 2.0**-7) * 2.0**127, 2.0**-126, 2.0**-133),
    (E4M3, 256 - 2, 448.0, 2.0**-6, 2.0**-9),
    (E5M2, 256 - 2 * 4, 57344.0, 2.0**-14, 2.0**-16),
    (E2M1, 16, 6.0, 1.0, 0.5),
], ids=lambda v: getattr(v, "name", None))
def test_summaries_match_the_specifications(fmt, finite, max_, min_normal, min_subnormal):
    stats = lowp.summary(fmt)
    assert stats["finite"] == finite
    assert stats["distinct_finite"] == finite - 1  # +0 and -0
    assert (stats["max"], stats["min_normal"], stats["min_subnormal"]) == (max_, min_normal, min_subnormal)
    assert stats["epsilon"] == 2.0**-fmt.mantissa_bits
    assert stats["nan_patterns"] + stats["inf_patterns"] + finite == 1 << fmt.bits


def test_e5m2_is_the_top_byte_of_fp16_and_bf16_the_top_half_of_fp32():
    top = torch.arange(256)
    assert same_values(lowp.decode(top, E5M2), lowp.decode(top << 8, FP16))
    half = torch.arange(1 << 16)
    as_fp32 = (half << 16).to(torch.int32).view(torch.float32)  # the low 16 bits zero
    assert same_values(lowp.decode(half, BF16), as_fp32.double())


def test_e4m3_without_the_fn_rule_would_stop_at_240():
    ieee = lowp.FloatFormat("E4M3 IEEE", 4, 3, 7, "ieee")
    assert ieee.max == 240.0 and E4M3.max == 448.0


def test_bad_patterns_are_rejected():
    with pytest.raises(ValueError, match="bits"):
        lowp.decode([256], E4M3)


# --------------------------------------------------------------------------- encoding


def float32_probe(fmt, seed: int = 0) -> torch.Tensor:
    """Float32 inputs that exercise every rounding case of `fmt`: random bit patterns
    (all magnitudes, subnormals, inf, NaN), every value, every midpoint between
    neighbours and the float32 numbers just either side of it, and overflow."""
    generator = torch.Generator().manual_seed(seed)
    random_bits = torch.randint(-(1 << 31), 1 << 31, (200_000,), generator=generator, dtype=torch.int64)
    random = random_bits.to(torch.int32).view(torch.float32)
    magnitudes = lowp.all_values(fmt)
    magnitudes = magnitudes[torch.isfinite(magnitudes) & (magnitudes >= 0)].sort().values
    beyond = magnitudes[-1] + (magnitudes[-1] - magnitudes[-2])
    extended = torch.cat((magnitudes, beyond.reshape(1)))
    mids = ((extended[:-1] + extended[1:]) / 2).float()
    near = torch.cat((mids, torch.nextafter(mids, torch.tensor(0.0)), torch.nextafter(mids, torch.tensor(math.inf))))
    special = torch.tensor([0.0, math.inf, math.nan, 1e30, float(beyond) * 4], dtype=torch.float32)
    exact = magnitudes.float()
    probe = torch.cat((random, exact, near, special))
    return torch.cat((probe, -probe))


@pytest.mark.parametrize("fmt", list(TORCH_DTYPES), ids=lambda f: f.name)
def test_rounding_matches_torch_casts_bit_for_bit(fmt):
    x32 = float32_probe(fmt)
    ours = lowp.encode(x32.double(), fmt)
    theirs = torch_bits(x32, fmt)
    finite = ~torch.isnan(x32)
    assert torch.equal(ours[finite], theirs[finite])
    # NaN payloads differ between torch's casts; NaN-ness does not.
    assert bool(torch.isnan(lowp.decode(ours[~finite], fmt)).all())


@pytest.mark.parametrize("fmt", lowp.FORMATS, ids=lambda f: f.name)
def test_round_trip_of_every_value(fmt):
    patterns = torch.arange(1 << fmt.bits)
    values = lowp.decode(patterns, fmt)
    keep = ~torch.isnan(values)
    assert torch.equal(lowp.encode(values[keep], fmt), patterns[keep])


@pytest.mark.parametrize("fmt", lowp.FORMATS, ids=lambda f: f.name)
def test_exact_midpoints_round_to_the_even_pattern(fmt):
    positive = lowp.all_values(fmt)[: 1 << (fmt.bits - 1)]
    finite = positive[torch.isfinite(positive)]
    mids = (finite[:-1] + finite[1:]) / 2  # between pattern p and p + 1
    chosen = lowp.encode(mids, fmt)
    assert bool((chosen % 2 == 0).all())
    p = torch.arange(len(mids))
    assert bool(((chosen == p) | (chosen == p + 1)).all())
    # A hair either side of the midpoint picks the nearer neighbour instead.
    assert torch.equal(lowp.encode(torch.nextafter(mids, torch.zeros_like(mids)), fmt), p)
    assert torch.equal(lowp.encode(torch.nextafter(mids, finite[1:]), fmt), p + 1)


@pytest.mark.parametrize("fmt", lowp.FORMATS, ids=lambda f: f.name)
def test_rounding_is_monotonic_and_agrees_with_decode_of_encode(fmt):
    generator = torch.Generator().manual_seed(1)
    x = (torch.randn(50_000, generator=generator, dtype=torch.float64) * 4).exp2() * fmt.max / 64
    x = torch.cat((x, -x)).sort().values
    rounded = lowp.round_to(x, fmt)
    assert bool((rounded[1:] >= rounded[:-1]).all())
    assert same_values(rounded, lowp.decode(lowp.encode(x, fmt), fmt))


def test_overflow_saturates_where_there_is_no_infinity():
    assert lowp.encode([1e6, -math.inf, 464.0], E4M3).tolist() == [0x7E, 0xFE, 0x7E]
    assert lowp.round_to([100.0, -7.0, 5.0], E2M1).tolist() == [6.0, -6.0, 4.0]  # 5: tie to 4 (even)
    assert lowp.encode([65519.99, 65520.0], FP16).tolist() == [0x7BFF, 0x7C00]  # max, then +inf
    assert lowp.encode([61439.0, 61440.0], E5M2).tolist() == [0x7B, 0x7C]


def test_e2m1_has_no_nan_to_encode():
    with pytest.raises(ValueError, match="x: E2M1 has no NaN"):
        lowp.encode([math.nan], E2M1)


# --------------------------------------------------------------------------- quantisation


def test_block_scales_map_each_block_max_to_the_format_max():
    x = torch.randn(2, 3, 64, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    codes, scale = lowp.quantize_codes(x, E4M3, block_rows=16)
    blocks = codes.abs().reshape(2, 3, 4, 16, 8).amax(dim=(-2, -1))
    assert bool((blocks == E4M3.max).all())
    per_row = scale.reshape(2, 3, 4, 16)
    assert bool((per_row == per_row[..., :1]).all())  # one scale per block
    torch.testing.assert_close(codes * scale, lowp.quantize(x, E4M3, 16))


def test_quantisation_error_is_relative_to_each_value():
    x = torch.randn(1, 1, 128, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    q = lowp.quantize(x, E4M3)
    codes, scale = lowp.quantize_codes(x, E4M3)
    normal = codes.abs() >= 2.0**-6  # E4M3 normal range: half an ulp is 2^-4 of the value at most
    assert bool(((q - x).abs()[normal] <= x.abs()[normal] * 2.0**-4).all())


def test_block_scales_rescue_small_blocks_next_to_a_huge_one():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 1, 256, 32, generator=generator, dtype=torch.float64) * 1e-3
    x[..., :128, :] *= 1e5  # one block 10^5 times larger: with its scale the small one underflows
    per_tensor = (lowp.quantize(x, E4M3) - x)[..., 128:, :].abs().mean()
    per_block = (lowp.quantize(x, E4M3, 128) - x)[..., 128:, :].abs().mean()
    assert per_block < per_tensor / 10


def test_block_rows_must_divide_the_rows():
    with pytest.raises(ValueError, match="block_rows"):
        lowp.quantize(torch.ones(1, 1, 100, 8), E4M3, block_rows=64)


# --------------------------------------------------------------------------- Hadamard


@pytest.mark.parametrize("d", [1, 2, 4, 8, 64, 128, 256])
def test_fwht_equals_the_explicit_sylvester_matrix(d):
    x = torch.randn(3, 5, d, generator=torch.Generator().manual_seed(d), dtype=torch.float64)
    h = lowp.sylvester_hadamard(d)
    assert torch.equal(h @ h.T, d * torch.eye(d, dtype=torch.float64))  # a Hadamard matrix
    torch.testing.assert_close(lowp.fwht(x), x @ h / math.sqrt(d), rtol=0, atol=1e-13)
    torch.testing.assert_close(lowp.fwht(lowp.fwht(x)), x, rtol=0, atol=1e-13)  # H/sqrt(d) is its own inverse


def test_random_hadamard_rotation_preserves_q_kt():
    q = lowp.outlier_inputs((2, 4, 64, 128), 10.0, seed=1)
    k = lowp.outlier_inputs((2, 4, 64, 128), 10.0, seed=2)
    signs = lowp.random_signs(128, seed=3)
    assert set(signs.tolist()) == {-1.0, 1.0}
    rq, rk = lowp.rotate(q, signs), lowp.rotate(k, signs)
    m = torch.diag(signs) @ lowp.sylvester_hadamard(128) / math.sqrt(128)  # M = D H, orthogonal
    torch.testing.assert_close(rq, q @ m, rtol=0, atol=1e-12)
    torch.testing.assert_close(rq @ rk.transpose(-1, -2), q @ k.transpose(-1, -2), rtol=0, atol=1e-11)
    torch.testing.assert_close(rq.norm(dim=-1), q.norm(dim=-1), rtol=1e-14, atol=0)
    # The point: an outlier is spread over the row, so the largest entry shrinks.
    assert rq.abs().max() < q.abs().max() / 2


def test_fwht_needs_a_power_of_two():
    with pytest.raises(ValueError, match="power of two"):
        lowp.fwht(torch.ones(3, 96))


# --------------------------------------------------------------------------- outlier inputs


def test_outlier_inputs_follow_fa3s_distribution():
    base = lowp.outlier_inputs((1000, 1000), 0.0, seed=5)
    x10 = lowp.outlier_inputs((1000, 1000), 10.0, seed=5)
    x20 = lowp.outlier_inputs((1000, 1000), 20.0, seed=5)
    spikes = x10 - base
    hits = int((spikes != 0).sum())
    assert abs(hits - 1000) < 5 * math.sqrt(1000)  # Bernoulli(0.001) over 10^6 entries
    assert spikes[spikes != 0].std() == pytest.approx(10.0, rel=0.1)
    assert base.std() == pytest.approx(1.0, rel=0.01)
    torch.testing.assert_close(x20 - base, 2 * spikes)  # a sweep over sigma moves only the spikes
    assert torch.equal(x10, lowp.outlier_inputs((1000, 1000), 10.0, seed=5))


# --------------------------------------------------------------------------- attention


def _inputs(sigma: float, seed: int, n: int = 256, d: int = 64):
    return [lowp.outlier_inputs((1, 2, n, d), sigma, seed=3 * seed + i) for i in range(3)]


@pytest.mark.parametrize("scheme", list(lowp.SCHEMES))
def test_with_a_wide_format_every_scheme_is_plain_attention(scheme):
    q, k, v = _inputs(10.0, seed=0)
    exact = reference.attention(q.numpy(), k.numpy(), v.numpy())
    out = lowp.attention_fp8(q, k, v, scheme, block_m=64, block_n=32, fmt=FP16)
    assert lowp.rmse(out, exact) < 1e-3  # FP16 rounding only: scales, blocks and M cancel


def test_e4m3_attention_error_is_small_without_outliers():
    q, k, v = _inputs(0.0, seed=0)
    exact = reference.attention(q.numpy(), k.numpy(), v.numpy())
    out = lowp.attention_fp8(q, k, v, "per-tensor")
    assert 1e-4 < lowp.rmse(out, exact) < 1e-2


def test_error_falls_from_per_tensor_to_per_block_to_hadamard_on_outliers():
    """FA3's Table 3 ordering, on its N(0, 1) + N(0, 100) Bernoulli(0.001) inputs."""
    errors = {scheme: [] for scheme in lowp.SCHEMES}
    for seed in range(4):
        q, k, v = _inputs(10.0, seed, n=1024, d=128)
        exact = reference.attention(q[:, :1].numpy(), k[:, :1].numpy(), v[:, :1].numpy())
        for scheme in errors:
            out = lowp.attention_fp8(q[:, :1], k[:, :1], v[:, :1], scheme, signs_seed=seed)
            errors[scheme].append(lowp.rmse(out, exact))
    mean = {scheme: np.mean(e) for scheme, e in errors.items()}
    assert mean["per-tensor"] > mean["per-block"] > mean["per-block + Hadamard"]
    assert mean["per-tensor"] > 1.3 * mean["per-block + Hadamard"]  # the rotation is the big step


def test_attention_is_deterministic():
    q, k, v = _inputs(10.0, seed=2)
    first = lowp.attention_fp8(q, k, v, "per-block + Hadamard", signs_seed=4)
    assert torch.equal(first, lowp.attention_fp8(q, k, v, "per-block + Hadamard", signs_seed=4))


def test_unknown_scheme_is_rejected():
    q, k, v = _inputs(1.0, seed=0, n=128)
    with pytest.raises(ValueError, match="scheme"):
        lowp.attention_fp8(q, k, v, "per-channel")
