"""Two scheduling models of FlashAttention on a GPU: which SM runs which program, and
what the warpgroups inside one SM do while it runs.

Neither is a measurement. Both take real shapes (grids, tile sizes, published GPU
throughputs) and compute a schedule with stated, simple rules, so a figure can show
*why* one launch or one instruction order finishes sooner.

1. SM occupancy (FlashAttention-2, arXiv:2307.08691, Section 3.2 "Parallelism").
   FlashAttention (arXiv:2205.14135) launches one thread block per (batch, head),
   each looping over the whole sequence; FlashAttention-2 also parallelises over the
   sequence: one program per BLOCK_M query rows, grid (cdiv(N, BLOCK_M), B * H), as
   `kernels/flash.py` launches it. `dispatch` hands programs, in grid order, to the
   first SM that is free; a program's duration is the number of K/V tiles it visits
   times one tile's cost.

2. Warpgroups inside one SM (FlashAttention-3, arXiv:2407.08608, Sections 3.1-3.2).
   A list scheduler over load / GEMM0 / softmax / GEMM1 operations with their data
   dependencies and three exclusive units per SM: the copy engine (TMA), the tensor
   cores and the multi-function unit that evaluates exp. The three schedules differ
   only in their dependencies: FlashAttention-2's synchronous loop, FlashAttention-3's
   ping-pong between two consumer warpgroups, and ping-pong plus the 2-stage
   GEMM-softmax pipeline inside each warpgroup.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass

import numpy as np

from kernels.gpu_specs import GPU

__all__ = [
    "SCHEDULES",
    "WARPGROUP_ROWS",
    "Dispatch",
    "Op",
    "OpCosts",
    "WarpSchedule",
    "cdiv",
    "dispatch",
    "fa1_work",
    "fa2_grid",
    "fa2_work",
    "kv_tiles_visited",
    "list_schedule",
    "op_costs",
    "tile_seconds",
    "warp_schedule",
]

# --------------------------------------------------------------------------- 1. SMs

FLOPS_PER_TILE_ENTRY = 4  # two matmuls (S = Q K^T, O += P V), 2 FLOPs per multiply-add


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _positive_ints(**values) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive int")


def fa2_grid(n_ctx: int, batch: int, heads: int, block_m: int) -> tuple[int, int]:
    """FlashAttention-2's launch grid, as `kernels.flash.attention` builds it: (cdiv(N_CTX, BLOCK_M), B * H)."""
    _positive_ints(n_ctx=n_ctx, batch=batch, heads=heads, block_m=block_m)
    return cdiv(n_ctx, block_m), batch * heads


def kv_tiles_visited(n_ctx: int, block_m: int, block_n: int, causal: bool) -> np.ndarray:
    """(cdiv(N_CTX, BLOCK_M),) int: K/V tiles each Q block's program folds in, as `_kv_tile_range` in flash.py.

    Under a causal mask a Q block stops at the tile holding its last query row; tiles
    that straddle the diagonal are visited (and masked), tiles above it are skipped.
    """
    _positive_ints(n_ctx=n_ctx, block_m=block_m, block_n=block_n)
    start_m = np.arange(cdiv(n_ctx, block_m))
    last_key = np.minimum((start_m + 1) * block_m, n_ctx) if causal else np.full_like(start_m, n_ctx)
    return -(-last_key // block_n)


def fa2_work(batch: int, heads: int, n_ctx: int, block_m: int, block_n: int, causal: bool) -> np.ndarray:
    """(P,) int: K/V tiles of each FlashAttention-2 program, in grid order (Q block fastest, then batch x head)."""
    _, n_bh = fa2_grid(n_ctx, batch, heads, block_m)
    return np.tile(kv_tiles_visited(n_ctx, block_m, block_n, causal), n_bh)  # (n_bh * n_q_blocks,)


def fa1_work(batch: int, heads: int, n_ctx: int, block_m: int, block_n: int, causal: bool) -> np.ndarray:
    """(B * H,) int: K/V tiles of each FlashAttention program: one program walks every tile of its head."""
    per_head = int(kv_tiles_visited(n_ctx, block_m, block_n, causal).sum())
    _positive_ints(batch=batch, heads=heads)
    return np.full(batch * heads, per_head)


def tile_seconds(gpu: GPU, block_m: int, block_n: int, head_dim: int, dtype: str = "fp16") -> float:
    """Seconds one SM needs for one (BLOCK_M x BLOCK_N) tile's two matmuls at its share of the tensor peak."""
    _positive_ints(block_m=block_m, block_n=block_n, head_dim=head_dim)
    flops = FLOPS_PER_TILE_ENTRY * block_m * block_n * head_dim
    return flops / (gpu.tensor_flops[dtype] / gpu.sms)


@dataclass(frozen=True, eq=False)
class Dispatch:
    """Which SM ran each program, and when, in units of one K/V tile's cost.

    Invariant (tested): an SM runs one program at a time and never idles while
    a program is waiting, so each SM is busy from 0 until its last program ends.
    """

    n_sms: int
    work: np.ndarray  # (P,) int: tiles per program, grid order
    sm: np.ndarray  # (P,) int: the SM each program ran on
    start: np.ndarray  # (P,) int
    end: np.ndarray  # (P,) int

    @property
    def makespan(self) -> int:
        return int(self.end.max())

    @property
    def utilisation(self) -> float:
        """Busy SM-time over available SM-time until the last program ends."""
        return float(self.work.sum()) / (self.n_sms * self.makespan)

    def sm_end(self) -> np.ndarray:
        """(n_sms,) int: when each SM finished its last program (0 if it never got one)."""
        out = np.zeros(self.n_sms, dtype=np.int64)
        np.maximum.at(out, self.sm, self.end)
        return out

    def programs_per_sm(self) -> np.ndarray:
        return np.bincount(self.sm, minlength=self.n_sms)


def dispatch(work: np.ndarray, n_sms: int) -> Dispatch:
    """Greedy block scheduler: programs in grid order, each to the SM that frees first (lowest index on ties).

    One resident program per SM: an assumption (FlashAttention-2's 128 x 64 tiles for
    d = 128 leave room for two on an A100); it changes the granularity, not the picture.
    """
    _positive_ints(n_sms=n_sms)
    work = np.asarray(work, dtype=np.int64)
    if work.ndim != 1 or len(work) == 0 or (work < 1).any():
        raise ValueError(f"work must be a non-empty 1-D array of positive tile counts, got shape {work.shape}")
    free = [(0, sm) for sm in range(n_sms)]  # (time the SM frees, SM index): already a heap
    sm = np.empty(len(work), dtype=np.int64)
    start = np.empty(len(work), dtype=np.int64)
    for p, tiles in enumerate(work):
        start[p], sm[p] = heapq.heappop(free)
        heapq.heappush(free, (int(start[p] + tiles), int(sm[p])))
    return Dispatch(n_sms=n_sms, work=work, sm=sm, start=start, end=start + work)


# --------------------------------------------------------------------------- 2. warpgroups

# Special-function (exp) throughput: 16 results per SM per clock (CUDA C Programming
# Guide, arithmetic instruction throughput, compute capability 9.0), as FlashAttention-3's
# footnote 5 (Section 3.1) uses it.
SFU_OPS_PER_CLOCK_PER_SM = 16
WARPGROUP_ROWS = 64  # a WGMMA instruction covers 64 rows per warpgroup (4 warps)


@dataclass(frozen=True)
class OpCosts:
    """Cycles of one warpgroup's share of one K/V tile, on one SM.

    gemm: one of S = Q K_j^T or O += P V_j for WARPGROUP_ROWS query rows.
    softmax: the exps of that warpgroup's S tile, at the SFU rate (the other softmax
        arithmetic runs on the FP32 ALUs and is not counted).
    load: one K_j or V_j tile arriving in shared memory (an assumption, see `op_costs`).
    """

    gemm: float
    softmax: float
    load: float
    clock_hz: float
    tensor_flops_per_clock: int  # per SM
    exp_flops: float  # the GPU's exp throughput, 1/s
    matmul_to_exp_flops: float  # matmul FLOPs per exp in one tile
    exp_throughput_gap: float  # tensor FLOP/s over exp/s


def op_costs(gpu: GPU, head_dim: int, block_n: int, load_gemms: float = 1.0, dtype: str = "fp16") -> OpCosts:
    """Per-operation cycles from the GPU's tensor peak and exp throughput.

    Per score, the two GEMMs cost 4 d FLOPs and softmax one exp: 512x more FLOPs at
    d = 128, on a unit 256x faster, so the exps take half as long as the two GEMMs
    (FlashAttention-3, Section 3.1). `load_gemms` sets one K or V tile's arrival time
    in GEMMs: assumed 1 (on chip the tiles mostly come from L2, which no spec here
    gives; what matters is whether the schedule hides loads, not their exact length).
    """
    _positive_ints(head_dim=head_dim, block_n=block_n)
    if not load_gemms > 0:
        raise ValueError(f"load_gemms={load_gemms!r} must be positive")
    # FLOP / cycle / SM: a whole number by design (4096 on H100 for FP16), so round off the spec's 4 digits.
    tensor_per_clock = round(gpu.tensor_flops[dtype] / (gpu.sms * gpu.boost_clock_hz))
    gemm = 2 * WARPGROUP_ROWS * block_n * head_dim / tensor_per_clock
    softmax = WARPGROUP_ROWS * block_n / SFU_OPS_PER_CLOCK_PER_SM
    exp_flops = SFU_OPS_PER_CLOCK_PER_SM * gpu.sms * gpu.boost_clock_hz
    return OpCosts(gemm=gemm, softmax=softmax, load=load_gemms * gemm, clock_hz=gpu.boost_clock_hz,
                   tensor_flops_per_clock=tensor_per_clock, exp_flops=exp_flops,
                   matmul_to_exp_flops=FLOPS_PER_TILE_ENTRY * head_dim,
                   exp_throughput_gap=gpu.tensor_flops[dtype] / exp_flops)


@dataclass(frozen=True)
class Op:
    """One operation of the SM's timeline.

    kind: "load K", "load V", "GEMM0" (S = Q K_j^T), "softmax" or "GEMM1" (O += P V_j).
    rows: the consumer warpgroups whose query rows it serves: (0,), (1,), both (0, 1)
        for FlashAttention-2's warps moving in step, () for a load.
    """

    kind: str
    tile: int
    rows: tuple[int, ...]
    unit: str  # "copy", "tensor" or "exp": each runs one op at a time
    duration: float
    deps: tuple[int, ...]  # indices of ops that must finish before this one starts


UNIT = {"load K": "copy", "load V": "copy", "GEMM0": "tensor", "softmax": "exp", "GEMM1": "tensor"}


class _Builder:
    """Collects ops in priority order; deps may be added after an op, once their targets exist."""

    def __init__(self, costs: OpCosts):
        self.costs = costs
        self.keys: list[tuple[str, int, tuple[int, ...]]] = []
        self.deps: list[list[int]] = []
        self.index: dict[tuple[str, int, tuple[int, ...]], int] = {}

    def add(self, kind: str, tile: int, rows: tuple[int, ...]) -> int:
        self.keys.append((kind, tile, rows))
        self.deps.append([])
        self.index[kind, tile, rows] = len(self.keys) - 1
        return len(self.keys) - 1

    def get(self, kind: str, tile: int, rows: tuple[int, ...]) -> int | None:
        return self.index.get((kind, tile, rows))

    def need(self, op: int, *deps: int | None) -> None:
        self.deps[op].extend(d for d in deps if d is not None)

    def ops(self) -> list[Op]:
        cost = {"load K": self.costs.load, "load V": self.costs.load, "GEMM0": self.costs.gemm,
                "softmax": self.costs.softmax, "GEMM1": self.costs.gemm}
        # Warps moving in step share each unit, so an op over both halves takes twice as long.
        return [Op(kind, tile, rows, UNIT[kind], cost[kind] * max(1, len(rows)), tuple(deps))
                for (kind, tile, rows), deps in zip(self.keys, self.deps)]


def _fa2_sync(n_tiles: int, costs: OpCosts) -> list[Op]:
    """FlashAttention-2's forward loop (csrc/flash_attn/src/flash_fwd_kernel.h): all warps in step.

    Per tile j: wait for K_j; issue the V_j copy; GEMM0; wait for V_j; issue the next K
    copy; softmax; GEMM1. Copies are asynchronous (cp.async) but issued by the same warps,
    and every GEMM and softmax is waited for before the next starts.
    """
    b, both = _Builder(costs), (0, 1)
    load_k = b.add("load K", 0, ())
    for j in range(n_tiles):
        prev_gemm1 = b.get("GEMM1", j - 1, both)
        load_v = b.add("load V", j, ())
        b.need(load_v, load_k, prev_gemm1)
        gemm0 = b.add("GEMM0", j, both)
        b.need(gemm0, load_k, prev_gemm1)
        if j + 1 < n_tiles:
            load_k = b.add("load K", j + 1, ())
            b.need(load_k, gemm0, load_v)
        softmax = b.add("softmax", j, both)
        b.need(softmax, gemm0, load_v)
        b.need(b.add("GEMM1", j, both), softmax)
    return b.ops()


def _consumer(b: _Builder, g: tuple[int, ...], n_tiles: int, intra_overlap: bool) -> list[list[int]]:
    """One consumer warpgroup's ops; returns its GEMM blocks in issue order (for ping-pong).

    Without `intra_overlap`, Algorithm 1's loop: GEMM0(j), softmax(j), GEMM1(j), each
    waited for. With it, Algorithm 2: iteration j issues GEMM0(j) and then GEMM1(j - 1),
    so softmax(j) runs while GEMM1(j - 1) is on the tensor cores; GEMM0(j + 1) waits
    for GEMM1(j - 1) (the O rescale of iteration j needs it).
    """
    gemm0 = [b.add("GEMM0", j, g) for j in range(n_tiles)]
    softmax = [b.add("softmax", j, g) for j in range(n_tiles)]
    gemm1 = [b.add("GEMM1", j, g) for j in range(n_tiles)]
    for j in range(n_tiles):
        b.need(softmax[j], gemm0[j])
        b.need(gemm1[j], softmax[j])
        if j == 0:
            continue
        if intra_overlap:
            b.need(gemm0[j], softmax[j - 1], gemm1[j - 2] if j >= 2 else None)
            b.need(gemm1[j - 1], gemm0[j])  # issued right after GEMM0(j): tensor cores run them in order
        else:
            b.need(gemm0[j], gemm1[j - 1])
    if intra_overlap:
        b.need(gemm1[-1], gemm1[-2] if n_tiles > 1 else None)
        middle = [[gemm0[j], gemm1[j - 1]] for j in range(1, n_tiles)]
    else:
        middle = [[gemm1[j - 1], gemm0[j]] for j in range(1, n_tiles)]
    return [[gemm0[0]], *middle, [gemm1[-1]]]


def _fa3(n_tiles: int, costs: OpCosts, intra_overlap: bool, stages: int) -> list[Op]:
    """FlashAttention-3 (Section 3.1): a producer warpgroup streams K_j, V_j through a
    `stages`-deep circular buffer; two consumer warpgroups take turns on the tensor cores.

    Ping-pong: a bar.sync makes warpgroup 1's GEMM block of an iteration (GEMM1 of one
    tile and GEMM0 of the next) follow warpgroup 0's and precede warpgroup 0's next, so
    each warpgroup's softmax runs while the other's GEMMs hold the tensor cores.
    A K (V) stage is refilled once both consumers' GEMM0 (GEMM1) that read it are done.
    """
    b = _Builder(costs)
    groups = ((0,), (1,))
    previous = None
    for j in range(n_tiles):  # one producer thread issues K0, V0, K1, V1, ... in program order
        for kind in ("load K", "load V"):
            load = b.add(kind, j, ())
            b.need(load, previous)
            previous = load
    blocks = [_consumer(b, g, n_tiles, intra_overlap) for g in groups]
    turns = [block for pair in zip(*blocks) for block in pair]  # wg0, wg1, wg0, wg1, ...
    for before, after in itertools.pairwise(turns):
        b.need(after[0], before[-1])
    for j in range(n_tiles):
        for g in groups:
            b.need(b.get("GEMM0", j, g), b.get("load K", j, ()))
            b.need(b.get("GEMM1", j, g), b.get("load V", j, ()))
        if j >= stages:
            b.need(b.get("load K", j, ()), *(b.get("GEMM0", j - stages, g) for g in groups))
            b.need(b.get("load V", j, ()), *(b.get("GEMM1", j - stages, g) for g in groups))
    return b.ops()


SCHEDULES = {
    "fa2": "FlashAttention-2: synchronous",
    "pingpong": "FlashAttention-3: ping-pong",
    "pingpong_overlap": "FlashAttention-3: ping-pong + intra-warpgroup overlap",
}


@dataclass(frozen=True, eq=False)
class WarpSchedule:
    name: str
    ops: tuple[Op, ...]
    start: np.ndarray  # (n_ops,) cycles
    end: np.ndarray  # (n_ops,) cycles

    @property
    def makespan(self) -> float:
        return float(self.end.max())

    def busy(self, unit: str) -> float:
        """Fraction of the makespan the unit is working."""
        return sum(op.duration for op in self.ops if op.unit == unit) / self.makespan


def list_schedule(ops: list[Op]) -> tuple[np.ndarray, np.ndarray]:
    """Greedy list scheduling: repeatedly start the ready op that can start earliest
    (ties: the earlier in `ops`) once its deps are done and its unit is free."""
    n = len(ops)
    start, end = np.full(n, np.nan), np.full(n, np.nan)
    unit_free: dict[str, float] = {}
    done = np.zeros(n, dtype=bool)
    for _ in range(n):
        best = None
        for i, op in enumerate(ops):
            if done[i] or not all(done[d] for d in op.deps):
                continue
            t = max([unit_free.get(op.unit, 0.0), *(end[d] for d in op.deps)])
            if best is None or t < best[0]:
                best = (t, i)
        if best is None:
            raise AssertionError("dependency cycle among ops")
        t, i = best
        start[i], end[i] = t, t + ops[i].duration
        unit_free[ops[i].unit] = end[i]
        done[i] = True
    return start, end


def warp_schedule(name: str, n_tiles: int, costs: OpCosts, stages: int = 2) -> WarpSchedule:
    """One SM's timeline for one Q tile (2 x 64 rows) over `n_tiles` K/V tiles under schedule `name`.

    stages: FlashAttention-3's circular K/V buffer depth (2 for d = 128 in its code).
    """
    if name not in SCHEDULES:
        raise ValueError(f"name={name!r} must be one of {', '.join(SCHEDULES)}")
    _positive_ints(n_tiles=n_tiles, stages=stages)
    if name == "fa2":
        ops = _fa2_sync(n_tiles, costs)
    else:
        ops = _fa3(n_tiles, costs, intra_overlap=name == "pingpong_overlap", stages=stages)
    start, end = list_schedule(ops)
    return WarpSchedule(name=name, ops=tuple(ops), start=start, end=end)
