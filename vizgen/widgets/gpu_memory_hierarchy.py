"""gpu-memory-hierarchy: registers -> SRAM -> L2 -> HBM -> host, and what attention sends through it.

Every hardware figure comes from `kernels.gpu_specs` (NVIDIA's datasheets and
architecture whitepapers; the aggregate shared-memory bandwidth is derived there).
Traffic is the bytes each kernel requests from HBM, from the exact closed forms
`naive.hbm_bytes` (standard attention, Algorithm 0 of Dao et al. 2022,
arXiv:2205.14135: S and P written to HBM and read back) and `flash.hbm_bytes`
(FlashAttention-2, arXiv:2307.08691: only Q, K, V read and O written). The IO counter
(`kernels.io_count`) checks both closed forms against the kernels themselves at a
small size under the Triton interpreter.

The "stopwatch" is a bandwidth model, time = bytes / bandwidth, not a timing: no
latency, no overlap with compute, no L2 hits.
"""

from __future__ import annotations

import math

import torch

from kernels import flash, gpu_specs, naive
from kernels.io_count import count_io

N_VALUES = (1024, 2048, 4096, 8192, 16384)  # sequence lengths the N control offers
HEAD_DIMS = (64, 128)  # the common head dims (GPT-2: 64; Llama-2-7B: 128)
# Scope: (query heads per layer, layers). 32 x 32 is the attention of a 7B LLaMA-sized
# model, batch 1 (LLaMA 6.7B: 32 layers of 32 heads, width 4096; arXiv:2302.13971, Table 2).
SCOPES = {"head": (1, 1), "layer": (32, 1), "model": (32, 32)}
SCOPE_LABELS = {"head": "one head", "layer": "one layer, 32 heads", "model": "32 layers × 32 heads"}
ITEMSIZE = 2  # fp16 inputs, S and P
GPU_BLOCK = 64  # kernels.flash / kernels.naive default tile for 16-bit inputs on a GPU
FLASH_TENSORS = ("Q", "K", "V", "O")
STANDARD_TENSORS = ("Q", "K", "V", "S", "P", "O")
NXN = ("S", "P")  # the N x N intermediates only standard attention stores

# Counted under the interpreter: small enough to run in about a second.
MEASURED_N, MEASURED_D, MEASURED_BLOCK = 64, 16, 16

# Log-scaled bars: the decades they span (bytes, bytes/s).
CAPACITY_DECADES = (5, 12)  # 100 KB .. 1 TB
BANDWIDTH_DECADES = (10, 14)  # 10 GB/s .. 100 TB/s

SHORT_LABELS = {"sram": "SRAM", "hbm": "HBM", "host": "host link"}  # stopwatch rows

_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
_BINARY = ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB"))


# --------------------------------------------------------------------------
# Formatting (decimal for traffic and bandwidth, NVIDIA's units for capacity)
# --------------------------------------------------------------------------


def _si(x: float, unit: str) -> str:
    """1.5e9 B -> '1.50 GB'; three significant digits, decimal prefixes."""
    for factor, prefix in _PREFIXES:
        if x >= factor:
            return f"{x / factor:.3g} {prefix}{unit}"
    return f"{x:.3g} {unit}"


def _capacity(x: int, decimal: bool) -> str:
    """On-chip sizes in binary units (1024-based KiB/MiB), HBM in decimal GB as NVIDIA quotes it."""
    if decimal:
        return _si(x, "B")
    for factor, unit in _BINARY:
        if x >= factor:
            return f"{x / factor:.3g} {unit}"
    return f"{x} B"


def _seconds(t: float) -> str:
    for factor, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if t >= factor:
            return f"{t / factor:.3g} {unit}"
    return f"{t / 1e-9:.3g} ns"


def _log_fraction(x: float | None, decades: tuple[int, int]) -> float | None:
    """Where x sits on a log axis spanning 10**lo .. 10**hi, clipped to [0, 1]."""
    if x is None:
        return None
    lo, hi = decades
    return min(1.0, max(0.0, (math.log10(x) - lo) / (hi - lo)))


# --------------------------------------------------------------------------
# The hierarchy
# --------------------------------------------------------------------------


def _levels(gpu: gpu_specs.GPU) -> list[dict]:
    """Five levels, fastest first. Bars use whole-GPU capacity so every level shares one axis."""
    smem_how = f"32 banks × 4 B per clock × {gpu.sms} SMs × {gpu.boost_clock_hz / 1e9:.2f} GHz boost"
    unpublished = ("not published", "NVIDIA publishes no figure for it")
    levels = [
        ("registers", "Registers", gpu.registers_per_sm * gpu.sms, gpu.registers_per_sm, False, None, unpublished),
        ("sram", "SRAM (shared memory)", gpu.total_smem, gpu.max_smem_per_sm, False, gpu.smem_bandwidth,
         ("derived", smem_how)),
        ("l2", "L2 cache", gpu.l2_bytes, None, False, None, unpublished),
        ("hbm", f"HBM ({gpu.hbm_type})", gpu.hbm_bytes, None, True, gpu.hbm_bandwidth, ("datasheet", gpu.source)),
        ("host", "Host DRAM", None, None, True, gpu.host_bandwidth,
         (gpu.host_link.split(" x")[0], f"{gpu.host_link}, one direction; host memory size depends on the server")),
    ]
    out = []
    for key, label, total, per_sm, decimal, bandwidth, (note, how) in levels:
        if total is None:
            capacity_text = "set by the server"
        elif per_sm is None:
            capacity_text = f"{_capacity(total, decimal)}, whole GPU"
        else:
            capacity_text = f"{_capacity(per_sm, False)}/SM · {_capacity(total, False)}"
        out.append({
            "key": key, "label": label,
            "capacity": total, "capacity_text": capacity_text,
            "capacity_frac": _log_fraction(total, CAPACITY_DECADES),
            "bandwidth": bandwidth,
            "bandwidth_text": "—" if bandwidth is None else _si(bandwidth, "B/s"),
            "bandwidth_note": note, "bandwidth_how": how,
            "bandwidth_frac": _log_fraction(bandwidth, BANDWIDTH_DECADES),
        })
    return out


def _gpu(gpu: gpu_specs.GPU) -> dict:
    return {"name": gpu.name, "architecture": gpu.architecture, "sms": gpu.sms, "levels": _levels(gpu),
            "source": gpu.source}


# --------------------------------------------------------------------------
# Traffic from the closed forms, and the bandwidth model
# --------------------------------------------------------------------------


def _closed_forms(n: int, head_dim: int, heads: int, block: int, itemsize: int) -> dict:
    """Bytes per tensor, loads plus stores, of one forward pass of each algorithm."""
    sizes = dict(batch=1, heads=heads, heads_kv=heads, n_q=n, n_k=n, head_dim=head_dim,
                 block_m=block, block_n=block, itemsize=itemsize)
    per_tensor = {"flash": flash.hbm_bytes(**sizes),
                  "standard": naive.hbm_bytes(**sizes, block_k=head_dim)}
    return {algo: {t: b["load"] + b["store"] for t, b in tensors.items()} for algo, tensors in per_tensor.items()}


def _traffic(n: int, head_dim: int, scope: str) -> dict:
    """Bytes per tensor for both algorithms at one (N, d, scope), with the bar segments precomputed."""
    heads, layers = SCOPES[scope]
    per_layer = _closed_forms(n, head_dim, heads, GPU_BLOCK, ITEMSIZE)
    bytes_ = {algo: {t: layers * b for t, b in tensors.items()} for algo, tensors in per_layer.items()}
    totals = {algo: sum(tensors.values()) for algo, tensors in bytes_.items()}
    scale = totals["standard"]  # both bars share the standard total
    out = {"totals": totals, "totals_text": {a: _si(t, "B") for a, t in totals.items()}}
    for algo, tensors in bytes_.items():
        out[algo] = [{"tensor": t, "bytes": b, "text": _si(b, "B"), "frac": b / scale, "nxn": t in NXN}
                     for t, b in tensors.items()]
    out["nxn"] = sum(bytes_["standard"][t] for t in NXN)
    out["nxn_text"] = _si(out["nxn"], "B")
    out["ratio"] = totals["standard"] / totals["flash"]
    # S and P of the heads one layer computes at once sit in HBM together.
    out["footprint"] = len(NXN) * heads * n * n * ITEMSIZE
    out["footprint_text"] = _capacity(out["footprint"], True)
    whose = "one head" if heads == 1 else f"the {heads} heads of one layer"
    out["footprint_sentence"] = (f"S and P of {whose} sit in HBM together: {out['footprint_text']}. "
                                 f"FlashAttention: none, each S_ij tile lives only on chip.")
    qkvo = totals["standard"] - out["nxn"]
    out["breakdown_text"] = {"standard": f" = Q, K, V, O {_si(qkvo, 'B')} + S, P {out['nxn_text']}",
                             "flash": " = Q, K, V, O only; no S, no P"}
    return out


def _stopwatch(gpu: gpu_specs.GPU, traffic: dict) -> list[dict]:
    """time = bytes / bandwidth at every level with a published or derived bandwidth."""
    rows = []
    for level in _levels(gpu):
        if level["bandwidth"] is None:
            continue
        times = {algo: traffic["totals"][algo] / level["bandwidth"] for algo in ("standard", "flash")}
        rows.append({"key": level["key"], "label": level["label"], "short": SHORT_LABELS[level["key"]],
                     "standard": times["standard"], "flash": times["flash"],
                     "standard_text": _seconds(times["standard"]), "flash_text": _seconds(times["flash"])})
    return rows


def _caption(gpu: gpu_specs.GPU, n: int, head_dim: int, scope: str, traffic: dict, watch: list[dict]) -> str:
    hbm = next(row for row in watch if row["key"] == "hbm")
    return (f"{gpu.name.split()[0]}, {SCOPE_LABELS[scope]}, N = {n:,}, d = {head_dim}, fp16: standard attention "
            f"requests {traffic['totals_text']['standard']} from HBM, {traffic['nxn_text']} of it the N×N matrices "
            f"S and P; FlashAttention requests {traffic['totals_text']['flash']}, none of it N×N "
            f"({traffic['ratio']:.2g}× less). At {_si(gpu.hbm_bandwidth, 'B/s')} that is "
            f"{hbm['standard_text']} against {hbm['flash_text']}.")


def _key(*parts) -> str:
    return "|".join(str(p) for p in parts)


def _scenarios() -> tuple[dict, dict]:
    """Traffic per (N, d, scope) and, per GPU, the stopwatch and caption: every control stop precomputed."""
    traffic, per_gpu = {}, {}
    for n in N_VALUES:
        for d in HEAD_DIMS:
            for scope in SCOPES:
                t = traffic[_key(n, d, scope)] = _traffic(n, d, scope)
                for name, gpu in gpu_specs.GPUS.items():
                    watch = _stopwatch(gpu, t)
                    per_gpu[_key(name, n, d, scope)] = {"stopwatch": watch,
                                                        "caption": _caption(gpu, n, d, scope, t, watch)}
    return traffic, per_gpu


# --------------------------------------------------------------------------
# The IO counter, at a size the interpreter runs
# --------------------------------------------------------------------------


def _qkv(n: int, head_dim: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(0)  # values do not change byte counts; fixed for determinism
    return tuple(torch.randn(1, 1, n, head_dim, generator=gen).to(torch.float16) for _ in range(3))


def _count(algo: str, q, k, v) -> dict:
    """Bytes per tensor (loads plus stores) the kernel actually requested, by the IO counter."""
    with count_io({"Q": q, "K": k, "V": v}) as log:
        if algo == "flash":
            out = flash.attention(q, k, v, block_m=MEASURED_BLOCK, block_n=MEASURED_BLOCK)
            made = {"O": out}
        else:
            out, s, p = naive.attention(q, k, v, block_m=MEASURED_BLOCK, block_n=MEASURED_BLOCK,
                                        block_k=MEASURED_BLOCK, intermediates=True)
            made = {"S": s, "P": p, "O": out}
    for name, t in made.items():  # allocated inside the call
        log.attribute(name, t)
    return {t: b["load"] + b["store"] for t, b in log.by_tensor().items()}


def _measured() -> dict:
    q, k, v = _qkv(MEASURED_N, MEASURED_D)
    counted = {algo: _count(algo, q, k, v) for algo in ("standard", "flash")}
    closed = _closed_forms(MEASURED_N, MEASURED_D, 1, MEASURED_BLOCK, ITEMSIZE)
    totals = {algo: sum(c.values()) for algo, c in counted.items()}
    matches = counted == closed
    if not matches:  # fail the trace, keeping the last good widget, rather than publish a broken check
        raise RuntimeError(f"IO counter {counted} disagrees with the closed forms {closed}")
    verdict = "equal to the closed forms ✓"
    return {
        "n": MEASURED_N, "head_dim": MEASURED_D, "block": MEASURED_BLOCK,
        "counted": counted, "closed_form": closed, "totals": totals, "matches": matches,
        "sentence": (f"IO counter check, Triton interpreter at N = {MEASURED_N}, d = {MEASURED_D}: standard "
                     f"{totals['standard']:,} B, FlashAttention {totals['flash']:,} B, {verdict}"),
    }


def trace() -> dict:
    traffic, per_gpu = _scenarios()
    measured = _measured()
    data = {
        "gpus": {name: _gpu(gpu) for name, gpu in gpu_specs.GPUS.items()},
        "n_values": N_VALUES, "head_dims": HEAD_DIMS,
        "scopes": [{"key": key, "label": SCOPE_LABELS[key]} for key in SCOPES],
        "traffic": traffic, "per_gpu": per_gpu,
        "block": GPU_BLOCK, "itemsize": ITEMSIZE,
        "measured": measured,
        "defaults": {"gpu": "A100", "n": 4096, "d": 64, "scope": "head"},
    }
    return {"data": data, "facts": _facts(traffic, per_gpu, measured)}


def _facts(traffic, per_gpu, measured) -> dict:
    a100, h100 = gpu_specs.A100, gpu_specs.H100
    facts = {
        "a100_smem_bandwidth": _si(a100.smem_bandwidth, "B/s"),
        "h100_smem_bandwidth": _si(h100.smem_bandwidth, "B/s"),
        "a100_smem_over_hbm": f"{a100.smem_bandwidth / a100.hbm_bandwidth:.1f}",
        "h100_smem_over_hbm": f"{h100.smem_bandwidth / h100.hbm_bandwidth:.1f}",
        "a100_total_smem": _capacity(a100.total_smem, False),
        "h100_total_smem": _capacity(h100.total_smem, False),
        "measured_n": measured["n"],
        "measured_head_dim": measured["head_dim"],
        "measured_standard_bytes": measured["totals"]["standard"],
        "measured_flash_bytes": measured["totals"]["flash"],
        "block": GPU_BLOCK,
    }
    for n in (4096, 16384):
        for d in HEAD_DIMS:
            t = traffic[_key(n, d, "head")]
            tag = f"n{n // 1024}k_d{d}"
            facts[f"standard_bytes_{tag}"] = t["totals_text"]["standard"]
            facts[f"flash_bytes_{tag}"] = t["totals_text"]["flash"]
            facts[f"nxn_bytes_{tag}"] = t["nxn_text"]
            facts[f"ratio_{tag}"] = f"{t['ratio']:.2g}"
            for gpu in gpu_specs.GPUS:
                hbm = next(r for r in per_gpu[_key(gpu, n, d, "head")]["stopwatch"] if r["key"] == "hbm")
                facts[f"{gpu.lower()}_standard_time_{tag}"] = hbm["standard_text"]
                facts[f"{gpu.lower()}_flash_time_{tag}"] = hbm["flash_text"]
    return facts
