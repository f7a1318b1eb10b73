"""attention-benchmark: the table of measured forward TFLOP/s that Part 3 shows, rendered
from the JSON that `scripts/bench_attention.py` writes on a CUDA GPU (committed under
docs/data/). Until a GPU run is committed, the table says so instead of showing numbers."""

from __future__ import annotations

import json

from vizgen import paths

DATA = paths.ROOT / "docs" / "data" / "attention_benchmark.json"
SHOWN_IMPLS = ("triton (ours)", "sdpa flash", "sdpa efficient", "sdpa cudnn", "sdpa math", "naive (S, P in HBM)")
NOT_MEASURED = (
    '!!! note "Not measured yet"\n\n'
    "    These figures come from `scripts/bench_attention.py` on a CUDA GPU, and no GPU run has been\n"
    "    committed yet. Run it on one and commit `docs/data/attention_benchmark.json`: this table fills itself in."
)


def _table(points: list[dict], dtype: str, head_dim: int, causal: bool) -> str:
    chosen = [p for p in points if p["dtype"] == dtype and p["head_dim"] == head_dim and p["causal"] == causal]
    ns = sorted({p["n"] for p in chosen})
    impls = [name for name in SHOWN_IMPLS if any(p["impl"] == name for p in chosen)]
    lines = ["| implementation | " + " | ".join(f"N = {n // 1024}k" for n in ns) + " |",
             "|---|" + "---:|" * len(ns)]
    for name in impls:
        cells = []
        for n in ns:
            point = next((p for p in chosen if p["impl"] == name and p["n"] == n), None)
            cells.append(f"{point['tflops']:.0f}" if point and "tflops" in point else "—")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def trace() -> dict:
    if not DATA.is_file():
        return {"facts": {"gpu": "no GPU run yet", "measured": "no"},
                "tables": {"fp16_d128": NOT_MEASURED, "fp16_d128_causal": NOT_MEASURED}}
    run = json.loads(DATA.read_text())
    ratios = run.get("triton_over_sdpa_flash", {})
    facts = {
        "gpu": run["gpu"], "date": run["date"], "torch": run["torch"], "triton": run["triton"],
        "measured": "yes",
        "worst_ratio": f"{min(ratios.values()):.2f}" if ratios else "n/a",
    }
    tables = {
        "fp16_d128": _table(run["points"], "fp16", 128, False),
        "fp16_d128_causal": _table(run["points"], "fp16", 128, True),
    }
    return {"facts": facts, "tables": tables}
