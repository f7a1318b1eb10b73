"""Ring attention on a real distributed engine: torch.distributed (gloo) on CPU processes.

Liu, Zaharia & Abbeel 2023, "Ring Attention with Blockwise Transformers for
Near-Infinite Context" (arXiv:2310.01889). The sequence is cut into P equal shards,
one per device (here: one process per rank). Rank r keeps its query shard Q_r for the
whole computation; the key/value shards travel around the ring r -> r + 1. At step t
rank r holds K/V shard (r - t) mod P. It posts the send of that shard to its right
neighbour and the receive of the next one from its left neighbour *before* computing
blockwise attention against it, and waits for both only afterwards, so the transfer
runs while it computes. Partial results are merged with the online softmax (running
max m_i, running sum l_i, un-normalised acc): the same update as the FlashAttention-2
inner loop (Dao 2023, arXiv:2307.08691, Algorithm 1; `kernels.reference`), one K/V
shard at a time instead of one tile at a time.

Causal masking: rank r needs only shards s <= r, so it skips P - 1 - r of its P steps
and the last rank does P times the work of the first. Striped Attention (Brandon et al.
2023, arXiv:2311.09431) fixes this imbalance by giving each device tokens spread
uniformly over the sequence instead of a contiguous block.

Second half: the cost model the widget pairs with the measured step structure. One
step computes a (c x c) block of attention (4 c^2 H d FLOPs) while sending a K/V shard
(2 c H_kv d bytes); communication hides when the first takes longer than the second.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import queue as queue_module
import tempfile
import time
import traceback
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

from kernels.gpu_specs import GPU, Link

__all__ = [
    "RingError",
    "StepRecord",
    "RingResult",
    "ring_attention",
    "shard_held",
    "merge_block",
    "causal_blocks_per_rank",
    "LayerShape",
    "StepCost",
    "step_cost",
    "min_hiding_tokens",
    "ring_schedule",
    "allgather_time",
]

POLL_S = 0.05  # how often the parent looks for a dead child while waiting for results
TERMINATE_GRACE_S = 2.0  # SIGTERM, then this long, then SIGKILL
TRANSFER_REPEATS = 3  # blocking send/recv round trips timed after the ring, best kept


class RingError(RuntimeError):
    """A rank failed, died or did not finish in time; the message names it."""


@dataclass(frozen=True)
class StepRecord:
    """What one rank did at one step of the rotation, with measured wall times."""

    rank: int
    step: int
    shard: int  # the K/V shard resident during this step: (rank - step) mod P
    computed: bool  # False when the causal mask hides the whole shard (skipped)
    compute_s: float  # blockwise attention + online-softmax merge
    wait_s: float  # blocked on send/recv after computing: communication NOT hidden


@dataclass(frozen=True)
class RingResult:
    out: np.ndarray  # (B, H, N, D) float64, equal to full attention
    steps: tuple[StepRecord, ...]  # sorted by (step, rank)
    transfer_s: tuple[float, ...]  # per rank: one K/V shard sent alone (blocking), best of a few
    shard_bytes: int  # bytes of one K/V shard as sent (K and V together)
    world_size: int
    causal: bool


def shard_held(rank: int, step: int, world_size: int) -> int:
    """The K/V shard rank `rank` holds at step `step`: shards move r -> r + 1 each step."""
    return (rank - step) % world_size


def causal_blocks_per_rank(world_size: int) -> list[int]:
    """Shards each rank must attend to under a causal mask: rank r needs shards 0..r."""
    return [rank + 1 for rank in range(world_size)]


# --------------------------------------------------------------------------
# The per-rank computation
# --------------------------------------------------------------------------


def _exp_minus(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """exp(x - m) where m = -inf (nothing visible yet) gives 0, not NaN."""
    return torch.exp(x - torch.where(torch.isneginf(m), torch.zeros_like(m), m))


def merge_block(m_i, l_i, acc, s_ij, v_j):
    """Fold one block of scores into the running state: the FA2 inner-loop update.

    m_i, l_i: (..., rows); acc: (..., rows, D); s_ij: (..., rows, cols) scaled, masked
    scores (-inf where hidden); v_j: (..., cols, D). Returns the new (m_i, l_i, acc).
    """
    m_new = torch.maximum(m_i, s_ij.amax(dim=-1))  # (..., rows)
    alpha = _exp_minus(m_i, m_new)  # rescales what was summed against the old max
    p_ij = _exp_minus(s_ij, m_new[..., None])  # (..., rows, cols)
    l_i = alpha * l_i + p_ij.sum(dim=-1)
    acc = alpha[..., None] * acc + p_ij @ v_j  # (..., rows, D)
    return m_new, l_i, acc


def _shard_visible(rank: int, shard: int, causal: bool) -> bool:
    """Under a causal mask every key of a later shard is in every query's future."""
    return not causal or shard <= rank


def _attend(q, kv, state, rank, shard, causal, scale):
    """Scores of the resident shard against the local queries, merged into state."""
    k, v = kv[0], kv[1]  # (B, H_kv, n, D) each
    n_rep = q.shape[1] // k.shape[1]  # GQA: query heads per K/V head
    k = k.repeat_interleave(n_rep, dim=1)  # (B, H, n, D)
    v = v.repeat_interleave(n_rep, dim=1)
    s_ij = (q @ k.transpose(-1, -2)) * scale  # (B, H, n, n)
    if causal and shard == rank:  # the diagonal shard: same positions on both sides
        n = q.shape[2]
        s_ij = s_ij.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), -math.inf)
    return merge_block(*state, s_ij, v)


def _rotate(kv, rank, world_size):
    """Post the send of the resident shard and the receive of the next; return both."""
    incoming = torch.empty_like(kv)
    requests = [
        dist.isend(kv, dst=(rank + 1) % world_size),
        dist.irecv(incoming, src=(rank - 1) % world_size),
    ]
    return incoming, requests


def _time_transfer(kv, rank, world_size) -> float:
    """One shard sent and received with nothing else running: the comm time alone."""
    best = math.inf
    for _ in range(TRANSFER_REPEATS):
        dist.barrier()
        start = time.perf_counter()
        _, requests = _rotate(kv, rank, world_size)
        for request in requests:
            request.wait()
        best = min(best, time.perf_counter() - start)
    return best


def _ring_loop(rank, world_size, q, kv, causal, fault):
    """The rotation on one rank. Returns its output shard and its step records."""
    B, H, n, D = q.shape  # (B, H, n, D) local queries
    state = (
        torch.full((B, H, n), -math.inf, dtype=q.dtype),  # m_i
        torch.zeros(B, H, n, dtype=q.dtype),  # l_i
        torch.zeros(B, H, n, D, dtype=q.dtype),  # acc
    )
    scale = 1.0 / math.sqrt(D)
    records = []
    for step in range(world_size):
        shard = shard_held(rank, step, world_size)
        last = step == world_size - 1
        incoming, requests = (None, []) if last else _rotate(kv, rank, world_size)  # posted first
        _inject(fault, rank, step)
        start = time.perf_counter()
        visible = _shard_visible(rank, shard, causal)
        if visible:
            state = _attend(q, kv, state, rank, shard, causal, scale)
        computed = time.perf_counter()
        for request in requests:
            request.wait()
        waited = time.perf_counter()
        records.append(StepRecord(rank, step, shard, visible, computed - start, waited - computed))
        if not last:
            kv = incoming
    m_i, l_i, acc = state
    return (acc / l_i[..., None]).numpy(), records  # (B, H, n, D): causal rows always see their own key


def _inject(fault, rank, step):
    """Test-only hook: make one rank raise or hang at a given step."""
    if fault is None or fault[1] != rank or fault[2] != step:
        return
    if fault[0] == "raise":
        raise RuntimeError(f"injected failure at step {step}")
    time.sleep(3600)  # "hang": the parent's timeout must catch it


def _worker(rank, world_size, store_path, timeout_s, q, k, v, causal, fault, results):
    """Entry point of one rank's process: run the ring, report the result or the error."""
    torch.set_num_threads(1)  # P processes share the machine's cores
    try:
        store = dist.FileStore(store_path, world_size)
        dist.init_process_group("gloo", store=store, rank=rank, world_size=world_size,
                                timeout=timedelta(seconds=timeout_s))
        kv = torch.stack([torch.from_numpy(k), torch.from_numpy(v)])  # (2, B, H_kv, n, D)
        dist.barrier()  # start the clocks together, not at each process's start-up
        out, records = _ring_loop(rank, world_size, torch.from_numpy(q), kv, causal, fault)
        transfer = _time_transfer(kv, rank, world_size)
        dist.destroy_process_group()
        results.put(("ok", rank, (out, records, transfer)))
    except Exception as err:  # any failure must reach the parent, which names the rank
        results.put(("error", rank, f"{type(err).__name__}: {err}\n{traceback.format_exc()}"))


# --------------------------------------------------------------------------
# The parent: start, collect, clean up
# --------------------------------------------------------------------------


def _check_inputs(q, k, v, world_size, timeout_s):
    q, k, v = (np.ascontiguousarray(np.asarray(t, dtype=np.float64)) for t in (q, k, v))
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be a positive integer, got {world_size!r}")
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s!r}")
    if q.ndim != 4 or k.shape != v.shape or k.ndim != 4:
        raise ValueError(f"q, k, v must be (B, H, N, D) with k and v alike, got {q.shape}, {k.shape}, {v.shape}")
    if k.shape[0] != q.shape[0] or k.shape[2:] != q.shape[2:] or q.shape[1] % k.shape[1]:
        raise ValueError(f"k {k.shape} does not fit q {q.shape} (same B, N, D; H a multiple of H_kv)")
    if q.shape[2] % world_size:
        raise ValueError(f"world_size {world_size} must divide the sequence length {q.shape[2]}")
    return q, k, v


def _collect(results, processes, deadline):
    """Wait for every rank's report; raise on the first error, death or the deadline."""
    reports = {}
    while len(reports) < len(processes):
        try:
            kind, rank, payload = results.get(timeout=POLL_S)
        except queue_module.Empty:
            _check_alive(processes, reports, deadline)
            continue
        if kind == "error":
            raise RingError(f"rank {rank} failed: {payload.splitlines()[0]}\n{payload}")
        reports[rank] = payload
    return reports


def _check_alive(processes, reports, deadline):
    for rank, process in enumerate(processes):
        if rank not in reports and process.exitcode not in (None, 0):
            raise RingError(f"rank {rank} died with exit code {process.exitcode} before reporting")
    if time.monotonic() > deadline:
        missing = [rank for rank in range(len(processes)) if rank not in reports]
        raise RingError(f"ranks {missing} did not finish within the timeout")


def _stop(processes):
    """Terminate and reap every child still running; none outlives the call."""
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        if process.pid is None:  # never started (start-up failed before it)
            continue
        process.join(TERMINATE_GRACE_S)
        if process.is_alive():
            process.kill()
            process.join()


def ring_attention(q, k, v, *, world_size, causal=False, timeout_s=60.0, _fault=None) -> RingResult:
    """Attention of (B, H, N, D) inputs computed by `world_size` gloo processes in a ring.

    Each rank gets a contiguous N / world_size slice of q, k and v (k, v may have fewer
    heads: GQA). Returns the full output, gathered from the ranks, with every rank's
    per-step record. The whole call, process start-up included, must finish within
    `timeout_s`; a rank that raises, dies or hangs ends it with a RingError naming the
    rank, and every child process is terminated before this function returns.
    `_fault = ("raise" | "hang", rank, step)` is a test-only hook.
    """
    q, k, v = _check_inputs(q, k, v, world_size, timeout_s)
    n = q.shape[2] // world_size
    ctx = mp.get_context("spawn")  # a fresh interpreter per rank: no forked torch state
    results = ctx.Queue()
    with tempfile.TemporaryDirectory(prefix="ring-") as tmp:
        processes = [
            ctx.Process(target=_worker, daemon=True, args=(
                rank, world_size, os.path.join(tmp, "store"), timeout_s,
                q[:, :, rank * n:(rank + 1) * n], k[:, :, rank * n:(rank + 1) * n],
                v[:, :, rank * n:(rank + 1) * n], causal, _fault, results))
            for rank in range(world_size)
        ]
        deadline = time.monotonic() + timeout_s
        try:
            for process in processes:
                process.start()
            reports = _collect(results, processes, deadline)
        finally:
            _stop(processes)
            results.close()
    out = np.concatenate([reports[rank][0] for rank in range(world_size)], axis=2)  # (B, H, N, D)
    steps = sorted((r for rank in range(world_size) for r in reports[rank][1]), key=lambda r: (r.step, r.rank))
    transfer = tuple(reports[rank][2] for rank in range(world_size))
    shard_bytes = 2 * k[:, :, :n].nbytes  # K and V travel together
    return RingResult(out, tuple(steps), transfer, shard_bytes, world_size, causal)


# --------------------------------------------------------------------------
# Cost model: when does communication hide under compute?
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerShape:
    """One attention layer's shape for the cost model."""

    heads: int  # query heads H
    kv_heads: int  # K/V heads H_kv: what travels (GQA sends fewer)
    head_dim: int  # d
    bytes_per_element: int  # 2 for fp16 / bf16
    dtype: str  # the tensor-core peak to use


@dataclass(frozen=True)
class StepCost:
    tokens: int  # c, tokens per device (the shard length)
    flops: float  # one (c x c) block of attention, forward
    shard_bytes: float  # one K/V shard
    compute_s: float
    comm_s: float

    @property
    def hidden(self) -> bool:
        return self.compute_s >= self.comm_s


def step_cost(tokens: int, shape: LayerShape, gpu: GPU, link: Link) -> StepCost:
    """One ring step: S = Q K^T and P V are 2 c^2 d FLOPs each per head; K and V
    are c d elements each per K/V head. Compute at the GPU's dense tensor peak."""
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
        raise ValueError(f"tokens must be a positive integer, got {tokens!r}")
    flops = 4 * tokens**2 * shape.heads * shape.head_dim
    shard_bytes = 2 * tokens * shape.kv_heads * shape.head_dim * shape.bytes_per_element
    return StepCost(tokens, flops, shard_bytes,
                    flops / gpu.tensor_flops[shape.dtype], link.seconds_to_send(shard_bytes))


def min_hiding_tokens(shape: LayerShape, gpu: GPU, link: Link) -> float:
    """Shard length c at which compute time equals transfer time.

    4 c^2 H d / F = 2 c H_kv d b / W  gives  c = (H_kv / H) (b / 2) F / W: with MHA in
    16-bit, c = F / W (FLOP/s over link bytes/s), independent of d and H.
    """
    return (shape.kv_heads / shape.heads) * (shape.bytes_per_element / 2) * gpu.tensor_flops[shape.dtype] / link.bandwidth


def ring_schedule(cost: StepCost, world_size: int) -> list[dict]:
    """Every device's timeline (identical without a causal mask), one entry per step.

    Step t starts when both the compute and the transfer of step t - 1 are done; the
    last step sends nothing. Times in seconds from the start.
    """
    steps, start = [], 0.0
    for step in range(world_size):
        comm = 0.0 if step == world_size - 1 else cost.comm_s
        end = start + max(cost.compute_s, comm)
        steps.append({"step": step, "start": start, "compute_end": start + cost.compute_s,
                      "comm_end": start + comm, "end": end})
        start = end
    return steps


def allgather_time(cost: StepCost, world_size: int) -> dict:
    """The baseline: gather all P - 1 other shards first (a ring all-gather, over the
    same link, nothing to overlap with), then compute the P blocks."""
    gather = (world_size - 1) * cost.comm_s
    return {"gather_s": gather, "compute_s": world_size * cost.compute_s,
            "total_s": gather + world_size * cost.compute_s}
