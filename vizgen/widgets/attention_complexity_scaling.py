"""attention-complexity-scaling: memory and FLOPs of attention against N, up to N = 10^6.

Four families on log-log axes, each at the budget the kernels use
(`kernels.approx.measure.scaling_curves` for FLOPs, `score_memory` for the score-sized
tensor it materialises): dense O(N^2), the Sparse Transformer's strided pattern
O(N sqrt N) (Child et al. 2019, arXiv:1904.10509), Reformer's LSH attention (Kitaev et
al. 2020, arXiv:2001.04451; O(N log N) in the paper, which counts the sort) and
Performer's FAVOR+ O(N) (Choromanski et al. 2021, arXiv:2009.14794). Scaled to one
forward pass of a BERT-large-shaped model (24 layers x 16 heads, d = 64; Devlin et al.
2019, arXiv:1810.04805), fp16, batch 1, beside one 80 GB GPU (`kernels.gpu_specs`).
A third view shows wall times measured once on a CPU by `scripts/bench_approx_cpu.py`
(docs/data/approx_cpu_times.json), one head, at the N that machine could run.
"""

from __future__ import annotations

import json

import numpy as np

from kernels import gpu_specs
from kernels.approx import measure
from vizgen import paths
from vizgen.fmt import binary_bytes, flops, seconds, significant

CPU_TIMES = paths.ROOT / "docs" / "data" / "approx_cpu_times.json"

HEAD_DIM = 64  # BERT-large: 1024 hidden / 16 heads
HEADS, LAYERS = 16, 24  # BERT-large (Devlin et al. 2019, Section 3: L = 24, A = 16)
DTYPE_BYTES = 2  # fp16
RANK = FEATURES = 256  # Linformer k and Performer m (measure.scaling_curves' defaults)
STOPS = tuple(2**k for k in range(8, 20)) + (10**6,)  # the N slider: 256 ... 524,288, then 10^6
CURVE_POINTS = 61  # log-spaced samples per curve between 256 and 10^6: smooth at any width
SHOWN_DIGITS = 4  # curve values in the trace: far below a pixel on a log axis
GPU = gpu_specs.H100  # the A100 80GB has the same 80 GB (gpu_specs: hbm_bytes)

# Family key -> (label, short label, complexity class, the closed form and budget it is drawn with).
METHODS = {
    "dense": ("Dense (exact)", "Dense", "O(N²)", "4N²D FLOPs; N² probabilities"),
    "strided": ("Sparse Transformer, strided", "Strided", "O(N√N)", "4D·|S| FLOPs, |S| ≈ 2N√N pairs (stride ⌈√N⌉)"),
    "reformer": ("Reformer LSH", "Reformer", "O(N log N)*",
                 "4 rounds × (N·D·b + 4N·64·D) FLOPs, b = N/64 buckets; 4 × N × 64 chunk scores"),
    "performer": ("Performer FAVOR+", "Performer", "O(N)", "8NmD + 4Nm FLOPs, m = 256; 2Nm + mD features"),
}

# Context lengths of three landmark models (verified against their papers).
MARKERS = (
    {"key": "gpt2", "label": "GPT-2", "year": 2019, "n": 1024,
     "source": "Radford et al. 2019, §2.3: context 1,024 tokens"},
    {"key": "longformer", "label": "Longformer", "year": 2020, "n": 4096,
     "source": "Beltagy et al. 2020, arXiv:2004.05150: pretrained to 4,096 positions"},
    {"key": "gemini", "label": "Gemini 1.5", "year": 2024, "n": 10**6,
     "source": "Gemini Team 2024, arXiv:2403.05530: 1M tokens served, 10M in research"},
)


def _round(x: float) -> float:
    return float(f"{x:.{SHOWN_DIGITS}g}")


def _model_scale() -> int:
    return HEADS * LAYERS


def model_memory(ns) -> dict[str, np.ndarray]:
    """Bytes of score-sized tensors per forward pass, whole model, fp16. (P,) per family."""
    mem = measure.score_memory(ns, HEAD_DIM, rank=RANK, n_features=FEATURES)
    return {key: getattr(mem, key) * DTYPE_BYTES * _model_scale() for key in METHODS}


def model_flops(ns) -> dict[str, np.ndarray]:
    """Attention FLOPs per forward pass, whole model. (P,) per family."""
    curves = measure.scaling_curves(ns, HEAD_DIM, rank=RANK, n_features=FEATURES)
    return {key: getattr(curves, key) * _model_scale() for key in METHODS}


def curve_ns() -> np.ndarray:
    """Log-spaced sample points, the slider's stops included so each dot sits on its curve."""
    grid = np.rint(np.geomspace(STOPS[0], STOPS[-1], CURVE_POINTS)).astype(np.int64)
    return np.unique(np.concatenate([grid, STOPS]))


def gpu_crossing(key: str) -> int:
    """Smallest N at which a family's model memory exceeds one GPU (bisection on the closed form)."""

    def over(n: int) -> bool:
        return model_memory([n])[key][0] > GPU.hbm_bytes

    lo, hi = 1, 2
    while not over(hi):
        lo, hi = hi, 2 * hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if over(mid) else (mid, hi)
    return hi


# --------------------------------------------------------------------------
# Axes: concrete sizes
# --------------------------------------------------------------------------


# Each y axis spans [lo, hi], wide enough for every value it draws (tests check).
def _memory_axis() -> dict:
    ticks = [{"value": 2.0**e, "text": binary_bytes(2.0**e)} for e in range(20, 51, 5)]  # 1 MiB ... 1 PiB
    line = {"value": float(GPU.hbm_bytes), "text": f"one A100 / H100: 80 GB = {binary_bytes(GPU.hbm_bytes)}",
            "short": "one 80 GB GPU"}
    return {"title": "bytes per forward pass", "lo": 2.0**20, "hi": 2.0**50, "ticks": ticks, "line": line}


def _flops_axis() -> dict:
    ticks = [{"value": 10.0**e, "text": flops(10.0**e)} for e in range(9, 18, 2)]  # 1 GFLOP ... 100 PFLOP
    peak = GPU.tensor_flops["fp16"]
    line = {"value": peak, "text": f"1 s of one H100 at its {significant(peak / 1e12)} TFLOP/s fp16 peak",
            "short": "1 s of one H100 at peak"}
    return {"title": "FLOPs per forward pass", "lo": 1e8, "hi": 2e17, "ticks": ticks, "line": line}


def _time_axis() -> dict:
    ticks = [{"value": 10.0**e, "text": seconds(10.0**e)} for e in range(-3, 2)]  # 1 ms ... 10 s
    return {"title": "seconds, one head", "lo": 3e-4, "hi": 60.0, "ticks": ticks, "line": None}


def _x_axis() -> dict:
    ticks = [{"value": 4**e, "text": f"{4**e}" if 4**e < 1024 else f"{4**e // 1024:,}K"} for e in range(4, 10)]
    ticks.append({"value": 10**6, "text": "10⁶"})
    return {"lo": STOPS[0], "hi": STOPS[-1], "ticks": ticks}


# --------------------------------------------------------------------------
# Measured CPU times
# --------------------------------------------------------------------------


def load_cpu_times() -> dict | None:
    """The committed benchmark, or None if it was never run."""
    if not CPU_TIMES.is_file():
        return None
    return json.loads(CPU_TIMES.read_text())


def _cpu(run: dict | None) -> dict | None:
    if run is None:
        return None
    points = [{"n": p["n"], "s": {key: _round(p["methods"][key]["best_s"]) for key in METHODS}}
              for p in run["points"]]
    machine = run["machine"]
    return {
        "points": points,
        "machine": (f"{machine['cpu']} ({machine['cpus_visible']} CPUs, {machine['blas_threads']} BLAS thread), "
                    f"NumPy {machine['numpy']}, {machine['date'][:10]}"),
        "setting": f"one head, D = {run['setting']['d']}, {run['setting']['dtype']}, fastest of {run['setting']['repeats']} runs",
    }


# --------------------------------------------------------------------------
# One stop of the slider
# --------------------------------------------------------------------------


def _ratio(x: float) -> str:
    return f"{significant(x, 2)}×"


def _versus(dense: float, other: float, fewer: str) -> str:
    """'16× less' when a method beats dense, '2.3× more' when it does not (small N)."""
    if other < dense:
        return f"{_ratio(dense / other)} {fewer}"
    return f"{_ratio(other / dense)} more" if other > dense else "the same"


def _share(fraction: float) -> str:
    """Of one GPU: '64% of one 80 GB GPU', '0.06% of ...', '2.6 GPUs' worth'."""
    if fraction >= 1:
        return f"{significant(fraction, 2)} GPUs' worth"
    return f"{significant(100 * fraction, 2)}% of one 80 GB GPU"


def _memory_caption(n: int, mem: dict) -> str:
    dense = mem["dense"]
    return (f"N = {n:,}: the dense N × N probabilities take {binary_bytes(dense)} ({_share(dense / GPU.hbm_bytes)}); "
            f"Performer's features {binary_bytes(mem['performer'])}, {_versus(dense, mem['performer'], 'less')}.")


def _flops_caption(n: int, fl: dict) -> str:
    seconds_h100 = fl["dense"] / GPU.tensor_flops["fp16"]
    return (f"N = {n:,}: dense attention costs {flops(fl['dense'])} a forward pass, "
            f"{seconds(seconds_h100)} of one H100 at peak; strided {_versus(fl['dense'], fl['strided'], 'fewer')}, "
            f"Performer {_versus(fl['dense'], fl['performer'], 'fewer')}.")


def _time_caption(n: int, times: dict | None, largest: int | None) -> str:
    if times is None:
        limit = f"N ≤ {largest:,}" if largest else "nothing yet"
        return f"N = {n:,}: not run on this CPU (measured: {limit}); the model views go on to 10⁶."
    return (f"N = {n:,}, one head on this CPU: dense {seconds(times['dense'])}, strided {seconds(times['strided'])}, "
            f"Reformer {seconds(times['reformer'])}, Performer {seconds(times['performer'])}.")


def _of_dense(value: float, dense: float) -> str:
    """A method's cost as a fraction of dense's: '1/16', '≈ 1', '2.3×' (two significant digits)."""
    if value < dense and significant(dense / value, 2) != "1":
        return f"1/{significant(dense / value, 2)}"
    if value > dense and significant(value / dense, 2) != "1":
        return f"{significant(value / dense, 2)}×"
    return "1" if value == dense else "≈ 1"


def _values(values: dict, text) -> dict:
    return {key: {"v": _round(values[key]), "text": text(values[key]), "vs": _of_dense(values[key], values["dense"])}
            for key in METHODS}


def _stop(n: int, cpu: dict | None) -> dict:
    mem = {key: float(v[0]) for key, v in model_memory([n]).items()}
    fl = {key: float(v[0]) for key, v in model_flops([n]).items()}
    measured = {p["n"]: p["s"] for p in cpu["points"]} if cpu else {}
    times = measured.get(n)
    largest = max(measured) if measured else None
    memory = _values(mem, binary_bytes)
    for key in METHODS:
        memory[key]["fits"] = mem[key] <= GPU.hbm_bytes
    empty = {key: None for key in METHODS}
    return {
        "n": n,
        "n_text": f"{n:,}",
        "memory": memory,
        "flops": _values(fl, flops),
        "time": _values(times, seconds) if times else empty,
        "caption": {"memory": _memory_caption(n, mem), "flops": _flops_caption(n, fl),
                    "time": _time_caption(n, times, largest)},
    }


# --------------------------------------------------------------------------
# The trace
# --------------------------------------------------------------------------


def _curves(ns: np.ndarray) -> dict:
    mem, fl = model_memory(ns), model_flops(ns)
    return {
        "memory": {key: [_round(x) for x in mem[key]] for key in METHODS},
        "flops": {key: [_round(x) for x in fl[key]] for key in METHODS},
    }


def _markers() -> list[dict]:
    shown = []
    for marker in MARKERS:
        n = marker["n"]
        mem = float(model_memory([n])["dense"][0])
        shown.append({**marker, "n_text": f"{n:,}",
                      "text": f"{marker['label']} ({marker['year']}), N = {n:,}: dense takes {binary_bytes(mem)}"})
    return shown


def _extra(crossing: dict, cpu: dict | None) -> dict:
    """One line per view under the table: where one GPU fills up; Linformer; measured vs model."""
    labels = {"dense": "dense", "strided": "strided", "reformer": "Reformer", "performer": "Performer"}
    order = sorted(crossing, key=crossing.get)
    memory = "One 80 GB GPU is full at N = " + " · ".join(f"{crossing[k]:,} ({labels[k]})" for k in order) + "."
    linformer = float(measure.scaling_curves([10**6], HEAD_DIM, rank=RANK).linformer[0])
    performer = float(measure.scaling_curves([10**6], HEAD_DIM, n_features=FEATURES).performer[0])
    flops_text = (f"Linformer (k = {RANK}) costs 8NkD FLOPs, {1 - linformer / performer:.1%} below Performer's: "
                  "one line draws both.")
    if cpu is None:
        return {"memory": memory, "flops": flops_text, "time": "No CPU run committed yet."}
    last = cpu["points"][-1]
    fl = model_flops([last["n"]])
    model_ratio = float(fl["dense"][0] / fl["performer"][0])
    time_text = (f"At N = {last['n']:,}, dense took {_ratio(last['s']['dense'] / last['s']['performer'])} Performer's time "
                 f"for {_ratio(model_ratio)} its FLOPs: the model's counts are not wall time.")
    return {"memory": memory, "flops": flops_text, "time": time_text}


def trace() -> dict:
    cpu = _cpu(load_cpu_times())
    ns = curve_ns()
    crossing = {key: gpu_crossing(key) for key in METHODS}
    setting = {
        "d": HEAD_DIM, "heads": HEADS, "layers": LAYERS, "dtype": "fp16", "bytes": DTYPE_BYTES,
        "rank": RANK, "features": FEATURES, "gpu": GPU.name, "gpu_bytes": GPU.hbm_bytes,
    }
    methods = [{"key": key, "label": label, "short": short, "order": order, "form": form}
               for key, (label, short, order, form) in METHODS.items()]
    data = {
        "setting": setting,
        "methods": methods,
        "ns": ns,
        "curves": _curves(ns),
        "stops": [_stop(n, cpu) for n in STOPS],
        "axes": {"memory": _memory_axis(), "flops": _flops_axis(), "time": _time_axis(), "x": _x_axis()},
        "markers": _markers(),
        "cpu": cpu,
        "crossing": crossing,
        "extra": _extra(crossing, cpu),
    }
    return {"data": data, "facts": _facts(data, cpu)}


def _facts(data: dict, cpu: dict | None) -> dict:
    facts = {
        "model_shape": f"{LAYERS} layers × {HEADS} heads, d = {HEAD_DIM}, fp16, batch 1",
        "gpu_memory": f"80 GB ({binary_bytes(GPU.hbm_bytes)})",
        "features": FEATURES,
        "rank": RANK,
    }
    for key, n in data["crossing"].items():
        facts[f"{key}_gpu_limit_n"] = f"{n:,}"
    for marker in MARKERS:
        n = marker["n"]
        facts[f"{marker['key']}_n"] = f"{n:,}"
        facts[f"{marker['key']}_dense_memory"] = binary_bytes(float(model_memory([n])["dense"][0]))
        facts[f"{marker['key']}_dense_flops"] = flops(float(model_flops([n])["dense"][0]))
        facts[f"{marker['key']}_performer_memory"] = binary_bytes(float(model_memory([n])["performer"][0]))
    million = model_flops([10**6])
    facts["reformer_over_strided_flops_1m"] = _ratio(float(million["reformer"][0] / million["strided"][0]))
    facts["dense_h100_seconds_1m"] = significant(float(million["dense"][0]) / GPU.tensor_flops["fp16"], 3)
    if cpu is not None:
        last = cpu["points"][-1]
        facts["cpu_machine"] = cpu["machine"]
        facts["cpu_largest_n"] = f"{last['n']:,}"
        for key in METHODS:
            facts[f"cpu_{key}_largest_n"] = seconds(last["s"][key])
        facts["cpu_dense_over_performer_largest_n"] = _ratio(last["s"]["dense"] / last["s"]["performer"])
    else:
        facts["cpu_machine"] = "not measured"
    return facts
