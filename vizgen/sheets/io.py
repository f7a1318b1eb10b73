"""io: how many bytes standard attention and FlashAttention move through HBM, from the
exact closed forms that tests/kernels/test_io_count.py checks against the interpreter's
counted loads and stores (`kernels.flash.hbm_bytes`, `kernels.naive.hbm_bytes`), and
the paper's asymptotic model (`kernels.io_count.paper_io_model`)."""

from __future__ import annotations

from kernels import flash, naive
from kernels.gpu_specs import A100, H100
from kernels.io_count import paper_io_model

FP16 = 2
HEAD_DIM = 128
BLOCK = 64  # our kernel's default tiles for 16-bit inputs on a GPU
SEQ_LENS = (1024, 4096, 16384)
MIB = 2**20


def _total(per_tensor: dict, names=None) -> int:
    return sum(v["load"] + v["store"] for k, v in per_tensor.items() if names is None or k in names)


def requested(n: int) -> tuple[dict, dict]:
    """Per-tensor bytes of one head, fp16, as each kernel requests them from global memory."""
    dims = dict(batch=1, heads=1, heads_kv=1, n_q=n, n_k=n, head_dim=HEAD_DIM, itemsize=FP16)
    # block_k = d: each output tile spans the whole head, so P is read once (Algorithm 0).
    return (naive.hbm_bytes(**dims, block_m=BLOCK, block_n=BLOCK, block_k=HEAD_DIM),
            flash.hbm_bytes(**dims, block_m=BLOCK, block_n=BLOCK))


def table() -> str:
    lines = ["| N | standard: S and P round trips | standard: total | FlashAttention: K, V re-reads | FlashAttention: total | ratio |",
             "|---:|---:|---:|---:|---:|---:|"]
    for n in SEQ_LENS:
        std, fa = requested(n)
        sp = _total(std, {"S", "P"})
        kv = _total(fa, {"K", "V"})
        lines.append(f"| {n:,} | {sp / MIB:,.0f} MiB | {_total(std) / MIB:,.0f} MiB | {kv / MIB:,.0f} MiB "
                     f"| {_total(fa) / MIB:,.0f} MiB | {_total(std) / _total(fa):.1f}× |")
    return "\n".join(lines)


def trace() -> dict:
    n = SEQ_LENS[-1]
    std, fa = requested(n)
    flops = 4 * n * n * HEAD_DIM
    footprint = 4 * n * HEAD_DIM * FP16  # Q, K, V and O, each touched at least once
    facts = {
        "d": HEAD_DIM, "block": BLOCK, "n": f"{n:,}",
        "std_total_mib": f"{_total(std) / MIB:,.0f}", "fa_total_mib": f"{_total(fa) / MIB:,.0f}",
        "sp_mib": f"{_total(std, {'S', 'P'}) / MIB:,.0f}", "kv_rereads_mib": f"{_total(fa, {'K', 'V'}) / MIB:,.0f}",
        "ratio": f"{_total(std) / _total(fa):.1f}",
        "footprint_mib": f"{footprint / MIB:.0f}",
        "kv_mib": f"{2 * n * HEAD_DIM * FP16 / MIB:.0f}",
        "std_intensity": f"{flops / _total(std):.0f}", "fa_intensity": f"{flops / _total(fa):.0f}",
        # If a cache served every repeated read: what each must still move to and from DRAM.
        "std_intensity_dram": f"{flops / (footprint + _total(std, {'S', 'P'})):.0f}",
        "fa_intensity_dram": f"{flops / footprint:,.0f}",
        "a100_l2_mib": A100.l2_bytes // MIB, "h100_l2_mib": H100.l2_bytes // MIB,
    }
    for gpu, name in ((A100, "a100"), (H100, "h100")):
        model = paper_io_model(n, HEAD_DIM, gpu.max_smem_per_sm, itemsize=FP16)
        facts[f"paper_ratio_{name}"] = f"{model['ratio']:.1f}"
    return {"facts": facts, "tables": {"requested": table()}}
