"""loop-orders: FlashAttention-1's and FlashAttention-2's loop orders on the same small
problem, run by the reference (`kernels.reference.flash_attention_tiled(record=True)`):
the order the tiles are visited, one row's running state, and what each order costs in
output traffic and normalisations — the worked example of Part 3."""

from __future__ import annotations

import numpy as np

from kernels import reference
from vizgen.fmt import sci

N, HEAD_DIM, BLOCK = 12, 4, 4  # 3 x 3 tiles: small enough to list every step
SEED = 0
# A realistic size for the traffic comparison (FlashAttention-2 paper's head dim 128).
BIG_N, BIG_D, BIG_BLOCK, FP16_BYTES = 8192, 128, 128, 2


def _run(loop_order: str):
    rng = np.random.default_rng(SEED)
    q, k, v = (rng.normal(size=(1, 1, N, HEAD_DIM)) for _ in range(3))
    out, steps = reference.flash_attention_tiled(q, k, v, block_m=BLOCK, block_n=BLOCK,
                                                 loop_order=loop_order, record=True)
    return q, k, v, out, steps


def _visit(step) -> str:
    return f"Q{step['q_block']}·K{step['kv_block']}"


def _order_table(fa1, fa2) -> str:
    lines = ["| step | FlashAttention-1 (K/V outer) | FlashAttention-2 (Q outer) |", "|---:|---|---|"]
    lines += [f"| {n} | {_visit(a)} | {_visit(b)} |" for n, (a, b) in enumerate(zip(fa1, fa2), 1)]
    return "\n".join(lines)


def _row_table(steps) -> str:
    """Row 0's running (m, ℓ) after each K/V tile: the same numbers in both loop orders."""
    lines = ["| after tile | m | ℓ |", "|---:|---:|---:|"]
    for step in (s for s in steps if s["q_block"] == 0):
        lines.append(f"| K{step['kv_block']}, V{step['kv_block']} | {step['m'][0]:.3f} | {step['l'][0]:.3f} |")
    return "\n".join(lines)


def trace() -> dict:
    q, k, v, out1, fa1 = _run("fa1")
    _, _, _, out2, fa2 = _run("fa2")
    exact = reference.attention(q, k, v)
    tiles = -(-N // BLOCK)
    row0_fa1 = [(s["m"][0], s["l"][0]) for s in fa1 if s["q_block"] == 0]
    row0_fa2 = [(s["m"][0], s["l"][0]) for s in fa2 if s["q_block"] == 0]
    if not np.allclose(row0_fa1, row0_fa2):
        raise RuntimeError("the two loop orders disagree on row 0's running state")
    big_tiles = BIG_N // BIG_BLOCK
    o_bytes = BIG_N * BIG_D * FP16_BYTES
    facts = {
        "n": N, "block": BLOCK, "tiles": tiles, "steps": len(fa1),
        "fa1_order": ", ".join(_visit(s) for s in fa1),
        "fa2_order": ", ".join(_visit(s) for s in fa2),
        # FA1 (Alg. 1) reads and writes O_i, l_i, m_i in HBM at every inner step and
        # normalises O_i each time; FA2 keeps them on chip and divides once per Q block.
        "fa1_normalisations": len(fa1), "fa2_normalisations": tiles,
        "max_diff_fa1": sci(np.abs(out1 - exact).max()), "max_diff_fa2": sci(np.abs(out2 - exact).max()),
        "big_n": f"{BIG_N:,}", "big_d": BIG_D, "big_block": BIG_BLOCK, "big_tiles": big_tiles,
        "fa1_o_traffic_mib": f"{2 * big_tiles * o_bytes / 2**20:,.0f}",
        "fa2_o_traffic_mib": f"{o_bytes / 2**20:,.0f}",
        "o_traffic_ratio": 2 * big_tiles,
    }
    tables = {"visit_order": _order_table(fa1, fa2), "row0_state": _row_table(fa2)}
    return {"facts": facts, "tables": tables}
