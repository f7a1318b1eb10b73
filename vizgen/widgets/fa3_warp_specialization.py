"""fa3-warp-specialization: what the warps of one H100 SM do over a few K/V tiles,
under FlashAttention-2's synchronous loop and under FlashAttention-3's schedule.

A model, not a measurement (`kernels.gpu_schedule.warp_schedule`): one 128-row Q tile
(two 64-row consumer warpgroups) streamed past N_TILES K/V tiles of 128 keys, head
dimension 128, FP16. Operation lengths come from the H100's published throughputs
(FlashAttention-3, arXiv:2407.08608, Section 3.1 and its footnote 5); the load length is
an assumption, said so on the canvas. A list scheduler places every operation as early
as its data dependencies and its unit (copy engine, tensor cores, exp unit) allow.
"""

from __future__ import annotations

from kernels import gpu_schedule
from kernels.gpu_specs import H100

GPU = H100
HEAD_DIM = 128
BLOCK_N = 128  # FlashAttention-3's K/V tile for d = 128 under a causal mask (176 without; the ratios are the same)
BLOCK_M = 2 * gpu_schedule.WARPGROUP_ROWS  # two consumer warpgroups of 64 rows, as FA3 runs d = 128
N_TILES = 6  # enough K/V tiles to reach the steady state and still read each bar
SHOWN = ("fa2", "pingpong_overlap")  # the two schedules of the toggle, in order

LANES = {
    "fa2": {"load": "cp.async copies, issued by the compute warps", "wg0": "all 4 warps, in step",
            "wg1": "the same 4 warps"},
    "pingpong_overlap": {"load": "producer warpgroup (TMA)", "wg0": "consumer warpgroup 1",
                         "wg1": "consumer warpgroup 2"},
}
SUB_ROW = {"GEMM0": "gemm", "GEMM1": "gemm", "softmax": "exp"}  # a warpgroup's two rows: GEMMs issued, its own exps


def _bars(schedule: gpu_schedule.WarpSchedule) -> list[dict]:
    """One bar per (op, row it is drawn on): loads on the producer's row; a GEMM on its
    warpgroup's GEMM row and on the tensor-core strip; a softmax on its warpgroup's exp row.

    A warpgroup gets two rows because under FlashAttention-3 its softmax of tile j runs
    while its own GEMM1 of tile j - 1 is on the tensor cores. Keys match across schedules
    where the same work appears (e.g. GEMM0 of tile 2 for rows 0-63), so the browser can
    move a bar instead of redrawing it.
    """
    bars = []
    for op, start, end in zip(schedule.ops, schedule.start, schedule.end):
        lanes = ["load"] if not op.rows else [f"wg{r}-{SUB_ROW[op.kind]}" for r in op.rows]
        if op.unit == "tensor":
            lanes.append("tensor")
        for lane in lanes:
            owner = "".join(map(str, op.rows)) if lane == "tensor" else ""
            bars.append({"key": f"{op.kind}-{op.tile}-{lane}{owner}", "lane": lane, "kind": op.kind,
                         "tile": op.tile, "start": float(start), "end": float(end)})
    return bars


def _caption(name: str, s: gpu_schedule.WarpSchedule, base: gpu_schedule.WarpSchedule) -> str:
    tensor = f"{100 * s.busy('tensor'):.0f} %"
    if name == "fa2":
        return (f"FlashAttention-2: the same warps load, multiply and exponentiate, all in step. "
                f"Every softmax waits for its GEMM0 and holds up GEMM1, so the tensor cores sit idle "
                f"while the exps run: busy {tensor} of the {s.makespan:,.0f} cycles.")
    return (f"FlashAttention-3: a producer warpgroup keeps K and V arriving ahead of use. While one "
            f"consumer warpgroup exponentiates, the other's GEMMs hold the tensor cores (ping-pong), "
            f"and each warpgroup's softmax of tile j overlaps its own GEMM1 of tile j − 1. Tensor cores "
            f"busy {tensor}: {s.makespan:,.0f} cycles, {base.makespan / s.makespan:.2f}× sooner.")


def trace() -> dict:
    costs = gpu_schedule.op_costs(GPU, HEAD_DIM, BLOCK_N)
    schedules = {name: gpu_schedule.warp_schedule(name, N_TILES, costs) for name in gpu_schedule.SCHEDULES}
    base = schedules["fa2"]
    shown = [{
        "id": name,
        "label": gpu_schedule.SCHEDULES[name],
        "lanes": LANES[name],
        "bars": _bars(schedules[name]),
        "makespan": schedules[name].makespan,
        "makespan_us": schedules[name].makespan / costs.clock_hz * 1e6,
        "tensor_busy": schedules[name].busy("tensor"),
        "exp_busy": schedules[name].busy("exp"),
        "speedup": base.makespan / schedules[name].makespan,
        "caption": _caption(name, schedules[name], base),
    } for name in SHOWN]
    data = {
        "gpu": GPU.name, "head_dim": HEAD_DIM, "block_m": BLOCK_M, "block_n": BLOCK_N,
        "wg_rows": gpu_schedule.WARPGROUP_ROWS, "n_tiles": N_TILES,
        "gemm_cycles": costs.gemm, "softmax_cycles": costs.softmax, "load_cycles": costs.load,
        "tensor_flops_per_clock": costs.tensor_flops_per_clock,
        "sfu_per_clock": gpu_schedule.SFU_OPS_PER_CLOCK_PER_SM,
        "clock_ghz": costs.clock_hz / 1e9,
        "scale": max(s["makespan"] for s in shown),
        "schedules": shown,
    }
    return {"data": data, "facts": _facts(costs, schedules)}


def _facts(costs: gpu_schedule.OpCosts, schedules: dict) -> dict:
    fa2, fa3, pingpong = schedules["fa2"], schedules["pingpong_overlap"], schedules["pingpong"]
    fp8 = gpu_schedule.op_costs(GPU, HEAD_DIM, BLOCK_N, dtype="fp8")
    return {
        "gpu": GPU.name,
        "tensor_tflops": f"{GPU.tensor_flops['fp16'] / 1e12:.0f}",
        "exp_tflops": f"{costs.exp_flops / 1e12:.1f}",
        "sfu_per_clock": gpu_schedule.SFU_OPS_PER_CLOCK_PER_SM,
        "clock_ghz": f"{costs.clock_hz / 1e9:.2f}",
        "tensor_flops_per_clock": costs.tensor_flops_per_clock,
        "matmul_to_exp_flops": f"{costs.matmul_to_exp_flops}×",
        "exp_throughput_gap": f"{costs.exp_throughput_gap:.0f}×",
        "exp_share_of_gemms": f"{100 * costs.softmax / (2 * costs.gemm):.0f} %",
        "exp_share_of_gemms_fp8": f"{100 * fp8.softmax / (2 * fp8.gemm):.0f} %",
        "head_dim": HEAD_DIM, "block_m": BLOCK_M, "block_n": BLOCK_N, "n_tiles": N_TILES,
        "wg_rows": gpu_schedule.WARPGROUP_ROWS,
        "gemm_cycles": f"{costs.gemm:.0f}",
        "softmax_cycles": f"{costs.softmax:.0f}",
        "load_cycles": f"{costs.load:.0f}",
        "makespan_fa2": f"{fa2.makespan:,.0f}",
        "makespan_fa3": f"{fa3.makespan:,.0f}",
        "makespan_pingpong_only": f"{pingpong.makespan:,.0f}",
        "speedup": f"{fa2.makespan / fa3.makespan:.2f}×",
        "tensor_busy_fa2": f"{100 * fa2.busy('tensor'):.1f} %",
        "tensor_busy_fa3": f"{100 * fa3.busy('tensor'):.1f} %",
        # Measured by the FlashAttention-3 paper (arXiv:2407.08608), for contrast with the model.
        "paper_pingpong": "570 → 620–640 TFLOPS (FP16 forward, d = 128, N = 8192; Section 3.1)",
        "paper_ablation": ("661 TFLOPS with warp specialization and the 2-stage GEMM-softmax pipeline, "
                           "582 without the pipeline, 570 without warp specialization "
                           "(Table 2: FP16, non-causal, batch 4, N = 8448, 16 heads, d = 128)"),
    }
