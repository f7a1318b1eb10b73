"""attention-pattern-zoo: what six attention methods actually compute, at the same N.

Six N x N maps, N = 256 ... 8192: dense attention, the Sparse Transformer's strided
pattern (Child et al. 2019, arXiv:1904.10509), a sliding window and the sliding window
with a global token (Longformer, Beltagy et al. 2020, arXiv:2004.05150; BigBird's random
keys as a variant, Zaheer et al. 2020, arXiv:2007.14062), Reformer's LSH buckets
(Kitaev et al. 2020, arXiv:2001.04451) and Linformer's low-rank projection (Wang et al.
2020, arXiv:2006.04768). Every map is drawn from the (query, key) pairs the method in
`kernels.approx` scored when it ran, coarsened to CELLS x CELLS blocks; Linformer
scores no pair, so its map shows the N x k scores it did compute and the N x N matrix
it only implies. Beside each map: pairs scored, counted FLOPs, the analytic float64
working set and, up to MAX_MEASURED_N, the measured error and needle weight
(`kernels.approx.measure`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kernels.approx import chunked, measure, sparse

D = 64  # head dimension, as in BERT-base and GPT-2 heads
SEED = 0
NS = (256, 512, 1024, 2048, 4096, 8192)  # the N slider's stops
DEFAULT_N = 1024
CELLS = 64  # every map is 64 x 64 blocks: N / 64 positions per block side
MAX_MEASURED_N = 2048  # errors need the exact output and the needle task: a few seconds each up to here
LEVELS = 8  # block shades: LEVELS = every pair scored, each level below half as dense, 1 = sparser still
ERROR_DIGITS = 2
NEEDLE_DIGITS = 3


@dataclass(frozen=True)
class Panel:
    """One map of the zoo: which method of `kernels.approx.measure` runs, with what budget."""

    key: str  # the trace's name for it
    title: str
    source: str  # paper and arXiv id
    method: str | None  # a key of measure.METHODS; None: dense attention
    overrides: tuple = ()  # (name, value) changes to measure.default_budgets(N)[method]

    def budget(self, n: int) -> dict:
        if self.method is None:
            return {}
        return {**measure.default_budgets(n)[self.method], **dict(self.overrides)}


PANELS = (
    Panel("dense", "Dense", "Vaswani et al. 2017 · arXiv:1706.03762", None),
    Panel("strided", "Strided", "Sparse Transformer · arXiv:1904.10509", "strided"),
    Panel("window", "Sliding window", "Longformer's local part · arXiv:2004.05150", "longformer", (("global_tokens", ()),)),
    Panel("global", "Sliding + global", "Longformer · arXiv:2004.05150", "longformer"),
    Panel("lsh", "LSH buckets", "Reformer · arXiv:2001.04451", "reformer"),
    Panel("lowrank", "Low-rank", "Linformer · arXiv:2006.04768", "linformer"),
)
# The exact attention each error is measured against (result.Baseline values).
BASELINE_LABELS = {"full": "full", "causal": "causal", "shared_qk": "shared-QK"}
# The toggle on the sliding + global map (keyed by that map): BigBird's graph, random keys added.
VARIANTS = {"global": Panel("bigbird", "Sliding + global", "BigBird, + random keys · arXiv:2007.14062", "bigbird")}


# --------------------------------------------------------------------------
# Numbers as the widget prints them
# --------------------------------------------------------------------------


def binary_bytes(n_bytes: int) -> str:
    """Binary units, as memory is allocated, 3 significant digits: 4.53 MiB, 17.0 MiB, 288 KiB."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n_bytes >= scale:
            return f"{_three_digits(n_bytes / scale)} {unit}"
    return f"{n_bytes} B"


def flop_text(flops: int) -> str:
    """Decimal prefixes, as FLOPs are counted: 17.3 M, 2.15 G (the unit is the counter's label)."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if flops >= scale:
            return f"{_three_digits(flops / scale)} {unit}"
    return str(flops)


def _three_digits(x: float) -> str:
    """1 <= x < 1024 with 3 significant digits, trailing zeros kept: 1.50, 17.0, 288, 1000."""
    x = float(f"{x:.3g}")  # round first: 9.996 -> 10.0 has one digit fewer after the point
    return f"{x:.{max(0, 2 - math.floor(math.log10(x)))}f}"


def percent(part: float, whole: float) -> float:
    """part / whole in percent, to 3 significant digits."""
    return float(f"{100 * part / whole:.3g}")


# --------------------------------------------------------------------------
# Maps
# --------------------------------------------------------------------------


def shade_levels(share: np.ndarray) -> list[str]:
    """(cells, cells) scored share of each block -> one string of digits per row.

    0: no pair scored; LEVELS: every pair; each level below halves the share, and level 1
    holds everything sparser, so a block with a single scored pair stays visible.
    """
    share = np.asarray(share, dtype=np.float64)
    if share.ndim != 2 or np.any((share < 0) | (share > 1)):
        raise ValueError(f"share must be a 2-D array of fractions in [0, 1], got shape {share.shape}")
    with np.errstate(divide="ignore"):
        level = LEVELS + np.floor(np.log2(share))  # -inf where nothing was scored
    level = np.where(share > 0, np.clip(level, 1, LEVELS), 0).astype(int)
    return ["".join(str(x) for x in row) for row in level]


def _dense_grid() -> np.ndarray:
    """Dense attention scores every pair: every block is full."""
    return np.ones((CELLS, CELLS))


# --------------------------------------------------------------------------
# One method at one N
# --------------------------------------------------------------------------


def _budget_text(panel: Panel, n: int, budget: dict) -> str:
    if panel.method is None:
        return "every query × every key"
    if panel.method == "strided":
        return f"stride l = {budget['stride']}, causal"
    if panel.method in ("longformer", "bigbird"):
        text = f"window w = {budget['window']}"
        if budget["global_tokens"]:
            text += " + token " + ", ".join(str(g) for g in budget["global_tokens"])
        if budget.get("random_keys"):
            text += f" + {budget['random_keys']} random"
        return text
    if panel.method == "reformer":
        return f"{budget['n_rounds']} rounds, {budget['n_buckets']} buckets, chunk {budget['chunk_size']}"
    k = budget["k"]
    return f"k = {k} means of ~{n / k:.0f} keys"


def _measured(panel: Panel, n: int, budget: dict) -> dict:
    """Error and needle weight on `measure`'s inputs (N <= MAX_MEASURED_N)."""
    if panel.method is None:  # dense attention is the reference itself
        task = measure.retrieval_task(n, D, SEED)
        return {"error": 0.0, "needle": task.exact_weight, "exact_needle": task.exact_weight}
    ev = measure.evaluate(panel.method, n, D, SEED, **budget)
    return {"error": ev.error, "needle": ev.retrieval_weight, "exact_needle": ev.exact_retrieval_weight}


def _run(panel: Panel, n: int, inputs: measure.Inputs) -> dict:
    """Pairs, FLOPs, peak and map of one method at one N, from its run."""
    budget = panel.budget(n)
    dense_flops = chunked.chunked_attention_flops(n, D)  # 4 N^2 D
    if panel.method is None:
        # Dense = Rabe & Staats' loop with one N x N tile: every score and weight at once.
        flops, peak, pairs, baseline = dense_flops, chunked.chunked_attention_peak_bytes(n, D, n, n), n * n, "full"
        grid, scores = _dense_grid(), n * n
    else:
        result = measure.run_method(panel.method, inputs, **budget)
        flops, peak, baseline = result.flops, result.peak_bytes, result.baseline.value
        pairs = 0 if result.implicit else result.pairs.count
        grid = None if result.implicit else result.pairs.density_grid(CELLS)
        scores = n * budget["k"] if result.implicit else pairs  # Linformer: N x k scores
    cell = {
        "pairs": pairs,
        "scores": scores,
        "share": percent(scores, n * n),
        "flops": flops,
        "flops_text": flop_text(flops),
        "flops_share": percent(flops, dense_flops),
        "peak_bytes": peak,
        "peak_text": binary_bytes(peak),
        "budget": _budget_text(panel, n, budget),
        "baseline": BASELINE_LABELS[baseline],
        "levels": None if grid is None else shade_levels(grid),
    }
    if grid is None:
        cell["k"] = budget["k"]
    if n <= MAX_MEASURED_N:
        measured = _measured(panel, n, budget)
        error_text = "0 (reference)" if panel.method is None else f"{measured['error']:.{ERROR_DIGITS}f}"
        cell.update(error=measured["error"], needle=measured["needle"], exact_needle=measured["exact_needle"],
                    error_text=error_text, needle_text=f"{measured['needle']:.{NEEDLE_DIGITS}f}")
    return cell


def _caption(n: int, cells: dict) -> str:
    dense = cells["dense"]
    patterns = [cells[key] for key in ("strided", "window", "global", "lsh")]
    lo, hi = min(c["share"] for c in patterns), max(c["share"] for c in patterns)
    peak = max(c["peak_bytes"] for c in patterns)
    return (f"N = {n:,}: dense attention scores all {dense['pairs']:,} pairs in {dense['peak_text']}; "
            f"the sparse patterns score {lo:g}–{hi:g}% of them in at most {binary_bytes(peak)}, "
            f"and Linformer none: N·k = {cells['lowrank']['scores']:,} scores against pooled keys.")


def _stop(n: int) -> dict:
    inputs = measure.generic_inputs(n, D, SEED)
    cells = {panel.key: _run(panel, n, inputs) for panel in PANELS}
    variants = {key: _run(panel, n, inputs) for key, panel in VARIANTS.items()}
    return {"n": n, "cells": cells, "variants": variants, "caption": _caption(n, cells)}


# --------------------------------------------------------------------------
# The trace
# --------------------------------------------------------------------------


def _panel_data(panel: Panel) -> dict:
    return {"key": panel.key, "title": panel.title, "source": panel.source, "implicit": panel.method == "linformer"}


def trace() -> dict:
    stops = [_stop(n) for n in NS]
    facts = _facts(stops)
    data = {
        "d": D, "seed": SEED, "cells": CELLS, "levels": LEVELS, "max_measured_n": MAX_MEASURED_N,
        "ns": list(NS), "default": NS.index(DEFAULT_N), "gather_slots": sparse.PAIRS_PER_STEP,
        "panels": [_panel_data(p) for p in PANELS],
        "variants": {key: _panel_data(p) for key, p in VARIANTS.items()},
        "exact_needle_text": facts["exact_needle"],
        "stops": stops,
    }
    return {"data": data, "facts": facts}


def _facts(stops: list[dict]) -> dict:
    facts = {"d": D, "cells": CELLS, "max_measured_n": f"{MAX_MEASURED_N:,}",
             "n_min": f"{NS[0]:,}", "n_max": f"{NS[-1]:,}"}
    for stop in stops:
        n = stop["n"]
        named = {**stop["cells"], **{VARIANTS[key].key: cell for key, cell in stop["variants"].items()}}
        for key, cell in named.items():
            facts[f"{key}_pairs_{n}"] = f"{cell['pairs']:,}"
            facts[f"{key}_share_{n}"] = f"{cell['share']:g}%"
            facts[f"{key}_flops_share_{n}"] = f"{cell['flops_share']:g}%"
            facts[f"{key}_peak_{n}"] = cell["peak_text"]
            if "k" in cell:
                facts[f"{key}_k_{n}"] = cell["k"]
            if "error_text" in cell:
                if key != "dense":  # dense is the reference: its error is 0 by construction
                    facts[f"{key}_error_{n}"] = cell["error_text"]
                facts[f"{key}_needle_{n}"] = cell["needle_text"]
    facts["exact_needle"] = f"{stops[0]['cells']['dense']['exact_needle']:.{NEEDLE_DIGITS}f}"
    return facts
