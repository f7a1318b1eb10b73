"""flash-attention-tiling: the Triton FlashAttention-2 kernel's grid, step by step.

Q is cut into row tiles of BLOCK_M queries, K and V into tiles of BLOCK_N keys. The
kernel (`kernels.flash.attention(..., trace=True)`, run under the Triton interpreter)
launches one program per Q tile; each program streams every visible K/V tile past its
Q tile and keeps, per query row, the running max m_i, the running sum l_i and the
un-normalised output acc (Dao 2023, arXiv:2307.08691, Algorithm 1; the online softmax
of Milakov & Gimelshein 2018, arXiv:1805.02867). The widget replays that trace in the
kernel's grid order.

Two runs are traced: all keys, and causal (tiles above the diagonal are never visited:
`kv_block == -1` in the trace). Both use the same step list, one step per (program,
K/V tile) slot, so the causal toggle shows exactly which slots the kernel skipped.

HBM bytes come from the IO counter (`kernels.io_count`), wrapped around the same
kernel calls, and around standard attention (`kernels.naive`: S and P written to and
read back from HBM). Per-step counters are cumulative sums of the access log, so they
end at the counter's totals, which equal the closed forms `flash.hbm_bytes` and
`naive.hbm_bytes`.
"""

from __future__ import annotations

import numpy as np
import torch

from kernels import flash, naive, reference
from kernels.io_count import count_io
from vizgen.fmt import sci

N_CTX = 16  # queries = keys: four Q tiles by four K/V tiles
BLOCK_M = 4  # query rows per tile (one program each)
BLOCK_N = 4  # keys per K/V tile
HEAD_DIM = 4  # small enough to print every coordinate of a row's output
MIN_MAX_JUMP = 0.5  # every Q tile should see a row's max rise after its first K/V tile, or alpha = 1 teaches nothing
MAX_SEEDS = 1000  # seeds tried before giving up
RUNS = ("full", "causal")
FLASH_TENSORS = ("Q", "K", "V", "O")
STANDARD_TENSORS = ("Q", "K", "V", "S", "P", "O")


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-decimal (N_CTX, HEAD_DIM) q, k, v where every Q tile has a visible rescale.

    Seeds are tried in order, so the choice is deterministic and documented by code.
    """
    scale = 1.0 / np.sqrt(HEAD_DIM)
    for seed in range(MAX_SEEDS):
        rng = np.random.default_rng(seed)
        q, k, v = (np.round(rng.normal(size=(N_CTX, HEAD_DIM)), 1) for _ in range(3))
        s = (q @ k.T * scale).reshape(N_CTX // BLOCK_M, BLOCK_M, N_CTX // BLOCK_N, BLOCK_N)
        tile_max = s.max(axis=3)  # (Q tiles, BLOCK_M, K/V tiles) max score of each row in each tile
        jump = tile_max[:, :, 1:].max(axis=2) - tile_max[:, :, 0]  # (Q tiles, BLOCK_M)
        if (jump.max(axis=1) >= MIN_MAX_JUMP).all():
            return q, k, v
    raise RuntimeError(f"no seed below {MAX_SEEDS} gives every Q tile a rescale")


def _as_bhnd(x: np.ndarray) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float32)[None, None]  # (1, 1, N, D)


def _run_kernel(q, k, v, causal: bool):
    """The kernel's output and FlashTrace for one run."""
    out, ft = flash.attention(_as_bhnd(q), _as_bhnd(k), _as_bhnd(v), causal=causal,
                              block_m=BLOCK_M, block_n=BLOCK_N, trace=True)
    return out[0, 0].numpy().astype(np.float64), ft


def _scores(q, k, scale: float, causal: bool) -> np.ndarray:
    """(N, N) scores in float32 as the kernel forms them, -inf where the causal mask hides a key; display only."""
    s = (q.astype(np.float32) @ k.T.astype(np.float32) * np.float32(scale)).astype(np.float64)
    if causal:
        s = np.where(np.tril(np.ones((N_CTX, N_CTX), dtype=bool)), s, -np.inf)
    return s


def _tile_masked(q_block: int, kv_block: int, causal: bool) -> bool:
    """True for a causal tile that straddles the diagonal: some key lies after some query row."""
    return causal and (kv_block + 1) * BLOCK_N - 1 > q_block * BLOCK_M


def _fmt(x: float, digits: int = 3) -> str:
    return "−∞" if x == -np.inf else f"{x:.{digits}f}".replace("-", "−")


def _rows(q_block, m, l, acc, m_old=None) -> list[dict]:
    """The state of the BLOCK_M rows of one Q tile; with m_old, also alpha = exp(m_old - m) per row."""
    rows = []
    for r in range(BLOCK_M):
        rows.append({
            "row": q_block * BLOCK_M + r,
            "m_old": None if m_old is None else m_old[r],
            "m": m[r],
            "alpha": None if m_old is None else float(np.exp(m_old[r] - m[r])),
            "l": l[r],
            "o": None if acc is None else acc[r] / l[r],  # (HEAD_DIM,) output over the keys seen so far
        })
    return rows


def _tile_codes(n_programs, n_slots, visited, current) -> str:
    """One character per (Q tile, K/V tile): h = not yet, a = in SRAM now, d = done, x = skipped by the causal loop."""
    codes = []
    for p in range(n_programs):
        for j in range(n_slots):
            if (p, j) == current:
                codes.append("a")
            elif visited.get((p, j)) == "skip":
                codes.append("x")
            elif (p, j) in visited:
                codes.append("d")
            else:
                codes.append("h")
    return "".join(codes)


def _biggest_rescale(rows) -> dict | None:
    """The row whose acc and l_i shrink most at this step (smallest alpha below one)."""
    shrinking = [r for r in rows if r["alpha"] is not None and r["alpha"] < 1.0 and np.isfinite(r["m_old"])]
    return min(shrinking, key=lambda r: r["alpha"]) if shrinking else None


def _kv_caption(q_block, kv_block, masked, rows) -> str:
    keys = f"keys {kv_block * BLOCK_N}–{(kv_block + 1) * BLOCK_N - 1}"
    text = (f"K/V tile {kv_block} ({keys}) joins Q tile {q_block} in SRAM; this {BLOCK_M}×{BLOCK_N} tile of "
            f"S = Q·Kᵀ·scale never leaves the chip.")
    if masked:
        text += " It straddles the diagonal: keys after a row's query become −∞."
    if all(r["m_old"] == -np.inf for r in rows):
        return text + " First tile: m_i = row max, ℓ_i = rowsum e^(S − m_i), acc = e^(S − m_i)·V_j (α = e^(−∞) = 0)."
    big = _biggest_rescale(rows)
    if big is None:
        return text + " No row's max rises: α = 1, so ℓ_i and acc carry over unscaled."
    return text + (f" Row {big['row']}'s max rises {_fmt(big['m_old'])} → {_fmt(big['m'])}: its ℓ_i and acc "
                   f"shrink by α = {_fmt(big['alpha'])} first.")


def _program_steps(ft, p, scores, causal, visited) -> list[dict]:
    """Load Q tile, one step per K/V slot (folded in or skipped), store O tile: for program p."""
    q_block = int(ft.programs[p, 0])
    n_programs, n_slots = ft.kv_block.shape
    rows_lo = q_block * BLOCK_M
    m_old, l_old, acc_old = np.full(BLOCK_M, -np.inf), np.zeros(BLOCK_M), None
    steps = [{
        "phase": "load_q", "program": p, "q_block": q_block, "kv_block": None,
        "rows": _rows(q_block, m_old, l_old, acc_old),
        "tiles": _tile_codes(n_programs, n_slots, visited, None),
        "caption": (f"Program {p} (grid order) loads Q tile {q_block}: rows {rows_lo}–{rows_lo + BLOCK_M - 1}, "
                    f"{BLOCK_M}×{HEAD_DIM} values, into SRAM, and starts each row at m_i = −∞, ℓ_i = 0, acc = 0."),
    }]
    for j in range(n_slots):
        kv = int(ft.kv_block[p, j])
        if kv < 0:
            visited[(p, j)] = "skip"
            steps.append({
                "phase": "skip", "program": p, "q_block": q_block, "kv_block": j,
                "rows": _rows(q_block, m_old, l_old, acc_old),
                "tiles": _tile_codes(n_programs, n_slots, visited, None),
                "caption": (f"K/V tile {j} lies wholly above the diagonal: every key in it comes after every "
                            f"query of Q tile {q_block}. The kernel's loop ends before it — no load, no FLOPs."),
            })
            continue
        m_new, l_new = ft.m[p, j].astype(np.float64), ft.l[p, j].astype(np.float64)
        acc_new = ft.acc[p, j].astype(np.float64)
        rows = _rows(q_block, m_new, l_new, acc_new, m_old=m_old)
        tile = scores[rows_lo:rows_lo + BLOCK_M, kv * BLOCK_N:(kv + 1) * BLOCK_N]  # (BLOCK_M, BLOCK_N)
        masked = _tile_masked(q_block, kv, causal)
        steps.append({
            "phase": "kv", "program": p, "q_block": q_block, "kv_block": kv, "masked": masked,
            "rows": rows,
            "p_tile": np.exp(tile - m_new[:, None]),  # (BLOCK_M, BLOCK_N) exp(s - m_new), 0 where masked
            "tiles": _tile_codes(n_programs, n_slots, visited, (p, j)),
            "caption": _kv_caption(q_block, kv, masked, rows),
        })
        visited[(p, j)] = "done"
        m_old, l_old, acc_old = m_new, l_new, acc_new
    steps.append({
        "phase": "store", "program": p, "q_block": q_block, "kv_block": None,
        "rows": _rows(q_block, m_old, l_old, acc_old),
        "tiles": _tile_codes(n_programs, n_slots, visited, None),
        "caption": (f"Program {p} divides acc by ℓ_i once (FlashAttention-2 defers the normalisation to the end) "
                    f"and writes O tile {q_block} to HBM. Only O leaves the chip."),
    })
    return steps


def _trace_run(q, k, v, causal: bool) -> dict:
    """Every step of one kernel run, in the kernel's grid order, with HBM bytes and the check against the reference."""
    out, ft = _run_kernel(q, k, v, causal)
    scores = _scores(q, k, ft.scale, causal)
    ref = reference.attention(q[None, None], k[None, None], v[None, None], causal=causal)[0, 0]  # (N, D) fp64
    max_abs_diff = float(np.abs(out - ref).max())
    n_programs, n_slots = ft.kv_block.shape
    visited: dict = {}
    steps = [{"phase": "intro", "program": None, "q_block": None, "kv_block": None, "rows": None,
              "tiles": _tile_codes(n_programs, n_slots, visited, None), "caption": _intro_caption(n_programs)}]
    for p in range(n_programs):
        steps += _program_steps(ft, p, scores, causal, visited)
    executed = int((ft.kv_block >= 0).sum())
    steps.append({
        "phase": "final", "program": None, "q_block": None, "kv_block": None, "rows": None,
        "tiles": _tile_codes(n_programs, n_slots, visited, None),
        "caption": (f"All {n_programs} programs done after {executed} tile steps. The output equals "
                    f"kernels.reference.attention (fp64) to within {sci(max_abs_diff)}."),
    })
    logs = {"flash": _count_flash(*map(_as_bhnd, (q, k, v)), causal),
            "standard": _count_standard(*map(_as_bhnd, (q, k, v)), causal)}
    _attach_bytes(steps, logs)
    return {
        "steps": steps,
        "executed": executed,
        "skipped": [[int(p), int(j)] for p, j in zip(*np.nonzero(ft.kv_block < 0))],
        "out": out,
        "reference": ref,
        "max_abs_diff": max_abs_diff,
        "max_abs_diff_text": sci(max_abs_diff),
        "counted": {name: log.by_tensor() for name, log in logs.items()},
        "closed_form": _closed_forms(causal),
    }


def _intro_caption(n_programs: int) -> str:
    return (f"N_CTX = {N_CTX}, d = {HEAD_DIM}, BLOCK_M = BLOCK_N = {BLOCK_M}: the grid launches {n_programs} "
            f"programs, one per Q tile, and each streams the K/V tiles past its Q tile (FlashAttention-2's "
            f"order; FlashAttention-1 looped the other way round, K/V outside, Q inside).")


def _closed_forms(causal: bool) -> dict:
    """flash.hbm_bytes and naive.hbm_bytes at this widget's sizes: the IO counter must agree with both."""
    sizes = dict(batch=1, heads=1, heads_kv=1, n_q=N_CTX, n_k=N_CTX, head_dim=HEAD_DIM, block_m=BLOCK_M,
                 block_n=BLOCK_N, itemsize=np.dtype(np.float32).itemsize, causal=causal)
    return {"flash": flash.hbm_bytes(**sizes), "standard": naive.hbm_bytes(**sizes, block_k=HEAD_DIM)}


# --------------------------------------------------------------------------
# HBM bytes, from the IO counter, per step
# --------------------------------------------------------------------------


def _count_flash(q, k, v, causal: bool):
    """IOLog of the kernel (trace off: the trace's own stores are not attention's traffic)."""
    with count_io({"Q": q, "K": k, "V": v}) as log:
        out = flash.attention(q, k, v, causal=causal, block_m=BLOCK_M, block_n=BLOCK_N)
    log.attribute("O", out)  # allocated inside the call
    return log


def _count_standard(q, k, v, causal: bool):
    """IOLog of standard attention (kernels.naive: S = QKᵀ, P = softmax(S), O = PV, S and P in HBM)."""
    with count_io({"Q": q, "K": k, "V": v}) as log:
        out, s, p = naive.attention(q, k, v, causal=causal, block_m=BLOCK_M, block_n=BLOCK_N, block_k=HEAD_DIM,
                                    intermediates=True)
    for name, t in (("S", s), ("P", p), ("O", out)):
        log.attribute(name, t)
    return log


def _slot(kind: str, q_block: int, kv_block: int | None = None) -> tuple:
    """The step an access is booked to: ("load_q", i), ("kv", i, j) or ("store", i)."""
    return (kind, q_block) if kv_block is None else (kind, q_block, kv_block)


def _add(book: dict, slot: tuple, tensor: str, n_bytes: int) -> None:
    book.setdefault(slot, {}).setdefault(tensor, 0)
    book[slot][tensor] += n_bytes


def _book_flash(log) -> dict:
    """Flash bytes per step: a program loads its Q tile, then K_j and V_j at step j, then stores O."""
    book, kv_loads = {}, {}
    for a in log.accesses:
        q_block = a.program[0]
        if a.tensor == "Q":
            _add(book, _slot("load_q", q_block), "Q", a.bytes)
        elif a.tensor == "O":
            _add(book, _slot("store", q_block), "O", a.bytes)
        elif a.tensor in ("K", "V"):
            j = kv_loads.get((q_block, a.tensor), 0)  # the j-th K (or V) load of this program is tile j
            kv_loads[(q_block, a.tensor)] = j + 1
            _add(book, _slot("kv", q_block, j), a.tensor, a.bytes)
        else:
            raise RuntimeError(f"flash kernel touched memory no tensor owns: {a}")
    return book


def _book_standard(log) -> dict:
    """Standard attention's bytes booked to the same (Q tile, K/V tile) steps, summed over its three kernels.

    Kernel 1, program (i, j), loads Q_i and K_j and stores S_ij. Kernel 2, one program
    per query row, loads that row of S and stores that row of P: each K/V tile's share
    is its BLOCK_N columns. Kernel 3, program (i, ·), loads P_ij and V_j at its j-th
    contraction step and finally stores O_i.
    """
    n_kv_tiles = N_CTX // BLOCK_N
    book, steps = {}, {}
    for a in log.accesses:
        if (a.tensor, a.kind) in (("Q", "load"), ("K", "load"), ("S", "store")):  # kernel 1
            _add(book, _slot("kv", a.program[0], a.program[1]), a.tensor, a.bytes)
        elif (a.tensor, a.kind) in (("S", "load"), ("P", "store")):  # kernel 2: one query row
            if a.elements != N_CTX:
                raise RuntimeError(f"softmax expected to move one whole row of {N_CTX}, got {a}")
            for j in range(n_kv_tiles):
                _add(book, _slot("kv", a.program[0] // BLOCK_M, j), a.tensor, a.bytes // n_kv_tiles)
        elif (a.tensor, a.kind) in (("P", "load"), ("V", "load")):  # kernel 3: j-th contraction step
            key = (a.program, a.tensor)
            j = steps.get(key, 0)
            steps[key] = j + 1
            _add(book, _slot("kv", a.program[0], j), a.tensor, a.bytes)
        elif (a.tensor, a.kind) == ("O", "store"):
            _add(book, _slot("store", a.program[0]), "O", a.bytes)
        else:
            raise RuntimeError(f"standard attention made an access this widget cannot book: {a}")
    return book


def _step_slot(step) -> tuple | None:
    if step["phase"] in ("load_q", "store"):
        return _slot(step["phase"], step["q_block"])
    if step["phase"] in ("kv", "skip"):
        return _slot("kv", step["q_block"], step["kv_block"])
    return None


def _cumulative(steps, book, tensors) -> list[dict]:
    """Bytes per tensor moved up to and including each step; every booked byte lands on some step."""
    total = dict.fromkeys(tensors, 0)
    out, used = [], set()
    for step in steps:
        slot = _step_slot(step)
        for tensor, n_bytes in book.get(slot, {}).items():
            total[tensor] += n_bytes
        used.add(slot)
        out.append(dict(total))
    missing = set(book) - used
    if missing:
        raise RuntimeError(f"bytes booked to steps the widget does not show: {sorted(missing)}")
    return out


def _standard_caption(step, moved: dict) -> str:
    """What standard attention moves for the same step, with the counted bytes."""
    nxn = moved.get("S", 0) + moved.get("P", 0)
    if step["phase"] in ("kv", "skip"):
        i, j = step["q_block"], step["kv_block"]
        text = (f"Standard attention, same tile (i = {i}, j = {j}), summed over its three kernels: S_ij is written "
                f"to HBM, read back by the softmax, P_ij written, then read again for P·V — {nxn} B of N×N "
                f"traffic, plus {sum(moved.values()) - nxn} B of Q, K and V reads.")
        if step["phase"] == "skip":
            text += " It has no loop to cut short: the causal mask is applied in the softmax, after S is stored in full."
        return text
    if step["phase"] == "load_q":
        return ("Standard attention keeps no running state: each of its three kernels reads its inputs from HBM "
                "and writes its whole result back.")
    if step["phase"] == "store":
        return f"Standard attention's third kernel stores O tile {step['q_block']} too ({moved.get('O', 0)} B)."
    return step["caption"]


def _attach_bytes(steps, logs) -> None:
    """Give every step the cumulative bytes of both algorithms, what it moved, and a standard-mode caption."""
    books = {"flash": _book_flash(logs["flash"]), "standard": _book_standard(logs["standard"])}
    cumulative = {"flash": _cumulative(steps, books["flash"], FLASH_TENSORS),
                  "standard": _cumulative(steps, books["standard"], STANDARD_TENSORS)}
    for n, step in enumerate(steps):
        step["bytes"] = {}
        for algo, per_step in cumulative.items():
            moved = books[algo].get(_step_slot(step), {})
            step["bytes"][algo] = {
                "tensors": [[tensor, per_step[n][tensor]] for tensor in per_step[n]],  # ordered: Q, K, V, (S, P,) O
                "total": sum(per_step[n].values()),
                "nxn": per_step[n].get("S", 0) + per_step[n].get("P", 0),
                "moved": sorted(tensor for tensor, b in moved.items() if b),
            }
        step["caption_standard"] = _standard_caption(step, books["standard"].get(_step_slot(step), {}))


def trace() -> dict:
    q, k, v = _inputs()
    runs = {run: _trace_run(q, k, v, causal=run == "causal") for run in RUNS}
    data = {
        "n_ctx": N_CTX, "block_m": BLOCK_M, "block_n": BLOCK_N, "head_dim": HEAD_DIM,
        "n_q_tiles": N_CTX // BLOCK_M, "n_kv_tiles": N_CTX // BLOCK_N,
        "q": q, "k": k, "v": v,
        "runs": runs,
    }
    return {"data": data, "facts": _facts(runs)}


def _facts(runs) -> dict:
    full, causal = runs["full"], runs["causal"]
    last = {name: run["steps"][-1]["bytes"] for name, run in runs.items()}
    rescales = [(step, _biggest_rescale(step["rows"])) for step in full["steps"] if step["phase"] == "kv"]
    step, big = min(((st, b) for st, b in rescales if b is not None), key=lambda sb: sb[1]["alpha"])
    return {
        "n_ctx": N_CTX,
        "block_m": BLOCK_M,
        "block_n": BLOCK_N,
        "head_dim": HEAD_DIM,
        "n_programs": N_CTX // BLOCK_M,
        "tile_steps_full": full["executed"],
        "tile_steps_causal": causal["executed"],
        "tiles_skipped_causal": len(causal["skipped"]),
        "max_abs_diff_full": full["max_abs_diff_text"],
        "max_abs_diff_causal": causal["max_abs_diff_text"],
        "flash_bytes_full": last["full"]["flash"]["total"],
        "standard_bytes_full": last["full"]["standard"]["total"],
        "standard_nxn_bytes_full": last["full"]["standard"]["nxn"],
        "flash_bytes_causal": last["causal"]["flash"]["total"],
        "standard_bytes_causal": last["causal"]["standard"]["total"],
        "rescale_q_block": step["q_block"],
        "rescale_kv_block": step["kv_block"],
        "rescale_row": big["row"],
        "rescale_m_old": _fmt(big["m_old"]),
        "rescale_m_new": _fmt(big["m"]),
        "rescale_alpha": _fmt(big["alpha"]),
    }
