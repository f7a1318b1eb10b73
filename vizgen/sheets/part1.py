"""part1: numbers for Part 1's prose that no widget owns.

* The √d_k worked example of Vaswani et al. 2017 (arXiv:1706.03762, §3.2.1, footnote 4):
  sample pairs of vectors with iid N(0, 1) components, and the variance of q·k comes
  out ≈ d_k; divided by √d_k, ≈ 1.
* What the N x N attention matrix costs: one head at N = 512 in FP16, and BERT-base
  (Devlin et al. 2018, arXiv:1810.04805, §3: L = 12 layers, A = 12 heads, H = 768;
  512 positions at most) per sample, in FP32 and FP16, at N = 512, 2048 and 8192.
  Binary units throughout: KiB = 2^10 bytes, MiB = 2^20, GiB = 2^30.
"""

from __future__ import annotations

import math

import numpy as np

from kernels import scoring

PAIRS = 10_000  # sampled (q, k) pairs per d_k: variance within ≈ ±1.5% (standard error)
SEED = 0
EXAMPLE_D_KS = (64, 512)  # the Transformer base model's d_k, and the widget's top stop

# BERT-base, Devlin et al. 2018, §3 ("BERT_BASE (L=12, H=768, A=12)") and its config.json
# ("max_position_embeddings": 512).
BERT_LAYERS, BERT_HEADS, BERT_HIDDEN, BERT_MAX_POSITIONS = 12, 12, 768, 512
FP32, FP16 = 4, 2
SEQ_LENS = (512, 2048, 8192)  # BERT's limit, GPT-3's context, a Longformer-scale document
UNITS = ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"))


def binary_size(n_bytes: int) -> str:
    """Bytes in the largest binary unit that keeps the number ≥ 1: 524288 -> '512 KiB'."""
    for size, unit in UNITS:
        if n_bytes >= size:
            return f"{n_bytes / size:,.4g} {unit}" if n_bytes % size else f"{n_bytes // size:,} {unit}"
    return f"{n_bytes} bytes"


def sqrt_dk_example(d_k: int) -> dict:
    """Var(q·k) and Var(q·k / √d_k) over `PAIRS` sampled pairs, and the first pair's numbers."""
    q, k = scoring.sample_qk(PAIRS, 1, d_k, np.random.default_rng(SEED))  # (P, 1, d), (P, 1, d)
    dot = scoring.dot_scores(q, k).ravel()  # (P,)
    scaled = scoring.scaled_dot_scores(q, k).ravel()
    return {
        "var_dot": float(np.var(dot)), "var_scaled": float(np.var(scaled)),
        "example_dot": float(dot[0]), "example_scaled": float(scaled[0]),
        "stderr": scoring.variance_standard_error(d_k, PAIRS, 1),
    }


def bert_bytes(n_ctx: int, itemsize: int) -> int:
    """One N x N matrix per head per layer of BERT-base, for one sample."""
    return scoring.attention_matrix_bytes(n_ctx, itemsize, heads=BERT_HEADS, layers=BERT_LAYERS)


def memory_table() -> str:
    # Past N = 512 this is BERT-base's shape, not BERT: it has 512 positions at most.
    lines = ["| N | one head, FP16 | 12 layers × 12 heads (BERT-base shape), FP16 | same, FP32 |",
             "|---:|---:|---:|---:|"]
    for n in SEQ_LENS:
        lines.append(f"| {n:,} | {binary_size(scoring.attention_matrix_bytes(n, FP16))} "
                     f"| {binary_size(bert_bytes(n, FP16))} | {binary_size(bert_bytes(n, FP32))} |")
    return "\n".join(lines)


def _sqrt_dk_facts() -> dict:
    facts = {"pairs": f"{PAIRS:,}"}
    for d_k in EXAMPLE_D_KS:
        ex = sqrt_dk_example(d_k)
        facts.update({
            f"sqrt_dk_{d_k}": f"{math.sqrt(d_k):.3g}",
            f"var_dot_{d_k}": f"{ex['var_dot']:.1f}",
            f"var_scaled_{d_k}": f"{ex['var_scaled']:.2f}",
            f"std_dot_{d_k}": f"{math.sqrt(ex['var_dot']):.1f}",
            f"example_dot_{d_k}": f"{ex['example_dot']:.2f}",
            f"example_scaled_{d_k}": f"{ex['example_scaled']:.2f}",
            f"var_stderr_{d_k}": f"{ex['stderr']:.2g}",
        })
    return facts


def _memory_facts() -> dict:
    facts = {
        "bert_layers": BERT_LAYERS, "bert_heads": BERT_HEADS, "bert_hidden": BERT_HIDDEN,
        "bert_max_positions": BERT_MAX_POSITIONS,
        # 12 x 12 x 512² = 37.7 million values: a count, not bytes (megabytes need x itemsize).
        "bert_512_values_millions": f"{BERT_LAYERS * BERT_HEADS * 512**2 / 1e6:.1f}",
    }
    for n in SEQ_LENS:
        facts[f"head_{n}_values"] = f"{n * n:,}"
        facts[f"head_{n}_fp16"] = binary_size(scoring.attention_matrix_bytes(n, FP16))
        facts[f"bert_{n}_fp16"] = binary_size(bert_bytes(n, FP16))
        facts[f"bert_{n}_fp32"] = binary_size(bert_bytes(n, FP32))
    facts["growth_512_to_8192"] = f"{(SEQ_LENS[-1] // SEQ_LENS[0]) ** 2}"
    return facts


def trace() -> dict:
    return {"facts": {**_sqrt_dk_facts(), **_memory_facts()}, "tables": {"attention_memory": memory_table()}}
