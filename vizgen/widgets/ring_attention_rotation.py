"""ring-attention-rotation: K/V shards travel around a ring of 4 devices while each keeps its Q shard.

Two sources, kept apart on the canvas:
* measured: `kernels.ring.ring_attention` really ran on 4 gloo processes on a CPU.
  Wall times change from run to run, so the run is a committed measurement:
  `python scripts/bench_ring.py` runs it and writes docs/data/ring_cpu_run.json (the
  shard each rank held at each step, compute and wait times, the machine and date);
  the build only reads that file, so two builds are byte-identical;
* modelled: the GPU cost model of `kernels.ring` (block compute at the dense tensor
  peak vs. shard transfer over one link, from `kernels.gpu_specs`) at every stop of the
  widget's two controls, with the all-gather baseline from the same model.
Liu, Zaharia & Abbeel 2023, arXiv:2310.01889.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

from kernels import gpu_specs, reference, ring
from vizgen import paths
from vizgen.fmt import sci

WORLD_SIZE = 4  # the plan's four devices

# The measured run on CPU: small enough to start and finish in seconds.
SEED = 0
BATCH, HEADS, HEAD_DIM = 1, 4, 64
SHARD_TOKENS = 256  # tokens per rank: N_CTX = 4 x 256
TIMEOUT_S = 120.0  # start-up of 4 interpreters importing torch on a busy machine included
MEASURED_DIGITS = 2  # measured times shown to 0.01 ms
RUN_FILE = paths.ROOT / "docs" / "data" / "ring_cpu_run.json"
MEASURE_COMMAND = "python scripts/bench_ring.py"

# The modelled layer: multi-head attention with 32 heads of 128 (a 4096-wide layer) in
# bf16, the setting of the paper's analysis (every head's K and V travel).
LAYER = ring.LayerShape(heads=32, kv_heads=32, head_dim=128, bytes_per_element=2, dtype="bf16")
PRESETS = (
    ("A100 + NVLink", gpu_specs.A100, gpu_specs.A100_NVLINK),
    ("H100 + NVLink", gpu_specs.H100, gpu_specs.H100_NVLINK),
    ("H100 + InfiniBand", gpu_specs.H100, gpu_specs.NDR_INFINIBAND),
)
TOKENS = (512, 1024, 2048, 4096, 8192, 16384, 32768)  # tokens per device, c
DEFAULT_PRESET, DEFAULT_TOKENS = 1, 4096  # H100 + NVLink, above its crossover: hidden


def setting() -> dict:
    """What the measured run computes; the committed run must have been made with it."""
    return {"world_size": WORLD_SIZE, "batch": BATCH, "heads": HEADS, "head_dim": HEAD_DIM,
            "shard_tokens": SHARD_TOKENS, "seed": SEED, "dtype": "float64", "causal": False}


# --------------------------------------------------------------------------
# Readable numbers
# --------------------------------------------------------------------------


def duration(seconds: float) -> str:
    """4.3e-06 -> '4.3 µs', 0.0125 -> '12.5 ms'; three significant digits."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def tokens_label(tokens: int) -> str:
    return f"{tokens // 1024}K" if tokens >= 1024 else str(tokens)


def binary_bytes(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


# --------------------------------------------------------------------------
# The measured run
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class MeasuredRun:
    """One committed run of the ring: what `trace` replays (the output itself is not kept,
    only its largest difference from full attention)."""

    steps: tuple[ring.StepRecord, ...]  # sorted by (step, rank)
    transfer_s: tuple[float, ...]  # per rank: one shard sent alone
    shard_bytes: int
    max_error: float  # max |ring output - reference.attention|, float64
    machine: dict  # cpu, versions, date: where the times were measured

    def to_json(self) -> dict:
        return {"machine": self.machine, "setting": setting(), "max_error": self.max_error,
                "shard_bytes": self.shard_bytes, "transfer_s": list(self.transfer_s),
                "steps": [asdict(r) for r in self.steps]}


def measure(machine: dict) -> MeasuredRun:
    """Run the real 4-process ring once (seconds) and keep its records."""
    rng = np.random.default_rng(SEED)
    n_ctx = WORLD_SIZE * SHARD_TOKENS
    q, k, v = (rng.standard_normal((BATCH, HEADS, n_ctx, HEAD_DIM)) for _ in range(3))  # (B, H, N, D)
    result = ring.ring_attention(q, k, v, world_size=WORLD_SIZE, timeout_s=TIMEOUT_S)
    error = float(np.max(np.abs(result.out - reference.attention(q, k, v))))
    return MeasuredRun(result.steps, result.transfer_s, result.shard_bytes, error, machine)


def load_run(path=RUN_FILE) -> MeasuredRun:
    """The committed run, refused in one line when it is missing or measured another setting."""
    where = path.relative_to(paths.ROOT) if path.is_relative_to(paths.ROOT) else path
    if not path.is_file():
        raise FileNotFoundError(f"{where} is missing; measure it with: {MEASURE_COMMAND}")
    saved = json.loads(path.read_text())
    if saved["setting"] != setting():
        raise ValueError(f"{where} was measured with {saved['setting']}, the widget shows {setting()}; "
                         f"re-measure with: {MEASURE_COMMAND}")
    steps = tuple(ring.StepRecord(**r) for r in saved["steps"])
    return MeasuredRun(steps, tuple(saved["transfer_s"]), saved["shard_bytes"], saved["max_error"], saved["machine"])


def _ms(seconds: float) -> float:
    return round(seconds * 1e3, MEASURED_DIGITS)


def _steps(result: MeasuredRun) -> list[dict]:
    """One player state per rotation step, then the finished state."""
    states = []
    for step in range(WORLD_SIZE):
        records = [r for r in result.steps if r.step == step]  # sorted by rank
        devices = [{"rank": r.rank, "shard": r.shard, "compute_ms": _ms(r.compute_s), "wait_ms": _ms(r.wait_s)}
                   for r in records]
        sends = step < WORLD_SIZE - 1
        states.append({"step": step, "devices": devices, "sends": sends, "caption": _caption(step, sends)})
    states.append({"step": WORLD_SIZE, "devices": None, "sends": False,
                   "caption": (f"Done: every device has seen all {WORLD_SIZE} K,V shards once and merged them with the "
                               f"online softmax. The gathered output equals full attention (max |error| "
                               f"{result.max_error:.1e}, float64).")})
    return states


def _caption(step: int, sends: bool) -> str:
    shard = ", ".join(f"device {r} ← K,V{ring.shard_held(r, step, WORLD_SIZE)}" for r in range(WORLD_SIZE))
    text = f"Step {step + 1} of {WORLD_SIZE}: {shard}. Each device attends its own Q shard to the K,V shard it holds"
    if sends:
        return text + " while already sending that shard on to the next device (r → r + 1)."
    return text + "; this is the last shard, so nothing is sent."


def _measured(result: MeasuredRun) -> dict:
    by_rank = [[r for r in result.steps if r.rank == rank] for rank in range(WORLD_SIZE)]
    compute = [sum(r.compute_s for r in records) for records in by_rank]
    wait = [sum(r.wait_s for r in records) for records in by_rank]
    return {
        "n_ctx": WORLD_SIZE * SHARD_TOKENS, "shard_tokens": SHARD_TOKENS, "heads": HEADS, "head_dim": HEAD_DIM,
        "shard_bytes": binary_bytes(result.shard_bytes),
        "transfer_ms": [_ms(t) for t in result.transfer_s],
        "compute_ms": [_ms(t) for t in compute], "wait_ms": [_ms(t) for t in wait],
        "max_error": f"{result.max_error:.1e}",
        "note": _measured_note(result),
    }


def _measured_note(result: MeasuredRun) -> str:
    """Did the transfer hide on this CPU? Compare a shard sent alone with the block compute."""
    sends = [_ms(t) for t in result.transfer_s]
    computes = [_ms(r.compute_s) for r in result.steps if r.computed]
    verdict = "hides under" if max(sends) < min(computes) else "does not always hide under"
    return (f"One shard sent alone: {min(sends):.2f}–{max(sends):.2f} ms; one block of compute: "
            f"{min(computes):.1f}–{max(computes):.1f} ms, so here the transfer {verdict} the compute. "
            f"Measured by {MEASURE_COMMAND} on {result.machine['cpu']} ({result.machine['date'][:10]}); "
            f"times vary run to run, the rotation does not.")


# --------------------------------------------------------------------------
# The GPU cost model, at every stop of the controls
# --------------------------------------------------------------------------


def _stop(gpu, link, tokens: int) -> dict:
    cost = ring.step_cost(tokens, LAYER, gpu, link)
    schedule = ring.ring_schedule(cost, WORLD_SIZE)
    gather = ring.allgather_time(cost, WORLD_SIZE)
    ring_total = schedule[-1]["end"]
    scale = max(ring_total, gather["total_s"])  # both timelines share one axis

    def frac(seconds: float) -> float:  # a position on that axis, 0..1
        return round(seconds / scale, 5)

    return {
        "tokens": tokens, "label": tokens_label(tokens), "hidden": cost.hidden,
        "compute": duration(cost.compute_s), "comm": duration(cost.comm_s),
        "ring_total": duration(ring_total), "allgather_total": duration(gather["total_s"]),
        "ring_ends": [frac(s["end"]) for s in schedule],  # the counter after each step
        "ring_ends_text": [duration(s["end"]) for s in schedule],
        "ring": [{"start": frac(s["start"]), "compute": frac(s["compute_end"]), "comm": frac(s["comm_end"])}
                 for s in schedule],
        "gather": {"end": frac(gather["gather_s"]), "compute": [frac(gather["gather_s"] + i * cost.compute_s)
                                                                for i in range(WORLD_SIZE + 1)]},
        "speedup": f"{gather['total_s'] / ring_total:.2f}×",
        "text": _stop_text(cost),
    }


def _stop_text(cost: ring.StepCost) -> str:
    ratio = cost.compute_s / cost.comm_s
    if cost.hidden:
        return (f"Compute {duration(cost.compute_s)} ≥ transfer {duration(cost.comm_s)} per step "
                f"({ratio:.1f}×): communication is hidden, the ring costs no more than the math.")
    return (f"Transfer {duration(cost.comm_s)} > compute {duration(cost.compute_s)} per step: "
            f"the link sets the pace and each device idles {duration(cost.comm_s - cost.compute_s)} a step.")


def _model() -> dict:
    presets = []
    for name, gpu, link in PRESETS:
        crossover = ring.min_hiding_tokens(LAYER, gpu, link)
        presets.append({
            "name": name, "gpu": gpu.name, "link": link.name,
            "flops": f"{gpu.tensor_flops[LAYER.dtype] / 1e12:g} TFLOP/s",
            "bandwidth": f"{link.bandwidth / 1e9:g} GB/s",
            "crossover": round(crossover), "crossover_text": f"{crossover:,.0f}",
            "stops": [_stop(gpu, link, tokens) for tokens in TOKENS],
        })
    layer = {"heads": LAYER.heads, "kv_heads": LAYER.kv_heads, "head_dim": LAYER.head_dim, "dtype": LAYER.dtype}
    return {"presets": presets, "tokens": [tokens_label(t) for t in TOKENS], "layer": layer,
            "default_preset": DEFAULT_PRESET, "default_tokens": TOKENS.index(DEFAULT_TOKENS)}


# --------------------------------------------------------------------------
# The trace
# --------------------------------------------------------------------------


def trace() -> dict:
    return trace_from(load_run())


def trace_from(result: MeasuredRun) -> dict:
    """Everything but the run itself: deterministic given the run's records."""
    model = _model()
    data = {"world_size": WORLD_SIZE, "steps": _steps(result), "measured": _measured(result),
            "model": model}
    return {"data": data, "facts": _facts(model, result.max_error)}


def _facts(model: dict, error: float) -> dict:
    facts = {"world_size": WORLD_SIZE, "measured_n_ctx": WORLD_SIZE * SHARD_TOKENS, "measured_max_error": sci(error),
             "model_heads": LAYER.heads, "model_head_dim": LAYER.head_dim}
    for preset in model["presets"]:
        key = preset["name"].lower().replace(" + ", "_").replace(" ", "_")
        facts[f"crossover_{key}"] = preset["crossover_text"]
        default = preset["stops"][TOKENS.index(DEFAULT_TOKENS)]
        facts[f"speedup_{key}_{DEFAULT_TOKENS}"] = default["speedup"]
    for key, link in (("a100_nvlink", gpu_specs.A100_NVLINK), ("h100_nvlink", gpu_specs.H100_NVLINK),
                      ("ndr_infiniband", gpu_specs.NDR_INFINIBAND)):
        facts[f"link_{key}_gbs"] = f"{link.bandwidth / 1e9:g}"
    facts["causal_work_last_over_first"] = f"{ring.causal_blocks_per_rank(WORLD_SIZE)[-1]}×"
    return facts
