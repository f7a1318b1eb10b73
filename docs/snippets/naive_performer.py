import torch


def naive_performer(q, k, v, w):
    """Kernel attention with φ(x) = ReLU(W x), reordered: φ(Q) (φ(K)ᵀ V), no N × N matrix."""
    phi_q, phi_k = torch.relu(q @ w.T), torch.relu(k @ w.T)  # (N, m) each
    kv = phi_k.T @ v  # (m, d): every key summed once, O(N m d)
    z = phi_k.sum(dim=0)  # (m,): the normaliser, reordered the same way
    return (phi_q @ kv) / (phi_q @ z)[:, None]  # (N, d)


torch.manual_seed(0)
n, d, m = 64, 16, 32  # tokens, head dimension, random features
q, k, v = torch.randn(3, n, d, dtype=torch.float64)
w = torch.randn(m, d, dtype=torch.float64) / d**0.5  # (m, d) random projection
a = torch.relu(q @ w.T) @ torch.relu(k @ w.T).T  # (N, N): the explicit order, O(N² m)
explicit = (a / a.sum(dim=1, keepdim=True)) @ v
ours = naive_performer(q, k, v, w)
assert torch.allclose(ours, explicit)
print("φ(Q)(φ(K)ᵀV) equals the N × N form; max |difference|:", (ours - explicit).abs().max().item())
