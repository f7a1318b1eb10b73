"""Benchmark the paged KV block manager, the contiguous allocator and the simulator (CPU).

    python scripts/bench_paged.py [--requests 10000] [--seed 0]

Prints allocator operations per second (paged: allocate a prompt, append tokens one at a
time as decode does, fork, free; contiguous: first-fit allocate and free) and the wall time
to simulate ``--requests`` ShareGPT- and Alpaca-like requests (kernels.paged.workload)
under every allocator, with each run's memory summary. Pure Python: the numbers are for
this machine only and say nothing about vLLM's speed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kernels.paged.block_table import BlockManager
from kernels.paged.contiguous import ContiguousAllocator, Reservation
from kernels.paged.simulator import ContiguousMemory, PagedMemory, SimConfig, simulate
from kernels.paged.workload import ALPACA, SHAREGPT, poisson_workload

# Arrival rates (requests per step) well above what the default pool can serve, so that
# memory, the thing being compared, limits the batch: paged serves ~0.1 ShareGPT
# requests per step with the default SimConfig.
RATES = {SHAREGPT.name: 0.5, ALPACA.name: 2.0}
OPS_SEQUENCES = 2000  # sequences per allocator-op timing run
PROMPT, DECODE = 160, 64  # tokens per sequence in the op timing (ShareGPT-like prompt)


def paged_ops_per_second() -> float:
    m = BlockManager(num_blocks=4096, block_size=16, prefix_sharing=False)
    ops, start = 0, time.perf_counter()
    for seq in range(OPS_SEQUENCES):
        m.allocate(seq, list(range(seq * 1000, seq * 1000 + PROMPT)))
        for t in range(DECODE):
            m.append(seq, [t])
        m.fork(seq, -1)
        m.append(-1, [7])  # copy-on-write of the shared last block
        m.free(-1)
        m.free(seq)
        ops += DECODE + 5
    return ops / (time.perf_counter() - start)


def contiguous_ops_per_second() -> float:
    a = ContiguousAllocator(num_slots=16 * 2048)
    ops, start = 0, time.perf_counter()
    for seq in range(OPS_SEQUENCES * 10):
        a.allocate(seq, 64 + (seq * 37) % 2000)  # varied sizes: a realistic hole list
        if seq >= 8:
            a.free(seq - 8)
        ops += 2
    return ops / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print(
        f"paged block manager: {paged_ops_per_second():,.0f} ops/s "
        f"(allocate {PROMPT}-token prompt, {DECODE} one-token appends, fork, CoW append, 2 frees)"
    )
    print(
        f"contiguous first fit: {contiguous_ops_per_second():,.0f} ops/s (allocate + free, 8 live)"
    )

    config = SimConfig()
    print(f"\nsimulator: {args.requests} requests, {config}")
    for stats in (SHAREGPT, ALPACA):
        workload = poisson_workload(stats, args.requests, RATES[stats.name], args.seed)
        memories = [PagedMemory(config)] + [
            ContiguousMemory(config, p) for p in Reservation
        ]
        for memory in memories:
            start = time.perf_counter()
            result = simulate(workload, memory, config)
            elapsed = time.perf_counter() - start
            s = result.summary()
            print(
                f"  {stats.name:8s} {s['allocator']:18s} {elapsed:6.2f} s  steps={s['steps']:7d} "
                f"finished={s['finished']} rejected={s['rejected']} "
                f"preempted={s['preemptions']} batch={s['mean_batch']:6.1f}  tokens/held="
                f"{s['token_fraction_of_held']:.3f} tokens/pool={s['token_fraction_of_pool']:.3f} "
                f"reserved={s['reserved_fraction']:.3f} internal={s['internal_fraction']:.3f} "
                f"external={s['external_fraction']:.3f}"
            )


if __name__ == "__main__":
    main()
