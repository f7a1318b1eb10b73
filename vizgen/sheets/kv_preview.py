"""kv-preview: the KV cache of Llama 3.1 70B at 128k tokens, with and without GQA — the
hook from Part 3 into Part 4, computed by `kernels.kv_cache` from the model's published
configuration (its preset carries the source)."""

from __future__ import annotations

from kernels import kv_cache

MODEL = "Llama 3.1 70B"


def trace() -> dict:
    gqa = kv_cache.get(MODEL)
    mha = kv_cache.scheme_variant(gqa, "MHA")
    context = gqa.context
    return {
        "facts": {
            "model": MODEL,
            "mha_per_token_mib": f"{kv_cache.kv_bytes_per_token(mha) / 2**20:.2f}",
            "gqa_per_token_kib": f"{kv_cache.kv_bytes_per_token(gqa) / 2**10:.0f}",
            "mha_128k_gib": f"{kv_cache.kv_bytes(mha, context) / 2**30:.0f}",
            "gqa_128k_gib": f"{kv_cache.kv_bytes(gqa, context) / 2**30:.0f}",
            "context": f"{context // 1024}k",
        },
        "tables": {},
    }
