"""part2: numbers for Part 2's prose that no widget owns.

* The N^2 wall: bytes of the N x N attention matrices of one forward pass
  (`kernels.approx.measure.n2_memory_table`), one head and a BERT-large-shaped model
  (Devlin et al. 2019, arXiv:1810.04805, Section 3: L = 24 layers, A = 16 heads), fp16,
  batch 1, at N = 512 ... 32,768. Binary units: MiB = 2^20 bytes, GiB = 2^30.
* The Performer associativity reorder (Choromanski et al. 2021, arXiv:2009.14794) in
  actual numbers, N = 4 tokens, d = m = 2 (`kernel_features.associativity_example`):
  (phi(Q) phi(K)^T) V and phi(Q) (phi(K)^T V), the same result from different work.
* The naive Performer snippet (docs/snippets/naive_performer.py) timed against
  torch SDPA by `scripts/bench_performer.py` (docs/data/performer_benchmark.json), with
  the machine it ran on; "not measured" while that file is missing.
"""

from __future__ import annotations

import json

import numpy as np

from kernels.approx import kernel_features, measure
from vizgen import paths
from vizgen.fmt import binary_bytes, significant

BENCHMARK = paths.ROOT / "docs" / "data" / "performer_benchmark.json"
SEQ_LENS = (512, 2048, 8192, 32768)  # BERT's limit, GPT-3's context, Longformer-scale, the plan's "impossible"
HEADS, LAYERS = 16, 24  # BERT-large
FP16 = 2
NOT_MEASURED = "not measured"


# --------------------------------------------------------------------------
# The N^2 wall
# --------------------------------------------------------------------------


def memory_rows() -> list[measure.N2MemoryRow]:
    return measure.n2_memory_table(SEQ_LENS, dtype_bytes=FP16, heads=HEADS, layers=LAYERS)


def memory_table() -> str:
    lines = [f"| N | one head, one layer, FP16 | {LAYERS} layers × {HEADS} heads (BERT-large shape), FP16 |",
             "|---:|---:|---:|"]
    for row in memory_rows():
        lines.append(f"| {row.n:,} | {binary_bytes(row.per_head_bytes)} | {binary_bytes(row.model_bytes)} |")
    return "\n".join(lines)


def _memory_facts() -> dict:
    facts = {"heads": HEADS, "layers": LAYERS, "heads_times_layers": HEADS * LAYERS}
    for row in memory_rows():
        facts[f"head_{row.n}_fp16"] = binary_bytes(row.per_head_bytes)
        facts[f"model_{row.n}_fp16"] = binary_bytes(row.model_bytes)
    first, last = SEQ_LENS[0], SEQ_LENS[-1]
    facts[f"growth_{first}_to_{last}"] = f"{(last // first) ** 2:,}"
    return facts


# --------------------------------------------------------------------------
# The associativity example
# --------------------------------------------------------------------------


def _number(x: float) -> str:
    return f"{x:g}"


def tex_matrix(a: np.ndarray) -> str:
    r"""A matrix as LaTeX: '\begin{bmatrix} 1 & 0 \\ 0 & 1 \end{bmatrix}'."""
    a = np.atleast_2d(a)
    rows = [" & ".join(_number(x) for x in row) for row in a]
    return r"\begin{bmatrix} " + r" \\ ".join(rows) + r" \end{bmatrix}"


def _associativity_facts() -> dict:
    ex = kernel_features.associativity_example()
    (n, m), d = ex.phi_q.shape, ex.v.shape[1]
    facts = {
        "assoc_n": n, "assoc_m": m, "assoc_d": d,
        "assoc_left_multiplies": ex.left_multiplies,
        "assoc_right_multiplies": ex.right_multiplies,
        "assoc_left_form": f"N²m + N²d = {n}²·{m} + {n}²·{d} = {ex.left_multiplies}",
        "assoc_right_form": f"Nmd + Nmd = {n}·{m}·{d} + {n}·{m}·{d} = {ex.right_multiplies}",
        "assoc_equal": "yes" if np.array_equal(ex.left, ex.right) else "no",
    }
    for name in ("phi_q", "phi_k", "v", "scores", "kv", "left", "right"):
        facts[f"assoc_{name}_tex"] = tex_matrix(getattr(ex, name))
    facts["assoc_phi_k_t_tex"] = tex_matrix(ex.phi_k.T)
    return facts


def associativity_table() -> str:
    ex = kernel_features.associativity_example()
    (n, m), d = ex.phi_q.shape, ex.v.shape[1]
    return "\n".join([
        "| order | builds | its shape | scalar multiplications |",
        "|---|---|---:|---:|",
        f"| (φ(Q) φ(K)ᵀ) V | the scores φ(Q) φ(K)ᵀ | {n} × {n} | {ex.left_multiplies} |",
        f"| φ(Q) (φ(K)ᵀ V) | the summary φ(K)ᵀ V | {m} × {d} | {ex.right_multiplies} |",
    ])


# --------------------------------------------------------------------------
# The naive Performer benchmark
# --------------------------------------------------------------------------


def load_benchmark() -> dict | None:
    """The committed run of scripts/bench_performer.py, or None if it was never run."""
    if not BENCHMARK.is_file():
        return None
    return json.loads(BENCHMARK.read_text())


def _ms(seconds: float) -> str:
    return f"{significant(seconds * 1e3, 3)} ms"


def _benchmark_facts(run: dict | None) -> dict:
    if run is None:
        return {key: NOT_MEASURED for key in (
            "bench_machine", "bench_cpu", "bench_threads", "bench_torch", "bench_date", "bench_setting",
            "bench_sdpa_ms", "bench_performer_ms", "bench_speedup", "bench_flop_ratio")}
    machine, setting = run["machine"], run["setting"]
    sdpa, perf = run["sdpa"], run["naive_performer"]
    return {
        "bench_machine": f"{machine['cpu']}, {machine['torch_threads']} threads, PyTorch {machine['torch']}",
        "bench_cpu": machine["cpu"],
        "bench_threads": machine["torch_threads"],
        "bench_torch": machine["torch"],
        "bench_date": machine["date"][:10],
        "bench_setting": (f"N = {setting['n']:,}, {setting['heads']} heads, d = {setting['d']}, "
                          f"m = {setting['features']} features, batch {setting['batch']}, {setting['dtype']}, "
                          f"median of {setting['repeats']}"),
        "bench_n": f"{setting['n']:,}",
        "bench_sdpa_ms": _ms(sdpa["median_s"]),
        "bench_performer_ms": _ms(perf["median_s"]),
        "bench_speedup": f"{significant(sdpa['median_s'] / perf['median_s'], 2)}×",
        "bench_flop_ratio": f"{significant(sdpa['flops'] / perf['flops'], 3)}×",
    }


def benchmark_table(run: dict | None) -> str:
    if run is None:
        return ('!!! note "Not measured yet"\n\n'
                "    Run `python scripts/bench_performer.py` and commit `docs/data/performer_benchmark.json`:"
                " this table fills itself in.")
    rows = ["| forward pass | median wall time | matrix-product FLOPs | GFLOP/s |", "|---|---:|---:|---:|"]
    for label, key in (("torch SDPA (exact)", "sdpa"), ("naive Performer, φ(x) = ReLU(Wx)", "naive_performer")):
        entry = run[key]
        rows.append(f"| {label} | {_ms(entry['median_s'])} | {significant(entry['flops'] / 1e9, 3)} G "
                    f"| {significant(entry['flops'] / entry['median_s'] / 1e9, 3)} |")
    return "\n".join(rows)


def trace() -> dict:
    run = load_benchmark()
    facts = {**_memory_facts(), **_associativity_facts(), **_benchmark_facts(run),
             "snippet": "docs/snippets/naive_performer.py"}
    tables = {"attention_memory": memory_table(), "associativity": associativity_table(),
              "performer_benchmark": benchmark_table(run)}
    return {"facts": facts, "tables": tables}
