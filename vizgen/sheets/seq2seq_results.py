"""seq2seq: the numbers Part 1 reports about its own trained encoder-decoders.

The bottleneck thesis of Bahdanau, Cho & Bengio 2014 (arXiv:1409.0473, Section 5.2.1,
Figure 2: the fixed-vector RNNencdec degrades on long sentences, RNNsearch does not),
measured on the toy grammar of `kernels.toy_translation` with the models of
`kernels.seq2seq`: held-out accuracy by source length for additive attention and the
fixed-vector model, overall accuracy of all four kinds (additive, Luong's dot and
general, none), their sizes and training time, and how often the alignment's largest
weight sits on the word the grammar says is being translated.
"""

from __future__ import annotations

from kernels import seq2seq
from kernels import toy_translation as toy

CURVE_KINDS = ("additive", "none")  # the by-length table compares these two
EXAMPLES = {"short": toy.SHORT_EXAMPLE, "long": toy.LONG_EXAMPLE}


def _frac(x: float) -> str:
    """A fraction (not a percentage) to three decimals, as the accuracy tables print it."""
    return f"{x:.3f}"


def length_table(curves: dict[str, seq2seq.LengthCurve]) -> str:
    """Markdown: one row per source-length bucket, attention beside the fixed vector."""
    att, fixed = (curves[k] for k in CURVE_KINDS)
    header = ("| source words | held-out pairs | sentences exact, attention | sentences exact, fixed vector "
              "| words right, attention | words right, fixed vector |")
    lines = [header, "|---:|---:|---:|---:|---:|---:|"]
    for k in range(len(att.lo)):
        if att.count[k] == 0:
            continue
        lines.append(f"| {att.lo[k]}–{att.hi[k]} | {att.count[k]:,} | {_frac(att.sentence_accuracy[k])} "
                     f"| {_frac(fixed.sentence_accuracy[k])} | {_frac(att.token_accuracy[k])} "
                     f"| {_frac(fixed.token_accuracy[k])} |")
    return "\n".join(lines)


def _kind_facts(kind: str, model: seq2seq.Trained, curve: seq2seq.LengthCurve) -> dict:
    return {
        f"{kind}_sentence_accuracy": _frac(curve.overall_sentence_accuracy),
        f"{kind}_token_accuracy": _frac(curve.overall_token_accuracy),
        f"{kind}_params": f"{model.n_params:,}",
        # Measured when the model was trained on this build machine; cached afterwards.
        f"{kind}_train_seconds": f"{model.wall_s:.0f}",
    }


def _curve_facts(curves: dict[str, seq2seq.LengthCurve]) -> dict:
    att, fixed = (curves[k] for k in CURVE_KINDS)
    filled = [k for k in range(len(att.lo)) if att.count[k] > 0]
    first, last = filled[0], filled[-1]
    zero_from = next((int(att.lo[k]) for k in filled if fixed.sentence_accuracy[k] == 0
                      and all(fixed.sentence_accuracy[m] == 0 for m in filled if m >= k)), None)
    return {
        "held_out_pairs": f"{int(att.count.sum()):,}",
        "shortest_bucket": f"{att.lo[first]}–{att.hi[first]}",
        "longest_bucket": f"{att.lo[last]}–{att.hi[last]}",
        "additive_shortest_bucket": _frac(att.sentence_accuracy[first]),
        "additive_longest_bucket": _frac(att.sentence_accuracy[last]),
        "none_shortest_bucket": _frac(fixed.sentence_accuracy[first]),
        "none_longest_bucket": _frac(fixed.sentence_accuracy[last]),
        "none_token_shortest_bucket": _frac(fixed.token_accuracy[first]),
        "none_token_longest_bucket": _frac(fixed.token_accuracy[last]),
        "none_zero_from_words": zero_from if zero_from is not None else "never",
    }


def _agreement_facts(model: seq2seq.Trained) -> dict:
    facts = {}
    for name, words in EXAMPLES.items():
        tr = seq2seq.align(model, words)
        facts[f"{name}_words"] = len(words)
        facts[f"{name}_agreement"] = f"{seq2seq.alignment_agreement(tr):.0%}"
        facts[f"{name}_agreement_content"] = f"{seq2seq.alignment_agreement(tr, content_only=True):.0%}"
    return facts


def trace() -> dict:
    models = {kind: seq2seq.trained(kind) for kind in seq2seq.KINDS}
    curves = {kind: seq2seq.by_length(model) for kind, model in models.items()}
    config = models["additive"].config
    facts = {
        "hidden": config.n, "annotation_width": 2 * config.n, "embedding": config.d_emb,
        "d_att": config.d_att, "train_pairs": f"{config.n_train:,}", "train_steps": f"{config.steps:,}",
        "batch": config.batch, "max_len": config.max_len,
        **_curve_facts(curves), **_agreement_facts(models["additive"]),
    }
    for kind in seq2seq.KINDS:
        facts.update(_kind_facts(kind, models[kind], curves[kind]))
    return {"facts": facts, "tables": {"by_length": length_table(curves)}}
