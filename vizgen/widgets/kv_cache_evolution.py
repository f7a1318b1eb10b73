"""kv-cache-evolution: what one token leaves in the KV cache under MHA, MQA, GQA and MLA.

For each model preset of `kernels.kv_cache` (published configurations, each with its
source) the widget draws one token's cache in one layer, head by head and to scale,
under the model's own scheme and under the three others (`scheme_variant`: same
layers, heads and head width). Every size is `kv_bytes` at each stop of the context
slider, in bf16, and whether it fits the HBM the bf16 weights leave on the H100s a
deployment would use: one if the weights fit, else whole 8-GPU servers (`serving_gpus`,
`max_context`).

Schemes: MHA (Vaswani et al. 2017, arXiv:1706.03762), MQA (Shazeer 2019,
arXiv:1911.02150), GQA (Ainslie et al. 2023, arXiv:2305.13245), MLA (DeepSeek-V2,
arXiv:2405.04434, Section 2.1 and Table 1). Mistral 7B's rolling buffer
(arXiv:2310.06825, Section 2) keeps at most w tokens.
"""

from __future__ import annotations

import math

from kernels import kv_cache
from kernels.gpu_specs import H100
from vizgen.sheets.serving import size

MODELS = ("Llama 3.1 8B", "Llama 3.1 70B", "Llama 3.1 405B", "Mistral 7B", "DeepSeek-V2", "DeepSeek-V3")
SCHEMES = ("MHA", "MQA", "GQA", "MLA")  # in the order they were published
DTYPE = "bf16"
GPU = H100
STOPS = tuple(1024 * 2**k for k in range(8))  # context slider: 1k, 2k, ... 128k tokens
DEFAULT_MODEL, DEFAULT_STOP = "Llama 3.1 70B", 32 * 1024
FACT_CONTEXTS = (8 * 1024, 32 * 1024, 128 * 1024)
# The bar axis, log2 of bytes: 16 MiB (Mistral as MQA at 1k tokens) .. 1 TiB (405B as MHA at 128k).
AXIS_LOG2 = (24, 40)
AXIS_TICK_EVERY = 4  # a tick every 16x: 16 MiB, 256 MiB, 4 GiB, 64 GiB, 1 TiB


def _k(tokens: int) -> str:
    return f"{tokens // 1024}k"


def _variant(spec: kv_cache.ModelSpec, scheme: str) -> kv_cache.ModelSpec:
    """The model itself for its own scheme, else the like-for-like hypothetical."""
    return spec if spec.scheme == scheme else kv_cache.scheme_variant(spec, scheme)


def _blocks(spec: kv_cache.ModelSpec) -> dict:
    """One token, one layer: which query heads read each cached unit, and the units' widths in heads.

    `units` K/V pairs (or one latent) of `width` head widths each; `reads` query heads per unit.
    """
    if spec.scheme == "MLA":
        return {"units": 1, "reads": spec.n_heads, "latent": spec.d_c / spec.head_dim,
                "rope": spec.d_h_R / spec.head_dim, "d_c": spec.d_c, "d_h_R": spec.d_h_R}
    return {"units": spec.n_kv_heads, "reads": spec.n_heads // spec.n_kv_heads}


def _per_layer(spec: kv_cache.ModelSpec) -> str:
    """What one layer caches per token, in the DeepSeek-V2 paper's symbols (Table 1)."""
    per_layer = kv_cache.kv_elements_per_token(spec) // spec.n_layers
    if spec.scheme == "MLA":
        return f"d_c + d_h^R = {spec.d_c} + {spec.d_h_R} = {per_layer:,}"
    return f"2 × {spec.n_kv_heads} × {spec.head_dim} = {per_layer:,}"


def _position(n_bytes: int) -> float:
    """Where a size sits on the bar axis, 0..1 (log scale)."""
    lo, hi = AXIS_LOG2
    return min(1.0, max(0.0, (math.log2(n_bytes) - lo) / (hi - lo)))


def _row(spec: kv_cache.ModelSpec, scheme: str, n_gpus: int) -> dict:
    variant = _variant(spec, scheme)
    sizes = [kv_cache.kv_bytes(variant, n, dtype=DTYPE) for n in STOPS]
    reach = kv_cache.max_context(variant, GPU, n_gpus=n_gpus, kv_dtype=DTYPE)
    return {
        "scheme": scheme,
        "own": scheme == spec.scheme,
        "blocks": _blocks(variant),
        "per_layer": _per_layer(variant),
        "per_token": size(kv_cache.kv_bytes_per_token(variant, DTYPE)),
        "sizes": [size(b) for b in sizes],
        "pos": [round(_position(b), 4) for b in sizes],
        "fits": [_fit(n, reach, spec.context) for n in STOPS],
        "max_context": reach,
    }


def _fit(n_tokens: int, reach: int, context: int) -> str:
    """'yes' / 'no' beside the weights, or 'beyond' the context the model was released for."""
    if n_tokens > context:
        return "beyond"
    return "yes" if n_tokens <= reach else "no"


def _fit_text(spec: kv_cache.ModelSpec, n_gpus: int) -> str:
    weights = kv_cache.weight_bytes(spec, DTYPE)
    hbm = GPU.hbm_bytes * n_gpus
    servers = n_gpus // kv_cache.GPUS_PER_NODE
    gpus = (f"one {GPU.name}" if n_gpus == 1
            else f"{n_gpus} × {GPU.name} ({'one 8-GPU server' if servers == 1 else f'{servers} 8-GPU servers'})")
    return (f"{DTYPE} weights ({size(weights)}) on {gpus}: {size(hbm)} of HBM "
            f"leave {size(hbm - weights)} for the cache.")


def _caption(spec: kv_cache.ModelSpec, rows: list[dict], stop: int) -> str:
    """One sentence per slider stop: the model's own cache, the range across schemes, the window."""
    i = STOPS.index(stop)
    own = next(r for r in rows if r["own"])
    others = ", ".join(f"{r['scheme']} {r['sizes'][i]}" for r in rows if not r["own"])
    text = f"{spec.name} at {_k(stop)} tokens: its own {own['scheme']} cache takes {own['sizes'][i]} per request (vs {others})."
    if spec.window is not None and stop > spec.window:
        text += (f" The rolling buffer keeps only the last w = {spec.window:,} tokens, so the cache has stopped "
                 f"growing at {_k(spec.window)}.")
    if stop > spec.context:
        text += f" Beyond the {spec.context:,}-token context it was released for."
    elif own["fits"][i] == "no":
        text += f" It does not fit beside the weights: at most {own['max_context']:,} tokens do."
    return text


def _model(name: str) -> dict:
    spec = kv_cache.get(name)
    n_gpus = kv_cache.serving_gpus(spec, GPU, DTYPE)
    rows = [_row(spec, scheme, n_gpus) for scheme in SCHEMES]
    free = GPU.hbm_bytes * n_gpus - kv_cache.weight_bytes(spec, DTYPE)
    return {
        "name": name, "scheme": spec.scheme, "n_layers": spec.n_layers, "n_heads": spec.n_heads,
        "head_dim": spec.head_dim, "window": spec.window, "context": spec.context,
        "n_gpus": n_gpus, "fit_text": _fit_text(spec, n_gpus), "free_pos": round(_position(free), 4),
        "source": spec.source, "rows": rows,
        "captions": [_caption(spec, rows, stop) for stop in STOPS],
    }


def _axis() -> list[dict]:
    """Ticks every 16x on the log axis, labelled as exact powers of two (16 MiB ... 1 TiB)."""
    lo, hi = AXIS_LOG2
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    return [{"pos": (k - lo) / (hi - lo), "label": f"{2 ** (k % 10)} {units[k // 10]}"}
            for k in range(lo, hi + 1, AXIS_TICK_EVERY)]


def trace() -> dict:
    data = {
        "dtype": DTYPE, "gpu": GPU.name,
        "stops": list(STOPS), "stop_labels": [_k(n) for n in STOPS],
        "default_model": MODELS.index(DEFAULT_MODEL), "default_stop": STOPS.index(DEFAULT_STOP),
        "axis": _axis(), "schemes": list(SCHEMES),
        "models": [_model(name) for name in MODELS],
    }
    return {"data": data, "facts": _facts()}


def _facts() -> dict:
    facts = {"dtype": DTYPE}
    for scheme, spec in kv_cache.CLASS_70B.items():
        key = scheme.lower()
        facts[f"class70b_{key}_per_token"] = size(kv_cache.kv_bytes_per_token(spec, DTYPE))
        for n in FACT_CONTEXTS:
            facts[f"class70b_{key}_{_k(n)}"] = size(kv_cache.kv_bytes(spec, n, dtype=DTYPE))
    v2 = kv_cache.get("DeepSeek-V2")
    mla, mha = kv_cache.kv_elements_per_token(v2), kv_cache.kv_elements_per_token(kv_cache.scheme_variant(v2, "MHA"))
    facts.update(
        v2_mla_elements=f"{mla:,}", v2_mha_elements=f"{mha:,}",
        v2_mla_vs_mha_reduction=f"{100 * (1 - mla / mha):.1f}%", v2_mla_vs_mha_ratio=f"{mha / mla:.1f}×",
    )
    mistral = kv_cache.get("Mistral 7B")
    facts.update(
        mistral_window=f"{mistral.window:,}",
        mistral_cache_at_window=size(kv_cache.kv_bytes(mistral, mistral.window, dtype=DTYPE)),
        mistral_cache_at_context=size(kv_cache.kv_bytes(mistral, mistral.context, dtype=DTYPE)),
    )
    return facts
