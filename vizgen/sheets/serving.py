"""serving: every KV-cache size in Part 4's prose and tables, computed by `kernels.kv_cache`
from each model's published configuration (each preset carries its source).

Binary units throughout (KiB, MiB, GiB): a 2**k-wide cache adds up to powers of two.
"""

from __future__ import annotations

from dataclasses import replace

from kernels import kv_cache
from kernels.gpu_specs import H100
from kernels.paged.workload import SHAREGPT

KIB, MIB, GIB = 2**10, 2**20, 2**30
CONTEXTS = (8 * 1024, 32 * 1024, 128 * 1024)
DTYPE = "bf16"
# DeepSeek-V2 as deployed: "compress each element in its KV cache into 6 bits on average"
# (arXiv:2405.04434, Section 3.2.3); its "93.3% less KV cache than DeepSeek 67B" compares that
# deployment with DeepSeek 67B's 16-bit GQA cache.
DEPLOYED_BITS_V2 = 6
BITS_16 = 16
SERVING_GPUS = 8  # one H100 node: Llama 3.1 70B's 141 GB of bf16 weights need more than one GPU


def size(n_bytes: float) -> str:
    """A byte count in the largest binary unit that keeps it at or above 1, to two decimals at most."""
    for unit, scale in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if n_bytes >= scale:
            value = n_bytes / scale
            return (f"{value:,.0f}" if value >= 100 else f"{value:.2f}".rstrip("0").rstrip(".")) + f" {unit}"
    return f"{n_bytes:,.0f} bytes"


def per_layer(spec: kv_cache.ModelSpec) -> str:
    """What one layer caches per token, in the papers' symbols."""
    if spec.scheme == "MLA":
        return f"d_c + d_h^R = {spec.d_c} + {spec.d_h_R}"
    return f"2 × {spec.n_kv_heads} × {spec.head_dim}"


def scheme_table() -> str:
    """Llama 3.1 70B's 80 layers x 64 heads x 128 under each scheme, like for like."""
    lines = [("| scheme | KV heads | cached per token per layer | per token | 8k tokens | 32k tokens | 128k tokens "
              f"| 128k-token requests on {SERVING_GPUS} × H100 |"),
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    for scheme, spec in kv_cache.CLASS_70B.items():
        heads = "— (one latent)" if scheme == "MLA" else str(spec.n_kv_heads)
        sizes = " | ".join(size(kv_cache.kv_bytes(spec, n, dtype=DTYPE)) for n in CONTEXTS)
        fit = kv_cache.max_batch(spec, H100, CONTEXTS[-1], n_gpus=SERVING_GPUS)
        lines.append(f"| {scheme} | {heads} | {per_layer(spec)} | {size(kv_cache.kv_bytes_per_token(spec, DTYPE))} "
                     f"| {sizes} | {fit:,} |")
    return "\n".join(lines)


def model_table() -> str:
    """The published models: their own scheme, per-token cache and the cache of one full context."""
    lines = ["| model | scheme | layers | cached per token per layer | per token | one request at full context |",
             "|---|---|---:|---|---:|---:|"]
    for spec in kv_cache.PRESETS.values():
        full = kv_cache.kv_bytes(spec, spec.context, dtype=DTYPE)
        window = f" (window {spec.window:,})" if spec.window else ""
        lines.append(f"| {spec.name} | {spec.scheme}{window} | {spec.n_layers} | {per_layer(spec)} "
                     f"| {size(kv_cache.kv_bytes_per_token(spec, DTYPE))} | {size(full)} at {spec.context // 1024}k |")
    return "\n".join(lines)


def _llama_facts() -> dict:
    gqa = kv_cache.get("Llama 3.1 70B")
    mha, mqa, mla = (kv_cache.CLASS_70B[s] for s in ("MHA", "MQA", "MLA"))
    n = CONTEXTS[-1]
    return {
        "l70_layers": gqa.n_layers, "l70_heads": gqa.n_heads, "l70_kv_heads": gqa.n_kv_heads,
        "l70_head_dim": gqa.head_dim, "l70_group": gqa.n_heads // gqa.n_kv_heads,
        "l70_token": size(kv_cache.kv_bytes_per_token(gqa)),
        "l70_token_bytes": f"{kv_cache.kv_bytes_per_token(gqa):,}",
        "l70_128k": size(kv_cache.kv_bytes(gqa, n)),
        "l70_mha_token": size(kv_cache.kv_bytes_per_token(mha)),
        "l70_mha_128k": size(kv_cache.kv_bytes(mha, n)),
        "l70_mqa_token": size(kv_cache.kv_bytes_per_token(mqa)),
        "l70_mqa_128k": size(kv_cache.kv_bytes(mqa, n)),
        "l70_mla_token": size(kv_cache.kv_bytes_per_token(mla)),
        "l70_mla_128k": size(kv_cache.kv_bytes(mla, n)),
        "l70_mla_vs_gqa": f"{kv_cache.kv_bytes_per_token(gqa) / kv_cache.kv_bytes_per_token(mla):.1f}",
        "l70_weights_gb": f"{kv_cache.weight_bytes(gqa) / 1e9:.0f}",
        "l70_batch_128k_8gpu": kv_cache.max_batch(gqa, H100, n, n_gpus=SERVING_GPUS),
        "l70_mha_batch_128k_8gpu": kv_cache.max_batch(mha, H100, n, n_gpus=SERVING_GPUS),
        "l70_cache_vs_weights": f"{kv_cache.kv_bytes(gqa, n, batch=4) / kv_cache.weight_bytes(gqa):.1f}",
        "h100_gb": f"{H100.hbm_bytes / 1e9:.0f}", "serving_gpus": SERVING_GPUS,
    }


def _deepseek_facts() -> dict:
    v2, dense = kv_cache.get("DeepSeek-V2"), kv_cache.get("DeepSeek 67B")
    v2_mha = kv_cache.scheme_variant(v2, "MHA")
    e_v2, e_dense, e_mha = (kv_cache.kv_elements_per_token(s) for s in (v2, dense, v2_mha))
    return {
        "v2_layers": v2.n_layers, "v2_d_c": v2.d_c, "v2_d_h_R": v2.d_h_R, "v2_heads": v2.n_heads,
        "v2_elements": f"{e_v2:,}", "v2_per_layer": v2.d_c + v2.d_h_R,
        # The paper's Table 1: MLA caches as much as GQA with 2.25 groups.
        "v2_equiv_groups": f"{(v2.d_c + v2.d_h_R) / (2 * v2.head_dim):.2f}",
        "v2_token": size(kv_cache.kv_bytes_per_token(v2)),
        "v2_128k": size(kv_cache.kv_bytes(v2, 128 * 1024)),
        "dense_elements": f"{e_dense:,}", "dense_layers": dense.n_layers, "dense_kv_heads": dense.n_kv_heads,
        "v2_vs_dense_16bit": f"{100 * (1 - e_v2 / e_dense):.1f}",
        "v2_vs_dense_deployed": f"{100 * (1 - e_v2 * DEPLOYED_BITS_V2 / (e_dense * BITS_16)):.1f}",
        "v2_vs_own_mha": f"{100 * (1 - e_v2 / e_mha):.1f}",
        "deployed_bits": DEPLOYED_BITS_V2,
    }


def _other_facts() -> dict:
    opt, mistral, falcon = (kv_cache.get(m) for m in ("OPT-13B", "Mistral 7B", "Falcon-7B"))
    l8, l405 = kv_cache.get("Llama 3.1 8B"), kv_cache.get("Llama 3.1 405B")
    full_32k = replace(mistral, name="Mistral 7B without its window", window=None)
    return {
        "opt13_token": size(kv_cache.kv_bytes_per_token(opt, "fp16")),
        "opt13_token_bytes": f"{kv_cache.kv_bytes_per_token(opt, 'fp16'):,}",
        "mistral_window": f"{mistral.window:,}", "mistral_token": size(kv_cache.kv_bytes_per_token(mistral)),
        "mistral_cap": size(kv_cache.kv_bytes(mistral, mistral.window)),
        "mistral_32k_full": size(kv_cache.kv_bytes(full_32k, 32 * 1024)),
        "mistral_32k_ratio": f"{kv_cache.kv_bytes(full_32k, 32 * 1024) / kv_cache.kv_bytes(mistral, 32 * 1024):.0f}",
        "falcon_token": size(kv_cache.kv_bytes_per_token(falcon)), "falcon_heads": falcon.n_heads,
        "l8_token": size(kv_cache.kv_bytes_per_token(l8)), "l8_128k": size(kv_cache.kv_bytes(l8, 128 * 1024)),
        "l8_batch_128k_1gpu": kv_cache.max_batch(l8, H100, 128 * 1024),
        "l8_batch_8k_1gpu": kv_cache.max_batch(l8, H100, 8 * 1024),
        "l405_token": size(kv_cache.kv_bytes_per_token(l405)), "l405_128k": size(kv_cache.kv_bytes(l405, 128 * 1024)),
        **_decode_floor(l8),
        "sharegpt_in": f"{SHAREGPT.mean_input:.2f}", "sharegpt_out": f"{SHAREGPT.mean_output:.2f}",
    }


def _decode_floor(spec: kv_cache.ModelSpec) -> dict:
    """The fastest one decode step can be at batch 1: every weight and every cached byte read once from HBM."""
    weights_ms = 1e3 * H100.seconds_to_move(kv_cache.weight_bytes(spec))
    cache_ms = 1e3 * H100.seconds_to_move(kv_cache.kv_bytes(spec, 128 * 1024))
    return {
        "l8_weights_gb": f"{kv_cache.weight_bytes(spec) / 1e9:.0f}",
        "l8_weight_read_ms": f"{weights_ms:.1f}", "l8_cache_read_ms_128k": f"{cache_ms:.1f}",
        "l8_tokens_per_s_128k": f"{1e3 / (weights_ms + cache_ms):.0f}",
        "h100_tb_s": f"{H100.hbm_bandwidth / 1e12:.2f}",
    }


def trace() -> dict:
    return {
        "facts": {**_llama_facts(), **_deepseek_facts(), **_other_facts()},
        "tables": {"schemes_70b": scheme_table(), "models": model_table()},
    }
