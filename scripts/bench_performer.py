"""Time the post's naive Performer snippet against torch SDPA on this machine's CPU.

    python scripts/bench_performer.py [--n 8192] [--heads 4] [--d 64] [--features 256]
                                      [--repeats 9] [--out docs/data/performer_benchmark.json]

The snippet is ``kernels.approx.kernel_features.naive_performer``: phi(x) = ReLU(W x)
and the associativity reorder phi(Q) (phi(K)^T V), O(N m D). The baseline is
``torch.nn.functional.scaled_dot_product_attention``, exact, O(N^2 D) FLOPs (on CPU
PyTorch picks a fused kernel that never holds all N x N scores). Forward only, float32,
batch 1, non-causal; each is run once to warm up, then ``--repeats`` times, and the
median wall time is reported with FLOPs from the modules' formulas:
4 N^2 D per head for SDPA, 8 N m D + 4 N m per head for the snippet (the matrix
products; the snippet's ReLUs and division are not counted). The JSON records the CPU
model (/proc/cpuinfo), the thread count and the torch version: the numbers describe
this machine only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kernels.approx.chunked import chunked_attention_flops
from kernels.approx.kernel_features import favor_flops, naive_performer

DEFAULT_OUT = ROOT / "docs" / "data" / "performer_benchmark.json"
SEED = 0


def cpu_model() -> str:
    """The "model name" line of /proc/cpuinfo, or platform's guess elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def median_seconds(fn, repeats: int) -> tuple[float, list[float]]:
    fn()  # warm-up: first-call allocation and kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8192)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=9)  # the machine may be shared: a median of many
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    gen = torch.Generator().manual_seed(SEED)
    q, k, v = torch.randn(3, 1, args.heads, args.n, args.d, generator=gen)  # (B, H, N, D) each
    w = torch.randn(args.features, args.d, generator=gen) / args.d**0.5  # (m, D)

    with torch.inference_mode():
        sdpa_s, sdpa_all = median_seconds(lambda: F.scaled_dot_product_attention(q, k, v), args.repeats)
        perf_s, perf_all = median_seconds(lambda: naive_performer(q, k, v, w), args.repeats)

    sdpa_flops = args.heads * chunked_attention_flops(args.n, args.d)
    perf_flops = args.heads * favor_flops(args.n, args.d, args.features)
    result = {
        "machine": {
            "cpu": cpu_model(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        },
        "setting": {
            "n": args.n, "heads": args.heads, "d": args.d, "features": args.features,
            "batch": 1, "dtype": "float32", "repeats": args.repeats, "seed": SEED,
        },
        "sdpa": {"median_s": sdpa_s, "times_s": sdpa_all, "flops": sdpa_flops},
        "naive_performer": {"median_s": perf_s, "times_s": perf_all, "flops": perf_flops},
        "speedup": sdpa_s / perf_s,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    m = result["machine"]
    print(f"{m['cpu']}, {m['torch_threads']} threads, torch {m['torch']}")
    print(f"N={args.n}, {args.heads} heads, D={args.d}, m={args.features}, float32, median of {args.repeats}")
    for name, t, fl in (("SDPA (exact)", sdpa_s, sdpa_flops), ("naive Performer", perf_s, perf_flops)):
        print(f"  {name:16s} {t * 1e3:9.1f} ms  {fl / 1e9:7.2f} GFLOP  {fl / t / 1e9:6.1f} GFLOP/s")
    print(f"  speedup {result['speedup']:.1f}x -> {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
