# requires: cuda
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

B, H, N, D = 4, 16, 4096, 128
q, k, v = (torch.randn(B, H, N, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))
with sdpa_kernel(SDPBackend.FLASH_ATTENTION):  # only the FlashAttention backend may run
    F.scaled_dot_product_attention(q, k, v, is_causal=True)  # warm-up
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    end.record()
torch.cuda.synchronize()
flops = 4 * B * H * N * N * D / 2  # two matmuls of 2·N·N·D each, halved by the causal mask
print(f"{flops / (start.elapsed_time(end) / 1e3) / 1e12:.0f} TFLOP/s")
