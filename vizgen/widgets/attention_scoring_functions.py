"""attention-scoring-functions: additive, dot and scaled-dot scores side by side, as d_k grows.

At every stop of the d_k slider, `kernels.scoring.score_statistics` samples n rows of
one query and m keys with iid N(0, 1) components, scores them with Bahdanau's additive
function (arXiv:1409.0473), Luong's dot product (arXiv:1508.04025) and Vaswani's
scaled dot product (arXiv:1706.03762, §3.2.1), and measures the variance of the
scores, the softmax entropy, the largest weight and the softmax gradient. The widget
shows each function's score histogram and one sampled softmax row.
"""

from __future__ import annotations

import math

import numpy as np

from kernels import scoring

N_ROWS = 512  # sampled query rows per d_k: enough for a variance within ±4% at d_k = 4
M_KEYS = 16  # keys per row: a short sentence, and 16 bars still readable on a phone
SEED = 0
# The slider: powers of two from 4 to 512 and the half-octaves between them.
D_KS = (4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
HIST_BINS = 40
AXIS_SIGMAS = 4  # beyond ±4σ: ~0.5 of 8,192 normal samples, counted in the end bins
EXAMPLE_ROW = 0  # the sampled row drawn as softmax bars (the first one: not picked)
FACT_D_KS = (4, 64, 512)  # the stops the post quotes
START_D_K = 64  # the slider opens at the Transformer base model's d_k = 512 / 8 heads (§3.2.2)

FUNCTIONS = (
    {"key": "additive", "label": "Additive", "paper": "Bahdanau et al. 2014",
     "formula": "e = v_aᵀ tanh(W_a s + U_a h)"},
    {"key": "dot", "label": "Dot", "paper": "Luong et al. 2015",
     "formula": "e = qᵀk"},
    {"key": "scaled_dot", "label": "Scaled dot", "paper": "Vaswani et al. 2017",
     "formula": "e = qᵀk / √d_k"},
)


def _nice_step(span: float, ticks: int = 4) -> float:
    """The 1-2-5 step that puts about `ticks` ticks on each side of zero."""
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    return next(f * power for f in (1, 2, 5, 10) if f * power >= raw)


def _axis(stats: dict[str, scoring.ScoreStats]) -> dict:
    """One symmetric score axis for all three panels: ±AXIS_SIGMAS standard deviations
    of the widest function (a sample's maximum would make the axis jump from noise)."""
    reach = AXIS_SIGMAS * math.sqrt(max(s.variance for s in stats.values()))
    step = _nice_step(reach)
    hi = step * math.ceil(reach / step)
    return {"lo": -hi, "hi": hi, "ticks": [step * i for i in range(-round(hi / step), round(hi / step) + 1)]}


def _panel(stats: scoring.ScoreStats, axis: dict) -> dict:
    inside = np.clip(stats.scores, axis["lo"], axis["hi"])  # the rare tail lands in the end bins
    counts, _ = np.histogram(inside, bins=HIST_BINS, range=(axis["lo"], axis["hi"]))
    return {
        "variance": stats.variance,
        "entropy": stats.entropy,
        "max_weight": stats.max_weight,
        "gradient_norm": stats.gradient_norm,
        "hist": counts,
        "row_scores": stats.scores[EXAMPLE_ROW],
        "row_weights": stats.weights[EXAMPLE_ROW],
    }


def _caption(d_k: int, stats: dict[str, scoring.ScoreStats]) -> str:
    dot, scaled = stats["dot"], stats["scaled_dot"]
    return (f"d_k = {d_k}: raw q·k has variance {dot.variance:.1f} (about d_k), a standard "
            f"deviation of {math.sqrt(dot.variance):.1f}, and the top key takes {dot.max_weight:.0%} of the weight "
            f"(entropy {dot.entropy:.2f} nats). Divided by √d_k = {math.sqrt(d_k):.3g}, the variance is "
            f"{scaled.variance:.2f} and the entropy {scaled.entropy:.2f} of at most ln {M_KEYS} = "
            f"{math.log(M_KEYS):.2f}.")


def _stop(d_k: int) -> tuple[dict, dict[str, scoring.ScoreStats]]:
    stats = scoring.score_statistics(d_k, N_ROWS, M_KEYS, SEED)
    axis = _axis(stats)
    stop = {
        "d_k": d_k,
        "sqrt_d_k": math.sqrt(d_k),
        "axis": axis,
        "panels": [_panel(stats[f["key"]], axis) for f in FUNCTIONS],
        "caption": _caption(d_k, stats),
    }
    return stop, stats


def trace() -> dict:
    stops, facts = [], {}
    for d_k in D_KS:
        stop, stats = _stop(d_k)
        stops.append(stop)
        if d_k in FACT_D_KS:
            facts.update(_facts_at(d_k, stats))
    setting = {
        "n": N_ROWS, "m": M_KEYS, "seed": SEED, "bins": HIST_BINS, "start": D_KS.index(START_D_K),
        "log_m": math.log(M_KEYS), "uniform_gradient_norm": scoring.uniform_gradient_norm(M_KEYS),
        "functions": list(FUNCTIONS),
    }
    facts.update(
        n=N_ROWS, m=M_KEYS, seed=SEED, d_k_min=D_KS[0], d_k_max=D_KS[-1],
        samples=f"{N_ROWS * M_KEYS:,}", log_m=f"{math.log(M_KEYS):.2f}",
        uniform_gradient_norm=f"{scoring.uniform_gradient_norm(M_KEYS):.3f}",
    )
    return {"data": {"stops": stops, "setting": setting}, "facts": facts}


def _facts_at(d_k: int, stats: dict[str, scoring.ScoreStats]) -> dict:
    facts = {f"variance_stderr_{d_k}": f"{scoring.variance_standard_error(d_k, N_ROWS, M_KEYS):.2g}"}
    for name, s in stats.items():
        facts[f"{name}_variance_{d_k}"] = f"{s.variance:.2f}" if s.variance < 10 else f"{s.variance:.1f}"
        facts[f"{name}_entropy_{d_k}"] = f"{s.entropy:.2f}"
        facts[f"{name}_max_weight_{d_k}"] = f"{s.max_weight:.2f}"
        facts[f"{name}_gradient_norm_{d_k}"] = f"{s.gradient_norm:.3f}"
    return facts
