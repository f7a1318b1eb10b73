"""kv-preview: the KV cache of Llama 3.1 70B at 128k tokens, with and without GQA — the
hook from Part 3 into Part 4, computed from the model's published configuration.

Source: Meta Llama 3 70B model card and config (80 layers, hidden 8192, 64 query heads
of dimension 128, 8 key/value heads; context 128k tokens in Llama 3.1)."""

from __future__ import annotations

LAYERS, QUERY_HEADS, KV_HEADS, HEAD_DIM = 80, 64, 8, 128
CONTEXT = 128 * 1024
BF16_BYTES = 2


def kv_bytes_per_token(kv_heads: int) -> int:
    """Keys and values (2) for every layer and KV head."""
    return 2 * LAYERS * kv_heads * HEAD_DIM * BF16_BYTES


def trace() -> dict:
    mha, gqa = kv_bytes_per_token(QUERY_HEADS), kv_bytes_per_token(KV_HEADS)
    return {
        "facts": {
            "mha_per_token_mib": f"{mha / 2**20:.2f}",
            "gqa_per_token_kib": f"{gqa / 2**10:.0f}",
            "mha_128k_gib": f"{mha * CONTEXT / 2**30:.0f}",
            "gqa_128k_gib": f"{gqa * CONTEXT / 2**30:.0f}",
            "context": f"{CONTEXT // 1024}k",
        },
        "tables": {},
    }
