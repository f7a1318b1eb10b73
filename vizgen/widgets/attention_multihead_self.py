"""attention-multihead-self: four real heads of all-MiniLM-L6-v2 on the Transformer
blog post's sentence, and a control sentence that tests the "coreference" head.

Every weight is the model's own attention (cached by `kernels.pretrained_heads`,
regenerated with `python -m kernels.pretrained_heads`). The four heads are not hand
picked: `pretrained_heads.select_heads` takes the best of the 72 heads for each
pattern by its measured score on the "tired" sentence. The "wide" sentence then
shows whether the best "it" -> "animal" head follows the referent or the subject.
"""

from __future__ import annotations

import numpy as np

from kernels import pretrained_heads as ph
from vizgen.fmt import sci

SHOWN_DECIMALS = 3  # the cache holds 1/1000 steps; more digits would be noise
MIN_WEIGHT = 0.02  # lines thinner than this are not drawn: 15 x 15 x 4 hairlines hide the pattern
TOP_TARGETS = 3  # keys listed for a clicked token, per head: enough to see where the rest went

PATTERN_NAMES = {
    "previous": "previous token",
    "next": "next token",
    "sink": "[CLS]/[SEP] sink",
    "coreference": "“it” → “animal”",
}
SCORE_NAMES = {
    "previous": "mean on i−1",
    "next": "mean on i+1",
    "sink": "mean on [CLS]+[SEP]",
    "coreference": "“it” on “animal”",
}


def label(layer: int, head: int) -> str:
    """'L5·H11': layer and head counted from 0, as in the code."""
    return f"L{layer}·H{head}"


def _f(x: float) -> str:
    return f"{x:.2f}"


def _scores(cache: dict) -> dict[str, dict[str, np.ndarray]]:
    return {key: ph.head_scores(entry["attention"], entry["tokens"]) for key, entry in cache["sentences"].items()}


def _caption(pattern: str, layer: int, head: int, scores: dict[str, np.ndarray]) -> str:
    """What the head does, with its measured numbers on the main sentence."""
    s = {key: float(value[layer, head]) for key, value in scores.items()}
    if pattern == "previous":
        return f"Each token looks back one position: on average {_f(s['previous'])} of its attention lands on token i−1."
    if pattern == "next":
        return f"Each token looks one position ahead: on average {_f(s['next'])} of its attention lands on token i+1."
    if pattern == "sink":
        return (f"Most queries park their attention on the special tokens: {_f(s['cls'])} on [CLS] and "
                f"{_f(s['sep'])} on [SEP] on average, a 'no-op' place to look (Clark et al. 2019).")
    return (f"“it” puts {_f(s['it_animal'])} of its attention on “animal” and {_f(s['it_street'])} on “street”: "
            f"the highest “it” → “animal” weight of all {scores['it_animal'].size} heads.")


def _head(choice: dict, index: int, cache: dict, scores: dict) -> dict:
    layer, head, pattern = choice["layer"], choice["head"], choice["pattern"]
    return {
        "pattern": pattern,
        "name": PATTERN_NAMES[pattern],
        "label": label(layer, head),
        "layer": layer,
        "head": head,
        "color": f"head-{index}",
        "score_name": SCORE_NAMES[pattern],
        "score": {key: _f(s[pattern][layer, head]) for key, s in scores.items()},
        "caption": _caption(pattern, layer, head, scores[ph.MAIN]),
        # per sentence, (N, N): what the lines draw
        "attention": {key: np.round(entry["attention"][layer, head], SHOWN_DECIMALS)
                      for key, entry in cache["sentences"].items()},
        # per sentence, per query: its strongest keys (at most TOP_TARGETS), strongest first
        "top": {key: _top(entry["attention"][layer, head]) for key, entry in cache["sentences"].items()},
    }


def _top(a: np.ndarray) -> list[list[int]]:
    """Per query row, the keys of weight >= MIN_WEIGHT by falling weight (ties: earlier key)."""
    order = np.argsort(-a, axis=-1, kind="stable")[:, :TOP_TARGETS]  # (N, TOP_TARGETS)
    return [[int(j) for j in row if a[i, j] >= MIN_WEIGHT] for i, row in enumerate(order)]


def _weights(scores: dict, layer: int, head: int) -> dict:
    """'it' -> animal / street of one head in both sentences."""
    return {key: {"animal": float(s["it_animal"][layer, head]), "street": float(s["it_street"][layer, head])}
            for key, s in scores.items()}


def _control(scores: dict, coref: dict) -> dict:
    """The honest test: does the chosen head, or any head, follow the referent?"""
    tired, wide = scores["tired"], scores["wide"]
    w = _weights(scores, coref["layer"], coref["head"])
    resolves = bool(ph.coreference_flips(tired, wide)[coref["layer"], coref["head"]])
    flips = ph.coreference_flips(tired, wide)
    shift = ph.margin_shift(tired, wide)
    best_flip = np.unravel_index(np.argmax(np.where(flips, shift, -np.inf)), shift.shape) if flips.any() else None
    most_shift = np.unravel_index(np.argmax(shift), shift.shape)
    if resolves:
        verdict = (f"{coref['label']} resolves “it”: it moves from “animal” to “street” when the street is the "
                   f"one that is wide.")
    else:
        verdict = (f"{coref['label']} follows the subject, not the referent: when “it” is the wide street it "
                   f"still puts {_f(w['wide']['animal'])} on “animal” and only {_f(w['wide']['street'])} on “street”.")
    return {
        "label": coref["label"],
        "weights": w,
        "resolves": resolves,
        "verdict": verdict,
        "flips": int(flips.sum()),
        # The strongest weight any flipping head gives either noun, in either sentence.
        "flip_max_weight": float(max(s[key][flips].max(initial=0.0)
                                     for s in (tired, wide) for key in ("it_animal", "it_street"))),
        "total": int(flips.size),
        "best_flip": None if best_flip is None else _named(scores, *best_flip),
        "most_shift": _named(scores, *most_shift),
    }


def _named(scores: dict, layer, head) -> dict:
    layer, head = int(layer), int(head)
    return {"label": label(layer, head), "weights": _weights(scores, layer, head)}


def _flip_note(control: dict) -> str:
    if control["best_flip"] is None:
        return f"No head of the {control['total']} moves “it” from “animal” to “street” between the two sentences."
    w = control["best_flip"]["weights"]
    return (f"{control['flips']} of {control['total']} heads do flip (animal > street when tired, street > animal when wide), "
            f"none with more than {_f(control['flip_max_weight'])} on either word; the clearest, "
            f"{control['best_flip']['label']}: animal "
            f"{_f(w['tired']['animal'])} → {_f(w['wide']['animal'])}, street {_f(w['tired']['street'])} → "
            f"{_f(w['wide']['street'])}.")


def trace() -> dict:
    cache = ph.read_cache()
    scores = _scores(cache)
    chosen = ph.select_heads(scores[ph.MAIN])
    heads = [_head(choice, i, cache, scores) for i, choice in enumerate(chosen)]
    coref = next(h for h in heads if h["pattern"] == "coreference")
    control = _control(scores, coref)
    control["flip_note"] = _flip_note(control)
    sentences = {key: {"text": entry["text"], "tokens": entry["tokens"]} for key, entry in cache["sentences"].items()}
    data = {
        "model": cache["model"],
        "package": cache["package"],
        "layers": cache["layers"],
        "heads_per_layer": cache["heads"],
        "head_dim": cache["head_dim"],
        "sentences": sentences,
        "main": ph.MAIN,
        "heads": heads,
        "control": control,
        "min_weight": MIN_WEIGHT,
        "pronoun": ph.position(cache["sentences"][ph.MAIN]["tokens"], ph.PRONOUN),
        "reference_max_abs_diff": cache["reference_max_abs_diff"],
    }
    return {"data": data, "facts": _facts(cache, heads, control, scores)}


def _facts(cache: dict, heads: list[dict], control: dict, scores: dict) -> dict:
    by = {h["pattern"]: h for h in heads}
    sink = by["sink"]
    main = scores[ph.MAIN]
    facts = {
        "model": cache["model"],
        "package": cache["package"],
        "layers": cache["layers"],
        "heads": cache["heads"],
        "total_heads": cache["layers"] * cache["heads"],
        "head_dim": cache["head_dim"],
        "d_model": cache["d_model"],
        "n_tokens": len(cache["sentences"][ph.MAIN]["tokens"]),
        "tokens": " ".join(cache["sentences"][ph.MAIN]["tokens"]),
        "reference_max_abs_diff": sci(cache["reference_max_abs_diff"]),
        "sink_cls": _f(main["cls"][sink["layer"], sink["head"]]),
        "sink_sep": _f(main["sep"][sink["layer"], sink["head"]]),
        "coref_verdict": "resolves" if control["resolves"] else "follows the subject",
        "flip_count": control["flips"],
        "most_shift_head": control["most_shift"]["label"],
    }
    for pattern, h in by.items():
        facts[f"{pattern}_head"] = h["label"]
        facts[f"{pattern}_score"] = h["score"][ph.MAIN]
    for name, entry in (("coref", {"weights": control["weights"]}), ("most_shift", control["most_shift"]),
                        ("flip", control["best_flip"])):
        if entry is None:
            continue
        for sentence, pair in entry["weights"].items():
            for word, value in pair.items():
                facts[f"{name}_{sentence}_{word}"] = _f(value)
    if control["best_flip"] is not None:
        facts["flip_head"] = control["best_flip"]["label"]
    return facts
