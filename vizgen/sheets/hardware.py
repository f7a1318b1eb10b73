"""hardware: the A100/H100 specification table, roofline ridge points and the size of
the N x N attention matrix, computed from kernels/gpu_specs.py for Part 3's prose."""

from __future__ import annotations

from kernels.gpu_specs import A100, H100, GPU

FP16_BYTES = 2
MATRIX_SIZES = (2_048, 8_192, 32_768, 131_072)  # the sequence lengths Part 3 discusses
# A 7B-class model (Llama 2 7B: 32 layers x 32 heads) trained at batch 1: standard
# attention keeps every layer's P (N x N per head) for the backward pass.
MODEL_HEADS, MODEL_LAYERS = 32, 32

# Features each generation introduced that FlashAttention uses (whitepapers, see gpu_specs).
NEW_FEATURES = {
    "A100": "TF32 and BF16 tensor cores, asynchronous global→shared copies (cp.async)",
    "H100": "FP8 tensor cores, TMA (Tensor Memory Accelerator), WGMMA, thread-block clusters",
}


def _bytes(n: float) -> str:
    """Binary units, as memory is allocated: 128 MiB, 2 GiB, 32 GiB, 4 TiB."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n:.0f} B"


def _tflops(gpu: GPU, dtype: str) -> str:
    return f"{gpu.tensor_flops[dtype] / 1e12:,.0f}" if dtype in gpu.tensor_flops else "—"


def spec_table() -> str:
    rows = [
        ("HBM", lambda g: f"{g.hbm_bytes / 1e9:.0f} GB {g.hbm_type}, {g.hbm_bandwidth / 1e12:.2f} TB/s"),
        ("SMs", lambda g: f"{g.sms}"),
        ("Shared memory (SRAM) per SM, max", lambda g: f"{g.max_smem_per_sm // 1024} KB (of {g.l1_smem_per_sm // 1024} KB L1/shared)"),
        ("Shared memory, whole GPU", lambda g: f"{g.total_smem / 2**20:.1f} MiB at {g.smem_bandwidth / 1e12:.1f} TB/s"),
        ("L2 cache", lambda g: f"{g.l2_bytes // 2**20} MB"),
        ("FP16/BF16 tensor TFLOP/s (dense)", lambda g: _tflops(g, "fp16")),
        ("FP8 tensor TFLOP/s (dense)", lambda g: _tflops(g, "fp8")),
        ("Ridge point, FP16 (FLOPs per HBM byte)", lambda g: f"{g.ridge_point('fp16'):.0f}"),
        ("New for attention kernels", lambda g: NEW_FEATURES["A100" if g is A100 else "H100"]),
    ]
    lines = [f"| | {A100.name} | {H100.name} |", "|---|---|---|"]
    lines += [f"| {label} | {cell(A100)} | {cell(H100)} |" for label, cell in rows]
    return "\n".join(lines)


def matrix_table() -> str:
    lines = [f"| N | one N×N matrix, FP16 (one head, one layer) | P kept for backward, {MODEL_HEADS} heads × {MODEL_LAYERS} layers |",
             "|---:|---:|---:|"]
    for n in MATRIX_SIZES:
        one = n * n * FP16_BYTES
        lines.append(f"| {n:,} | {_bytes(one)} | {_bytes(one * MODEL_HEADS * MODEL_LAYERS)} |")
    return "\n".join(lines)


def trace() -> dict:
    facts = {}
    for key, gpu in (("a100", A100), ("h100", H100)):
        facts[f"{key}_ridge_fp16"] = f"{gpu.ridge_point('fp16'):.0f}"
        facts[f"{key}_sms"] = gpu.sms
        facts[f"{key}_hbm_tbps"] = f"{gpu.hbm_bandwidth / 1e12:.2f}"
        facts[f"{key}_smem_tbps"] = f"{gpu.smem_bandwidth / 1e12:.1f}"
        facts[f"{key}_smem_over_hbm"] = f"{gpu.smem_bandwidth / gpu.hbm_bandwidth:.0f}"
        facts[f"{key}_fp16_tflops"] = _tflops(gpu, "fp16")
        facts[f"{key}_smem_per_sm_kb"] = gpu.max_smem_per_sm // 1024
        facts[f"{key}_clock_ghz"] = f"{gpu.boost_clock_hz / 1e9:.2f}"
        facts[f"{key}_fp32_tflops"] = f"{gpu.fp32_flops / 1e12:.1f}"
        facts[f"{key}_matmul_advantage"] = f"{gpu.matmul_advantage('fp16'):.0f}"
    facts["h100_fp8_tflops"] = _tflops(H100, "fp8")
    facts["model_heads"], facts["model_layers"] = MODEL_HEADS, MODEL_LAYERS
    facts["n_8k"] = f"{MATRIX_SIZES[1]:,}"
    facts["h100_ridge_fp8"] = f"{H100.ridge_point('fp8'):.0f}"
    for n in MATRIX_SIZES:
        facts[f"matrix_fp16_{n // 1024}k"] = _bytes(n * n * FP16_BYTES)
    return {"facts": facts, "tables": {"gpu_specs": spec_table(), "attention_matrix": matrix_table()}}
