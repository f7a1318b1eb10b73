"""online-softmax: one query row streamed through two K/V tiles of four keys.

Every number the widget shows comes from the Triton FlashAttention kernel's trace
(`kernels.flash.attention(..., trace=True)`): the running max m_i, running sum l_i and
un-normalised accumulator acc after each tile. The scores are recomputed from the same
inputs only to label the keys, and the final row is checked against softmax(s)·V
computed directly by the reference.
"""

from __future__ import annotations

import numpy as np
import torch

from kernels import flash, reference
from vizgen.fmt import sci

BLOCK_N = 4  # keys per tile: two tiles of four, as in the worked example
N_KEYS = 2 * BLOCK_N
HEAD_DIM = 4  # small enough to print every coordinate of acc and O
MIN_MAX_JUMP = 0.5  # tile 1 must raise the max noticeably, or alpha = 1 teaches nothing


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Readable one-decimal inputs whose second tile holds a larger score than the first.

    Seeds are tried in order, so the choice is deterministic and documented by code.
    """
    for seed in range(1000):
        rng = np.random.default_rng(seed)
        q = np.round(rng.normal(size=(1, HEAD_DIM)), 1)
        k = np.round(rng.normal(size=(N_KEYS, HEAD_DIM)), 1)
        v = np.round(rng.normal(size=(N_KEYS, HEAD_DIM)), 1)
        s = (q @ k.T)[0] / np.sqrt(HEAD_DIM)
        if s[BLOCK_N:].max() - s[:BLOCK_N].max() >= MIN_MAX_JUMP and np.ptp(s) < 4:
            return q, k, v
    raise RuntimeError("no seed below 1000 gives a second tile with a larger max")


def _as_bhnd(x: np.ndarray) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float32)[None, None]  # (1, 1, N, D)


def trace() -> dict:
    q, k, v = _inputs()
    scale = 1.0 / np.sqrt(HEAD_DIM)
    out, ft = flash.attention(
        _as_bhnd(q), _as_bhnd(k), _as_bhnd(v), scale=scale, block_m=16, block_n=BLOCK_N, trace=True
    )
    out = out[0, 0, 0].numpy().astype(np.float64)
    executed = ft.kv_block[0] >= 0  # program 0 holds our only query row
    m_steps = ft.m[0, executed, 0].astype(np.float64)
    l_steps = ft.l[0, executed, 0].astype(np.float64)
    acc_steps = ft.acc[0, executed, 0].astype(np.float64)
    tiles = ft.kv_block[0, executed].tolist()
    if tiles != [0, 1]:
        raise RuntimeError(f"expected the kernel to visit tiles [0, 1], it visited {tiles}")

    # Scores in float32, as the kernel computes them, only to label the keys.
    s = ((q.astype(np.float32) @ k.T.astype(np.float32))[0] * np.float32(scale)).astype(np.float64)
    direct_out, direct_p = reference.attention(
        q[None, None], k[None, None], v[None, None], scale=scale, return_probs=True
    )
    direct_out, direct_p = direct_out[0, 0, 0], direct_p[0, 0, 0]

    steps = [_state("init", None, -np.inf, 0.0, np.zeros(HEAD_DIM), None, None,
                    "Before any tile: m = −∞, ℓ = 0, acc = 0. The query row q sits in SRAM; K and V are still in HBM.")]
    m_old, l_old, acc_old = -np.inf, 0.0, np.zeros(HEAD_DIM)
    for j, (m_new, l_new, acc_new) in enumerate(zip(m_steps, l_steps, acc_steps)):
        lo, hi = j * BLOCK_N, (j + 1) * BLOCK_N
        tile_max = s[lo:hi].max()
        max_key = lo + int(np.argmax(s[lo:hi]))  # highlighted while this tile is in SRAM
        alpha = float(np.exp(m_old - m_new))
        p = np.full(N_KEYS, np.nan)
        p[:hi] = np.exp(s[:hi] - m_new)  # weights of every key seen so far, under the new max
        keys = f"keys {lo}–{hi - 1}"
        steps.append(_state("load", j, m_old, l_old, acc_old, None, None,
                            f"Load K/V tile {j} ({keys}) from HBM into SRAM and score it: s = q·kᵀ/√d. Its largest score is {tile_max:.3f}."))
        rescale = ("Nothing has been summed yet: α = exp(−∞ − m) = 0." if j == 0 else
                   f"The sums so far were measured against the old max, so they shrink by α = exp(m_old − m_new) = {_f(alpha)}.")
        steps.append(_state("max", j, m_new, l_old, acc_old, alpha, None,
                            f"New running max m = max({_f(m_old)}, {tile_max:.3f}) = {m_new:.3f}. {rescale}"))
        steps.append(_state("update", j, m_new, l_new, acc_new, alpha, p,
                            f"ℓ = α·ℓ + Σ exp(s − m) = {_f(alpha)}·{l_old:.3f} + {l_new - alpha * l_old:.3f} = {l_new:.3f}; "
                            f"acc = α·acc + exp(s − m)·V. acc stays un-normalised until the last tile (FlashAttention-2)."))
        steps[-1]["out"] = acc_new / l_new  # the output over the keys seen so far
        for step in steps[-3:]:
            step["max_key"] = max_key
        m_old, l_old, acc_old = m_new, l_new, acc_new
    steps.append(_state("final", None, m_old, l_old, acc_old, None, direct_p,
                        f"Done: O = acc / ℓ, one division per row. It equals softmax(s)·V computed directly, "
                        f"to within {sci(np.abs(out - direct_out).max())}."))
    steps[-1]["out"] = out

    data = {
        "q": q[0], "k": k, "v": v, "scores": s, "scale": scale,
        "block_n": BLOCK_N, "n_keys": N_KEYS, "head_dim": HEAD_DIM,
        "steps": steps,
        "direct": {"probs": direct_p, "out": direct_out},
        "max_abs_diff": float(np.abs(out - direct_out).max()),
    }
    return {"data": data, "facts": _facts(s, m_steps, l_steps, acc_steps, out, direct_out)}


def _state(phase, tile, m, l, acc, alpha, weights, caption) -> dict:
    return {
        "phase": phase, "tile": tile, "m": m, "l": l, "acc": np.asarray(acc),
        "alpha": alpha, "weights": weights, "out": None, "caption": caption, "max_key": None,
    }


def _f(x: float) -> str:
    return "−∞" if x == -np.inf else f"{x:.3f}"


def _vec(x) -> str:
    return "(" + ", ".join(f"{value:.3f}" for value in x) + ")"


def _facts(s, m_steps, l_steps, acc_steps, out, direct_out) -> dict:
    alpha = np.exp(m_steps[0] - m_steps[1])
    return {
        "scores_tile_0": ", ".join(f"{x:.3f}" for x in s[:BLOCK_N]),
        "scores_tile_1": ", ".join(f"{x:.3f}" for x in s[BLOCK_N:]),
        "m_0": f"{m_steps[0]:.3f}",
        "l_0": f"{l_steps[0]:.3f}",
        "acc_0": _vec(acc_steps[0]),
        "m_1": f"{m_steps[1]:.3f}",
        "alpha_1": f"{alpha:.3f}",
        "l_1_rescaled": f"{alpha * l_steps[0]:.3f}",
        "l_1_added": f"{l_steps[1] - alpha * l_steps[0]:.3f}",
        "l_1": f"{l_steps[1]:.3f}",
        "acc_1": _vec(acc_steps[1]),
        "out": _vec(out),
        "direct_out": _vec(direct_out),
        "max_abs_diff": sci(np.abs(out - direct_out).max()),
        "block_n": BLOCK_N,
        "n_keys": N_KEYS,
        "keys_tile_0": f"{0}–{BLOCK_N - 1}",
        "keys_tile_1": f"{BLOCK_N}–{N_KEYS - 1}",
        "head_dim": HEAD_DIM,
    }
