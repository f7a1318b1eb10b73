"""sliding-window-receptive-field: how far a stack of sliding-window layers can see.

Token 0's information, layer by layer, over N_CTX positions: which positions it has
reached after each layer (`kernels.receptive_field.influence`, the real causal
sliding-window masks composed as boolean matrix products), the window that carries it
one step further (a row of `kernels.reference.attention_mask`), and the receptive field
of the last position, next to the closed form L (w - 1) + 1 and to Mistral 7B's
statement (arXiv:2310.06825, Section 2): "positions between i - W and i", so after k
layers information travels up to k x W tokens, about 131K for 32 layers and W = 4096.

The window w counts the query's own position (query i reads keys i - w + 1 .. i), the
convention of Hugging Face's eager Mistral attention and of `kernels.receptive_field`; read literally,
the paper's "between i - W and i" holds W + 1 keys. Both conventions are computed.
"""

from __future__ import annotations

import numpy as np

from kernels import kv_cache
from kernels import receptive_field as rf
from kernels.reference import attention_mask

N_CTX = 32  # positions: wide enough that token 0 never reaches the end (6 x (6 - 1) + 1 = 31)
N_LAYERS = 6  # the player's steps: layer 0 (the input) .. layer 6
WINDOWS = (2, 3, 4, 5, 6)  # the w slider; w = 1 would never spread
DEFAULT_WINDOW = 4
SOURCE = 0  # the token whose information we follow
MISTRAL = "Mistral 7B"


def _window_of(n: int, w: int, query: int) -> list[int]:
    """[first, last] key that ``query`` attends to under the causal sliding-window mask."""
    keys = np.flatnonzero(attention_mask(n, n, causal=True, window=w)[0, 0, query])  # (<= w,)
    return [int(keys[0]), int(keys[-1])]


def _caption(w: int, layer: int, window: list[int] | None, previous: int, reach: int) -> str:
    if layer == 0:
        return (f"Layer 0 is the input: token {SOURCE}'s information sits at position {SOURCE} only. "
                f"In every layer each position attends to the w = {w} most recent positions of the layer below, itself included.")
    lo, frontier = window
    return (f"Layer {layer}: position {frontier} attends to positions {lo}…{frontier} of layer {layer - 1}, "
            f"which include position {previous}, the farthest token {SOURCE} had reached; "
            f"so the information moves w − 1 = {w - 1} further. "
            f"Token {SOURCE} now reaches {reach} positions: {layer}·({w} − 1) + 1 = {rf.span(w, layer)}.")


def _stop(w: int) -> dict:
    """Every layer of the stack for one window: what token 0 reaches, and the field of the last position."""
    reached = rf.influence(N_CTX, w, N_LAYERS, source=SOURCE)  # (L + 1, N) bool
    last = rf.reachability(N_CTX, w, N_LAYERS)[:, N_CTX - 1].sum(axis=1)  # (L + 1,) field of position N - 1
    layers = []
    for layer in range(N_LAYERS + 1):
        frontier = int(np.flatnonzero(reached[layer])[-1])
        new = reached[layer] & ~reached[layer - 1] if layer else reached[0]
        previous = int(np.flatnonzero(reached[layer - 1])[-1]) if layer else SOURCE
        reach = int(reached[layer].sum())
        window = _window_of(N_CTX, w, frontier) if layer else None
        layers.append({
            "layer": layer,
            "reached": reached[layer],
            "new": [int(i) for i in np.flatnonzero(new)],
            "frontier": frontier,
            "window": window,  # the keys of layer - 1 that the frontier attends to
            "reach": reach,  # positions token 0 has reached, from the composed masks
            "effective": int(last[layer]),  # receptive field of the last position, from the composed masks
            "closed_form": rf.span(w, layer) if layer else 1,  # L (w - 1) + 1
            "mistral_form": layer * w,  # the paper's k x W, read with our w
            "caption": _caption(w, layer, window, previous, reach),
        })
    return {"w": w, "layers": layers}


def _mistral() -> dict:
    """Mistral 7B's theoretical span under both readings of its window."""
    spec = kv_cache.get(MISTRAL)
    layers, window = spec.n_layers, spec.window
    return {
        "layers": layers, "window": window,
        "ours": rf.span(window, layers),  # w keys, the token itself included: L (W - 1) + 1
        "paper_mask": rf.span(window + 1, layers),  # "between i - W and i": W + 1 keys, L W + 1
        "paper": layers * window,  # the paper's k x W: "approximately 131K tokens"
    }


def trace() -> dict:
    mistral = _mistral()
    data = {
        "n": N_CTX, "n_layers": N_LAYERS, "source": SOURCE,
        "windows": list(WINDOWS), "default_window": WINDOWS.index(DEFAULT_WINDOW),
        "stops": [_stop(w) for w in WINDOWS],
        "mistral": mistral,
    }
    return {"data": data, "facts": _facts(data)}


def _facts(data: dict) -> dict:
    default = data["stops"][data["default_window"]]["layers"][-1]
    m = data["mistral"]
    return {
        "n_ctx": N_CTX, "layers": N_LAYERS, "window": DEFAULT_WINDOW,
        "span": default["effective"], "span_mistral_reading": default["mistral_form"],
        "mistral_layers": m["layers"], "mistral_window": f"{m['window']:,}",
        "mistral_span_ours": f"{m['ours']:,}",  # w counts the token itself (Hugging Face, this widget)
        "mistral_span_paper_mask": f"{m['paper_mask']:,}",  # W + 1 keys, "between i - W and i"
        "mistral_span_paper": f"{m['paper']:,}",  # 32 x 4096, "approximately 131K"
    }
