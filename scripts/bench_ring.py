"""Run Part 4's ring attention on 4 gloo processes and commit what it measured.

    python scripts/bench_ring.py [--out docs/data/ring_cpu_run.json]

The ring-attention-rotation widget replays this run: which K/V shard each rank held
at each step (fixed by the algorithm), the compute and wait time of every step, the
time to send one shard alone, and the largest difference of the gathered output from
full attention. Wall times change from run to run and machine to machine, so they are
measured here, once, into JSON with the machine and date, never during a build. The
setting (4 ranks, 4 heads of 64, 256 tokens per rank, float64, seed 0) is the
widget's own (`vizgen.widgets.ring_attention_rotation.setting`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench_performer import cpu_model  # noqa: E402  one machine description for every CPU benchmark
from vizgen.widgets import ring_attention_rotation as widget  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=widget.RUN_FILE)
    args = parser.parse_args()
    machine = {
        "cpu": cpu_model(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "backend": "gloo",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    run = widget.measure(machine)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(run.to_json(), indent=1) + "\n")
    print(f"{machine['cpu']}, torch {machine['torch']}, {widget.WORLD_SIZE} gloo processes")
    for step in range(widget.WORLD_SIZE):
        rows = [r for r in run.steps if r.step == step]
        cells = "  ".join(f"r{r.rank}<-KV{r.shard} {r.compute_s * 1e3:6.1f}+{r.wait_s * 1e3:5.1f} ms" for r in rows)
        print(f"  step {step + 1}: {cells}")
    print(f"  one shard sent alone: {min(run.transfer_s) * 1e3:.2f}-{max(run.transfer_s) * 1e3:.2f} ms; "
          f"max |error| {run.max_error:.1e} -> {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
