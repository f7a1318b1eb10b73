import torch
import torch.nn.functional as F


def attention(q, k, v, mask=None):
    """softmax(Q·Kᵀ / √d_k)·V (Vaswani et al. 2017, eq. 1); mask: True = may attend."""
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5  # (B, H, N, N)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # hidden keys get weight 0
    return torch.softmax(scores, dim=-1) @ v  # (B, H, N, d_v)


torch.manual_seed(0)
q, k, v = (torch.randn(2, 4, 8, 16) for _ in range(3))  # (B, H, N, d_k)
causal = torch.ones(8, 8, dtype=torch.bool).tril()
for mask in (None, causal):
    ours, torchs = attention(q, k, v, mask), F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.allclose(ours, torchs, atol=1e-6)
    print("mask" if mask is not None else "no mask", "max |difference|:", (ours - torchs).abs().max().item())
