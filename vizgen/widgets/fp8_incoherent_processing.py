"""fp8-incoherent-processing: what FP8 can hold, and why FlashAttention-3 rotates Q and K.

Top: the five number formats of `kernels.lowp`, every value found by decoding every
bit pattern. Bottom: the RMSE of emulated FP8 (E4M3) attention against an fp64
reference on FA3's outlier inputs, N(0, 1) + N(0, sigma^2) * Bernoulli(0.001)
(Shah et al. 2024, arXiv:2407.08608, Section 4.3), for the four quantisation schemes
of its Table 3, at five outlier magnitudes sigma, beside the paper's numbers at its
sigma = 10.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from kernels import lowp, reference
from vizgen.fmt import sci

FORMATS = (
    (lowp.FP16, "FP16", "IEEE half precision"),
    (lowp.BF16, "BF16", "bfloat16"),
    (lowp.E4M3, "E4M3", "FP8 E4M3 (fn)"),
    (lowp.E5M2, "E5M2", "FP8 E5M2"),
    (lowp.E2M1, "E2M1", "FP4 E2M1 (OCP MX)"),
)
LISTED_BITS = 8  # formats this narrow send every value; wider ones a count per binade

# The measurement. FA3 does not state N, d or the number of heads for Table 3.
HEAD_DIM = 128  # FA3's FP8 kernels run d = 64, 128, 256; 128 is the common LLM head
N_CTX = 1024  # enough keys per row that outlier channels of q and k collide
HEADS = 1
BLOCK_M = BLOCK_N = 128  # one scale per 128 x d block: a typical FA3 tile height
SEEDS = 4  # independent draws of Q, K, V and of the random signs
SIGMA = 10.0  # FA3's outlier std: N(0, 100)
SIGMAS = (1.0, 3.0, 10.0, 30.0, 100.0)  # sigma = 1: the "outliers" are ordinary entries
SHOWN_DIGITS = 4  # RMSEs in the trace: enough to read, few enough to be stable

# FA3 Table 3, FP8 (e4m3) rows, RMSE vs an FP64 reference: (the paper's label, RMSE).
PAPER_TABLE3 = {
    "per-tensor": ("Baseline FP8", 2.4e-2),
    "per-block": ("No incoherent processing", 2.4e-2),
    "per-tensor + Hadamard": ("No block quant", 9.3e-3),
    "per-block + Hadamard": ("FlashAttention-3 FP8", 9.1e-3),
}
BASELINE, BEST = "per-tensor", "per-block + Hadamard"


# --------------------------------------------------------------------------
# Number formats
# --------------------------------------------------------------------------


def _format_data(fmt: lowp.FloatFormat, short: str, long: str) -> dict:
    stats = lowp.summary(fmt)
    values = lowp.all_values(fmt)[: 1 << (fmt.bits - 1)]  # sign bit 0, by pattern
    positive = values[torch.isfinite(values) & (values > 0)]
    min_normal = stats["min_normal"]
    exponents = torch.floor(torch.log2(positive)).long()  # binade of each value
    lo, hi = int(exponents.min()), int(exponents.max())
    counts = torch.bincount(exponents - lo, minlength=hi - lo + 1)
    data = {
        "name": short,
        "exponent_bits": fmt.exponent_bits,
        "mantissa_bits": fmt.mantissa_bits,
        "bias": fmt.bias,
        "stats": stats,
        "shown": _shown_stats(stats),
        "example": _max_example(fmt),
        "binades": {"lo": lo, "counts": counts, "first_normal": int(math.log2(min_normal))},
        "note": _note(fmt, long, stats),
    }
    if fmt.bits <= LISTED_BITS:
        data["values"] = [
            {"v": float(v), "bits": _bit_string(int(p), fmt), "sub": bool(v < min_normal)}
            for p, v in enumerate(values.tolist()) if math.isfinite(v) and v > 0
        ]
    return data


def _bit_string(pattern: int, fmt: lowp.FloatFormat) -> str:
    """'0 1111 110': sign, exponent and mantissa fields of a pattern."""
    bits = format(pattern, f"0{fmt.bits}b")
    e = 1 + fmt.exponent_bits
    return f"{bits[0]} {bits[1:e]} {bits[e:]}"


def _max_example(fmt: lowp.FloatFormat) -> dict:
    """The largest finite value, its bit fields and how they decode to it."""
    bits = _bit_string(int(lowp.encode(fmt.max, fmt)), fmt)
    _, exponent, mantissa = (int(field, 2) for field in bits.split(" "))
    return {
        "bits": bits,
        "formula": f"(1 + {mantissa}/{1 << fmt.mantissa_bits}) × 2^({exponent} − {fmt.bias})"
                   f" = {_readable(fmt.max)}",
    }


def _note(fmt: lowp.FloatFormat, long: str, stats: dict) -> str:
    """One sentence on what sets this format apart, with its numbers."""
    layout = f"{long}: {fmt.exponent_bits} exponent bits, {fmt.mantissa_bits} mantissa bits, bias {fmt.bias}."
    if fmt.specials == "ieee":
        special = (f"The all-ones exponent is kept for ±∞ and NaN ({stats['nan_patterns']:,} NaN patterns), "
                   f"so the top binade is lost to specials.")
    elif fmt.specials == "fn":
        ieee = lowp.FloatFormat("IEEE-style", fmt.exponent_bits, fmt.mantissa_bits, fmt.bias, "ieee")
        nan = f"S.{'1' * fmt.exponent_bits}.{'1' * fmt.mantissa_bits}"
        special = (f"No ∞: the all-ones exponent is an ordinary binade but for {nan} = NaN, "
                   f"which lifts the max from {_readable(ieee.max)} (IEEE rules) to {_readable(fmt.max)}.")
    else:
        special = f"No ∞, no NaN: all {stats['patterns']} patterns are numbers."
    return f"{layout} {special}"


def _shown_stats(stats: dict) -> dict:
    return {
        "finite": f"{stats['finite']:,} ({stats['distinct_finite']:,} distinct: ±0)",
        "max": _readable(stats["max"]),
        "min_normal": _power(stats["min_normal"]),
        "min_subnormal": _power(stats["min_subnormal"]),
        "specials": f"{stats['nan_patterns']:,} NaN, {stats['inf_patterns']} ∞",
    }


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _readable(x: float) -> str:
    """448 → '448', 65504 → '65,504', 3.39e38 → '3.39 × 10³⁸'."""
    if x == int(x) and abs(x) < 1e6:
        return f"{int(x):,}"
    return sci(x, 3)


def _power(x: float) -> str:
    """An exact power of two as '2⁻⁹ = 0.001953125', or '2⁻²⁴ ≈ 5.96 × 10⁻⁸' when tiny."""
    exponent = math.log2(x)
    assert exponent == int(exponent), f"{x} is not a power of two"
    value = f"= {x:.10g}" if x >= 1e-3 else f"≈ {sci(x, 3)}"  # 2^-k has k decimals: exact down to 1e-3
    return "2" + str(int(exponent)).translate(_SUPERSCRIPT) + f" {value}"


# --------------------------------------------------------------------------
# FP8 attention error on outlier inputs
# --------------------------------------------------------------------------


def _errors(sigma: float) -> dict[str, list[float]]:
    """RMSE of every scheme against the fp64 reference, one per seed."""
    errors = {scheme: [] for scheme in lowp.SCHEMES}
    for seed in range(SEEDS):
        shape = (1, HEADS, N_CTX, HEAD_DIM)  # (B, H, N, d)
        q, k, v = (lowp.outlier_inputs(shape, sigma, seed=3 * seed + i) for i in range(3))
        exact = reference.attention(q.numpy(), k.numpy(), v.numpy())  # fp64 oracle
        for scheme in lowp.SCHEMES:
            out = lowp.attention_fp8(q, k, v, scheme, block_m=BLOCK_M, block_n=BLOCK_N, signs_seed=seed)
            errors[scheme].append(_round(lowp.rmse(out, exact)))
    return errors


def _round(x: float) -> float:
    return float(f"{x:.{SHOWN_DIGITS}g}")


def _stop(sigma: float) -> dict:
    """Everything the widget shows for one outlier magnitude."""
    errors = _errors(sigma)
    mean = {scheme: _round(float(np.mean(e))) for scheme, e in errors.items()}
    bars = []
    for scheme, per_seed in errors.items():
        bar = {"scheme": scheme, "ours": mean[scheme], "lo": min(per_seed), "hi": max(per_seed),
               "ours_text": _decimal(mean[scheme]), "relative": mean[scheme] / mean[BASELINE]}
        if sigma == SIGMA:  # the paper measured this one setting only
            label, paper = PAPER_TABLE3[scheme]
            bar.update(paper=paper, paper_text=_decimal(paper), paper_label=label,
                       paper_relative=paper / PAPER_TABLE3[BASELINE][1])
        bars.append(bar)
    gain = mean[BASELINE] / mean[BEST]
    return {"sigma": sigma, "bars": bars, "gain": gain, "caption": _caption(sigma, mean, gain)}


def _caption(sigma: float, mean: dict, gain: float) -> str:
    block = mean[BASELINE] / mean["per-block"]
    text = (f"σ = {sigma:g}: per-tensor error ÷ per-block + Hadamard error = {gain:.2f} "
            f"(÷ per-block alone: {block:.2f}).")
    if sigma == SIGMA:
        paper = PAPER_TABLE3[BASELINE][1] / PAPER_TABLE3[BEST][1]
        text += f" FA3 measured this setting on an H100: {paper:.1f} (Table 3)."
    elif sigma < SIGMA and gain < 1.05:
        text += " Without large outliers the scale is not the problem: E4M3's 3 mantissa bits are."
    return text


def _decimal(x: float) -> str:
    """RMSE as a plain decimal with 2 significant digits: 0.024, 0.0091."""
    return f"{x:.2g}" if x >= 1e-4 else sci(x, 2)


# --------------------------------------------------------------------------
# The trace
# --------------------------------------------------------------------------


def trace() -> dict:
    formats = [_format_data(*entry) for entry in FORMATS]
    stops = [_stop(sigma) for sigma in SIGMAS]
    setting = {
        "n_ctx": N_CTX, "head_dim": HEAD_DIM, "heads": HEADS, "seeds": SEEDS,
        "block_m": BLOCK_M, "block_n": BLOCK_N, "sigma": SIGMA,
        "fraction": lowp.OUTLIER_FRACTION, "schemes": list(lowp.SCHEMES),
    }
    data = {"formats": formats, "stops": stops, "setting": setting}
    return {"data": data, "facts": _facts(formats, stops)}


def _scheme_key(scheme: str) -> str:
    """'per-block + Hadamard' -> 'per_block_hadamard'."""
    return scheme.replace(" + ", "_").replace("-", "_").lower()


def _facts(formats: list[dict], stops: list[dict]) -> dict:
    facts = {}
    for entry in formats:
        key, stats = entry["name"].lower(), entry["stats"]
        facts[f"{key}_finite_patterns"] = stats["finite"]
        facts[f"{key}_distinct_values"] = stats["distinct_finite"]
        facts[f"{key}_max"] = entry["shown"]["max"]
        facts[f"{key}_min_normal"] = entry["shown"]["min_normal"]
        facts[f"{key}_min_subnormal"] = entry["shown"]["min_subnormal"]
        facts[f"{key}_next_after_one"] = repr(1 + stats["epsilon"])  # exact: 1 + 2^-m fits in float64
    ieee_e4m3 = lowp.FloatFormat("IEEE-style E4M3", 4, 3, 7, "ieee")
    facts["e4m3_max_if_ieee"] = _readable(ieee_e4m3.max)

    paper_stop = next(stop for stop in stops if stop["sigma"] == SIGMA)
    bars = {bar["scheme"]: bar for bar in paper_stop["bars"]}
    for scheme, bar in bars.items():
        facts[f"rmse_{_scheme_key(scheme)}"] = bar["ours_text"]
        facts[f"paper_rmse_{_scheme_key(scheme)}"] = bar["paper_text"]
    facts["ratio"] = f"{paper_stop['gain']:.1f}×"
    facts["paper_ratio"] = f"{PAPER_TABLE3[BASELINE][1] / PAPER_TABLE3[BEST][1]:.1f}×"
    facts["block_only_ratio"] = f"{bars[BASELINE]['ours'] / bars['per-block']['ours']:.2f}×"
    for stop in stops:
        facts[f"ratio_sigma_{stop['sigma']:g}"] = f"{stop['gain']:.2f}×"
    facts.update(
        n_ctx=N_CTX, head_dim=HEAD_DIM, heads=HEADS, seeds=SEEDS, block_m=BLOCK_M, block_n=BLOCK_N,
        outlier_std=f"{SIGMA:g}", outlier_fraction=f"{lowp.OUTLIER_FRACTION:.1%}",
    )
    return facts
