"""How far back a stack of sliding-window attention layers can see.

One causal sliding-window layer lets query ``i`` read keys ``i - w < j <= i``: the
``w`` most recent positions, itself included (``kernels.reference.attention_mask``,
the convention of Hugging Face's Mistral). Information therefore moves at most
``w - 1`` positions per layer, and after ``L`` layers position ``i`` depends on the
inputs at ``max(0, i - L (w - 1)) .. i``: a receptive field of

    min(i, L (w - 1)) + 1 tokens.

Here that is not assumed but computed: the layers' boolean masks are composed
(``reach_L = M @ reach_{L-1}`` as a boolean matrix product, ``reach_0 = I``), and the
tests check the composition against the closed form.

Mistral 7B (arXiv:2310.06825, Section 2) states a "theoretical attention span of
approximately 131K tokens" for ``L = 32`` and ``W = 4096``, i.e. ``L * W = 131,072``.
Under our mask convention the exact span is ``32 * 4095 + 1 = 131,041`` tokens. The
paper's text ("positions between i - W and i") and its reference implementation's
mask (``torch.triu(mask, diagonal=-sliding_window)``) admit ``W + 1`` keys per layer,
which gives ``32 * 4096 + 1 = 131,073``. Either way: about 131K.
"""

from __future__ import annotations

import numpy as np

from kernels.reference import attention_mask

__all__ = ["influence", "reachability", "receptive_field", "receptive_field_closed_form", "span"]


def _check_positive(**values) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def reachability(n: int, window: int, n_layers: int) -> np.ndarray:
    """(L + 1, n, n) bool: ``reach[l, i, j]`` is True when layer ``l``'s output at ``i`` depends on input ``j``.

    ``reach[0]`` is the identity (the embeddings); ``reach[l] = M @ reach[l - 1]`` over
    the booleans, with ``M`` the real causal sliding-window mask of one layer.
    """
    _check_positive(n=n, window=window, n_layers=n_layers)
    mask = attention_mask(n, n, causal=True, window=window)[0, 0].astype(np.int64)  # (n, n)
    reach = [np.eye(n, dtype=bool)]  # (n, n) per layer
    for _ in range(n_layers):
        # i reaches j if it attends to some k that already reached j: an OR of ANDs.
        reach.append(mask @ reach[-1].astype(np.int64) > 0)  # (n, n)
    return np.stack(reach)  # (L + 1, n, n)


def receptive_field(n: int, window: int, n_layers: int) -> np.ndarray:
    """(n,) int: how many input positions each position's output depends on after ``n_layers`` layers."""
    return reachability(n, window, n_layers)[-1].sum(axis=1)


def influence(n: int, window: int, n_layers: int, source: int = 0) -> np.ndarray:
    """(L + 1, n) bool: which positions token ``source`` has reached after each layer (row 0: itself)."""
    if not 0 <= source < n:
        raise ValueError(f"source must be in [0, {n}), got {source}")
    return reachability(n, window, n_layers)[:, :, source]


def receptive_field_closed_form(position: int, window: int, n_layers: int) -> int:
    """min(i, L (w - 1)) + 1: the field of position ``i``, capped at the sequence start."""
    _check_positive(window=window, n_layers=n_layers)
    if position < 0:
        raise ValueError(f"position must be >= 0, got {position}")
    return min(position, span(window, n_layers) - 1) + 1


def span(window: int, n_layers: int) -> int:
    """L (w - 1) + 1: the receptive field far from the sequence start, in tokens."""
    _check_positive(window=window, n_layers=n_layers)
    return n_layers * (window - 1) + 1
