"""Benchmark our Triton FlashAttention-2 kernel against torch SDPA's backends on a CUDA GPU.

    python scripts/bench_attention.py [--quick] [--out docs/data/attention_benchmark.json]

Forward pass only. For fp16 and bf16, head dim 64 and 128, N from 1k to 16k, causal and
not, it times `kernels.flash.attention`, SDPA with each backend forced (flash,
efficient, cuDNN; math only where its N×N matrices fit) and the naive three-kernel
Triton attention (`kernels.naive`, short N only), checks every output against an fp32
SDPA reference, and reports TFLOP/s from the FLOP model below. The JSON it writes (GPU
name, driver, torch/triton versions, date, setting, every point) is committed and the
Part 3 post renders its table from it. Without a CUDA GPU it says so and exits 0.

Setting (as in the FlashAttention-2 paper's benchmarks, arXiv:2307.08691 Section 4.1):
hidden size 2048 (so 32 heads at head dim 64, 16 at 128) and batch × N = 16k tokens.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HIDDEN = 2048
TOKENS = 16 * 1024
SEQ_LENS = (1024, 2048, 4096, 8192, 16384)
HEAD_DIMS = (64, 128)
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
MATH_MAX_N = 4096  # the math backend materialises B·H·N² scores
NAIVE_MAX_N = 4096  # so does the naive kernel (S and P in the input dtype)
DEFAULT_OUT = ROOT / "docs" / "data" / "attention_benchmark.json"


def attention_flops(batch: int, heads: int, n: int, head_dim: int, causal: bool) -> float:
    """Two matmuls (Q·Kᵀ and P·V) of 2·N·N·D FLOPs per head; the causal mask halves them."""
    flops = 4 * batch * heads * n * n * head_dim
    return flops / 2 if causal else flops


def time_ms(fn, warmup: int = 3, reps: int = 10) -> float:
    """Median wall time of `fn` on the GPU, by CUDA events."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def implementations(causal: bool, n: int):
    """name -> callable(q, k, v), for what can run at this N."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from kernels import flash, naive

    def sdpa(backend):
        def run(q, k, v):
            with sdpa_kernel(backend):
                return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return run

    impls = {
        "triton (ours)": lambda q, k, v: flash.attention(q, k, v, causal=causal),
        "sdpa flash": sdpa(SDPBackend.FLASH_ATTENTION),
        "sdpa efficient": sdpa(SDPBackend.EFFICIENT_ATTENTION),
        "sdpa cudnn": sdpa(SDPBackend.CUDNN_ATTENTION),
    }
    if n <= MATH_MAX_N:
        impls["sdpa math"] = sdpa(SDPBackend.MATH)
    if n <= NAIVE_MAX_N:
        impls["naive (S, P in HBM)"] = lambda q, k, v: naive.attention(q, k, v, causal=causal)
    return impls


def reference(q, k, v, causal: bool):
    import torch.nn.functional as F

    return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=causal)


def measure(quick: bool) -> list[dict]:
    points = []
    seq_lens = SEQ_LENS[:3] if quick else SEQ_LENS
    for dtype_name, dtype in DTYPES.items():
        for head_dim in HEAD_DIMS:
            heads = HIDDEN // head_dim
            for n in seq_lens:
                batch = max(1, TOKENS // n)
                for causal in (False, True):
                    q, k, v = (torch.randn(batch, heads, n, head_dim, device="cuda", dtype=dtype) for _ in range(3))
                    expected = reference(q, k, v, causal)
                    for name, fn in implementations(causal, n).items():
                        point = {"impl": name, "dtype": dtype_name, "head_dim": head_dim, "heads": heads,
                                 "batch": batch, "n": n, "causal": causal}
                        try:
                            out = fn(q, k, v)
                            point["max_abs_err"] = float((out.float() - expected).abs().max())
                            point["ms"] = time_ms(lambda fn=fn, args=(q, k, v): fn(*args))
                            point["tflops"] = attention_flops(batch, heads, n, head_dim, causal) / (point["ms"] / 1e3) / 1e12
                        except (RuntimeError, ValueError) as exc:  # a backend that refuses this shape/dtype
                            point["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
                        points.append(point)
                        shown = f"{point['tflops']:7.1f} TFLOP/s  err {point['max_abs_err']:.1e}" if "tflops" in point else point["error"]
                        print(f"{dtype_name} d={head_dim:3} N={n:5} causal={causal!s:5} {name:22} {shown}", flush=True)
                    del q, k, v, expected
                    torch.cuda.empty_cache()
    return points


def _driver() -> str:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, check=True).stdout.strip().splitlines()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "unknown"


def flash_ratio(points: list[dict]) -> dict:
    """Our kernel over SDPA's flash backend, forward TFLOP/s, at N >= 4k and head dim 128."""
    ratios = {}
    for p in points:
        if p["impl"] != "triton (ours)" or p["n"] < 4096 or p["head_dim"] != 128 or "tflops" not in p:
            continue
        twin = next((q for q in points if q["impl"] == "sdpa flash" and "tflops" in q
                     and all(q[key] == p[key] for key in ("dtype", "head_dim", "n", "causal"))), None)
        if twin:
            ratios[f"{p['dtype']} N={p['n']} causal={p['causal']}"] = p["tflops"] / twin["tflops"]
    return ratios


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="N up to 4k only")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_attention: no CUDA GPU here: nothing measured, nothing written")
        return 0
    import triton

    points = measure(args.quick)
    ratios = flash_ratio(points)
    result = {
        "gpu": torch.cuda.get_device_name(),
        "driver": _driver(),
        "cuda": torch.version.cuda,
        "torch": torch.__version__,
        "triton": triton.__version__,
        "python": platform.python_version(),
        "date": dt.date.today().isoformat(),
        "setting": {"hidden": HIDDEN, "tokens": TOKENS, "direction": "forward",
                    "flop_model": "4·B·H·N²·D, halved when causal"},
        "triton_over_sdpa_flash": ratios,
        "points": points,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    worst = min(ratios.values()) if ratios else float("nan")
    print(f"\nwrote {args.out}; triton / sdpa-flash at N >= 4k, d = 128: worst {worst:.2f} (target >= 0.90)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
