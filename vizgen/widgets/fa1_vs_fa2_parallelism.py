"""fa1-vs-fa2-parallelism: SM occupancy of a FlashAttention launch vs a FlashAttention-2 launch.

A model, not a measurement (`kernels.gpu_schedule.dispatch`): the same attention
(H = 16 heads, N = 8192, d = 128) as FlashAttention launches it, one program per
(batch, head) walking the whole sequence, and as FlashAttention-2 launches it, one
program per BLOCK_M query rows, grid (cdiv(N, BLOCK_M), B * H) (arXiv:2307.08691,
Section 3.2). Both do the same K/V tiles; only the way the work is cut into programs
differs. Every batch size of the slider, with and without a causal mask, is
precomputed here.

Tile sizes are FlashAttention-2's CUDA kernel for d = 128 on an A100 (sm80):
Flash_fwd_kernel_traits<128, kBlockM=128, kBlockN=64, 4 warps>, in run_mha_fwd_hdim128
of csrc/flash_attn/src/flash_fwd_launch_template.h (Dao-AILab/flash-attention).
"""

from __future__ import annotations

import numpy as np

from kernels import gpu_schedule
from kernels.gpu_specs import A100

GPU = A100
HEADS = 16  # the FlashAttention-2 paper's benchmarks at d = 128: hidden 2048 / 128
N_CTX = 8192
HEAD_DIM = 128
BLOCK_M, BLOCK_N = 128, 64  # FA2's CUDA kernel, d = 128, sm80 (see the module docstring)
BATCHES = (1, 2, 4, 8, 16, 32, 64)
# Program boundaries are drawn while an SM runs at most this many programs; past it the
# stripes would be thinner than a pixel in a 900 px frame and only bloat the trace.
MAX_DRAWN_PROGRAMS_PER_SM = 12
PAPER_THRESHOLD = 80  # FA2 Section 3.2: one block per (batch, head) is efficient when B * H is "say >= 80"


def _timeline(d: gpu_schedule.Dispatch, tile_ms: float) -> dict:
    """What the browser draws for one launch: per SM the end of each program (all but the last
    only when they are wide enough to see), plus the headline numbers."""
    per_sm = d.programs_per_sm()
    ends = None
    if per_sm.max() <= MAX_DRAWN_PROGRAMS_PER_SM:
        order = np.lexsort((d.start, d.sm))  # by SM, then time
        ends = [[] for _ in range(d.n_sms)]
        for p in order:
            ends[d.sm[p]].append(int(d.end[p]))
    return {
        "programs": len(d.work),
        "makespan": d.makespan,
        "makespan_ms": d.makespan * tile_ms,
        "utilisation": d.utilisation,
        "idle_sms": int((per_sm == 0).sum()),
        "max_programs_per_sm": int(per_sm.max()),
        "sm_end": d.sm_end(),
        "program_ends": ends,  # None: too many programs per SM to draw their boundaries
    }


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _fa1_sentence(batch: int, fa1: dict) -> str:
    programs, sms = fa1["programs"], GPU.sms
    head = f"B × H = {batch} × {HEADS} = {programs} FlashAttention programs"
    if programs < sms:
        return f"{head} for {sms} SMs: {fa1['idle_sms']} SMs never get one."
    full, rest = divmod(programs, sms)
    if rest == 0:
        return f"{head}: exactly {full} full wave{'s' * (full > 1)} of {sms}."
    return (f"{head}: {full} full wave{'s' * (full > 1)} of {sms}, then a last wave of {rest} "
            f"while {sms - rest} SMs wait.")


def _caption(batch: int, fa1: dict, fa2: dict, causal: bool) -> str:
    n_q_blocks = gpu_schedule.cdiv(N_CTX, BLOCK_M)
    uneven = " Under the causal mask the Q blocks near the diagonal end early, so its programs differ in length." if causal else ""
    return (f"{_fa1_sentence(batch, fa1)} FlashAttention-2 cuts each head into {n_q_blocks} Q blocks: "
            f"{fa2['programs']} programs, SMs busy {_pct(fa2['utilisation'])} of the time against "
            f"{_pct(fa1['utilisation'])}. It finishes {fa1['makespan'] / fa2['makespan']:.2f}× sooner.{uneven}")


def _case(batch: int, causal: bool, tile_ms: float) -> dict:
    d1 = gpu_schedule.dispatch(gpu_schedule.fa1_work(batch, HEADS, N_CTX, BLOCK_M, BLOCK_N, causal), GPU.sms)
    d2 = gpu_schedule.dispatch(gpu_schedule.fa2_work(batch, HEADS, N_CTX, BLOCK_M, BLOCK_N, causal), GPU.sms)
    if d1.work.sum() != d2.work.sum():
        raise RuntimeError(f"batch {batch}: the two launches must do the same tiles")
    fa1, fa2 = _timeline(d1, tile_ms), _timeline(d2, tile_ms)
    return {
        "batch": batch, "fa1": fa1, "fa2": fa2,
        "speedup": d1.makespan / d2.makespan,
        "tiles": int(d1.work.sum()),
        "caption": _caption(batch, fa1, fa2, causal),
    }


def trace() -> dict:
    tile_ms = gpu_schedule.tile_seconds(GPU, BLOCK_M, BLOCK_N, HEAD_DIM) * 1e3
    cases = {mask: [_case(b, mask == "causal", tile_ms) for b in BATCHES] for mask in ("full", "causal")}
    data = {
        "gpu": GPU.name, "n_sms": GPU.sms, "heads": HEADS, "n_ctx": N_CTX, "head_dim": HEAD_DIM,
        "block_m": BLOCK_M, "block_n": BLOCK_N, "batches": list(BATCHES),
        "tile_us": tile_ms * 1e3,
        "q_blocks": gpu_schedule.cdiv(N_CTX, BLOCK_M),
        "cases": cases,
    }
    return {"data": data, "facts": _facts(cases, tile_ms)}


def _facts(cases: dict, tile_ms: float) -> dict:
    full, causal = cases["full"], cases["causal"]
    at = {case["batch"]: case for case in full}
    alike = next(c["batch"] for c in full if c["fa1"]["utilisation"] >= 0.9)
    return {
        "gpu": GPU.name, "n_sms": GPU.sms, "heads": HEADS, "n_ctx": N_CTX, "head_dim": HEAD_DIM,
        "block_m": BLOCK_M, "block_n": BLOCK_N,
        "tile_us": f"{tile_ms * 1e3:.2f}",
        "q_blocks": gpu_schedule.cdiv(N_CTX, BLOCK_M),
        "fa1_programs_b1": at[1]["fa1"]["programs"],
        "fa2_programs_b1": at[1]["fa2"]["programs"],
        "fa1_idle_sms_b1": at[1]["fa1"]["idle_sms"],
        "fa1_util_b1": _pct(at[1]["fa1"]["utilisation"]),
        "fa2_util_b1": _pct(at[1]["fa2"]["utilisation"]),
        "speedup_b1": f"{at[1]['speedup']:.1f}×",
        "speedup_b1_causal": f"{causal[0]['speedup']:.1f}×",
        "fa2_util_b1_causal": _pct(causal[0]["fa2"]["utilisation"]),
        "fa1_util_b8": _pct(at[8]["fa1"]["utilisation"]),
        "fa2_util_b8": _pct(at[8]["fa2"]["utilisation"]),
        "speedup_b8": f"{at[8]['speedup']:.2f}×",
        "speedup_b64": f"{at[64]['speedup']:.2f}×",
        "fa1_util_b64": _pct(at[64]["fa1"]["utilisation"]),
        "alike_from_batch": alike,
        "alike_from_programs": alike * HEADS,
        "paper_threshold": PAPER_THRESHOLD,
        # FA1 at batch 8: one full wave, then a short last wave while most SMs wait.
        "fa1_programs_b8": at[8]["fa1"]["programs"],
        "fa1_tail_programs_b8": at[8]["fa1"]["programs"] % GPU.sms,
        "fa1_tail_idle_sms_b8": GPU.sms - at[8]["fa1"]["programs"] % GPU.sms,
        "speedup_b4": f"{at[4]['speedup']:.2f}×",
        "batches_shown": ", ".join(str(b) for b in BATCHES),
    }
