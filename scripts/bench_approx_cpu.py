"""Time Part 2's attention implementations on this machine's CPU, for the scaling chart.

    python scripts/bench_approx_cpu.py [--ns 256 512 ... 8192] [--d 64] [--repeats 3]
                                       [--out docs/data/approx_cpu_times.json]

One head, D = 64, NumPy float64, i.i.d. N(0, 1) inputs (seed 0), at the budgets of
``kernels.approx.measure.scaling_curves``: dense is the fp64 oracle
``kernels.reference.attention`` (it materialises the N x N matrix); the Sparse
Transformer's strided pattern (stride ceil(sqrt(N))); Reformer LSH (4 rounds, N / 64
buckets, chunks of 32); Linformer (k = min(N, 256), mean pooling); Performer FAVOR+
(m = 256). Each is run once to warm up, then ``--repeats`` times; the fastest and the
median wall times are kept with the FLOPs the method counted. The widget shows the
fastest: on a shared machine the other runs measure the neighbours too (the advice of
Python's ``timeit``). Timing at build time would make the widget's
trace non-deterministic, so this runs once and its JSON is committed, with the CPU
model, BLAS thread count (one) and library versions: the numbers describe this machine only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

# One BLAS thread, set before NumPy loads its BLAS: on a shared machine, threads that
# spin-wait for a busy neighbour's core turn milliseconds into hundreds.
BLAS_THREADS = "1"
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, BLAS_THREADS)

import numpy as np  # after the thread settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# One machine description for both benchmarks.
from bench_performer import cpu_model

from kernels import reference
from kernels.approx import measure
from kernels.approx.chunked import chunked_attention_flops

DEFAULT_OUT = ROOT / "docs" / "data" / "approx_cpu_times.json"
DEFAULT_NS = tuple(2**k for k in range(8, 14))  # 256 ... 8192: dense at 8192 is ~1.5 GiB of float64
SEED = 0
RANK = FEATURES = 256  # Linformer k and Performer m, as in measure.scaling_curves


def budgets(n: int) -> dict[str, dict]:
    """The scaling chart's budgets at length N."""
    default = measure.default_budgets(n)
    return {
        "strided": default["strided"],
        "reformer": default["reformer"],
        "linformer": {"k": min(n, RANK)},
        "performer": {"n_features": FEATURES},
    }


def dense(inputs: measure.Inputs):
    q, k, v = (x[None, None] for x in (inputs.q, inputs.k, inputs.v))  # (1, 1, N, D)
    return reference.attention(q, k, v)


def timed(fn, repeats: int) -> dict:
    """Fastest and median wall time of ``repeats`` calls after one warm-up call."""
    fn()  # warm-up: first-call allocation, pattern caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"best_s": min(times), "median_s": statistics.median(times), "times_s": times}


def time_all(n: int, d: int, repeats: int) -> dict[str, dict]:
    inputs = measure.generic_inputs(n, d, SEED)
    rows = {"dense": {**timed(lambda: dense(inputs), repeats), "flops": chunked_attention_flops(n, d)}}
    for name, params in budgets(n).items():
        flops = measure.run_method(name, inputs, **params).flops
        run = functools.partial(measure.run_method, name, inputs, **params)
        rows[name] = {**timed(run, repeats), "flops": flops, "params": params}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ns", type=int, nargs="+", default=list(DEFAULT_NS))
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)  # dense at 8192 takes seconds a run
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    points = []
    for n in args.ns:
        rows = time_all(n, args.d, args.repeats)
        points.append({"n": n, "methods": rows})
        print(f"N={n:6d}  " + "  ".join(f"{name} {row['best_s'] * 1e3:8.1f} ms" for name, row in rows.items()), flush=True)
    result = {
        "machine": {
            "cpu": cpu_model(),
            "cpus_visible": os.cpu_count(),
            "blas_threads": int(os.environ["OPENBLAS_NUM_THREADS"]),
            "numpy": np.__version__,
            "python": platform.python_version(),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        },
        "setting": {"d": args.d, "heads": 1, "dtype": "float64", "repeats": args.repeats, "seed": SEED},
        "points": points,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
