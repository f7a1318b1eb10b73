import torch


def online_softmax_attention(q, k, v, block=4):
    """softmax(q·kᵀ/√d)·v for one query row, reading K and V one tile at a time."""
    m, l, acc = torch.tensor(float("-inf")), torch.tensor(0.0), torch.zeros(v.shape[1])
    for j in range(0, k.shape[0], block):
        s = k[j:j + block] @ q / q.shape[0] ** 0.5  # this tile's scores
        m_new = torch.maximum(m, s.max())
        alpha = torch.exp(m - m_new)  # shrink what was summed under the old max
        p = torch.exp(s - m_new)
        l, acc, m = alpha * l + p.sum(), alpha * acc + p @ v[j:j + block], m_new
    return acc / l  # one division, at the very end


q, k, v = torch.randn(16), torch.randn(10, 16), torch.randn(10, 16)
assert torch.allclose(online_softmax_attention(q, k, v), torch.softmax(k @ q / 4, dim=0) @ v, atol=1e-5)
