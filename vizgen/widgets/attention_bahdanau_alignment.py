"""attention-bahdanau-alignment: the trained additive-attention model, one decoder step per click.

Bahdanau, Cho & Bengio 2014 (arXiv:1409.0473), Section 3.1 and Appendix A: at step i
the previous decoder state s_{i-1} scores every annotation h_j,
``e_ij = v_a^T tanh(W_a s_{i-1} + U_a h_j)``, the scores are normalised,
``alpha_ij = softmax_j(e_ij)``, and the context is ``c_i = sum_j alpha_ij h_j``. Every
number comes from `kernels.seq2seq.align` on the model `seq2seq.trained("additive")`
(trained on the toy English -> French-like grammar of `kernels.toy_translation`); this
module only shapes it for display: the heatmap is ``align``'s alpha, each step's vector
strips are its s_{i-1}, h_j and c_i, rounded for the page.
"""

from __future__ import annotations

import numpy as np

from kernels import seq2seq
from kernels import toy_translation as toy

KIND = "additive"  # Bahdanau's score
SENTENCES = {"short": toy.SHORT_EXAMPLE, "long": toy.LONG_EXAMPLE}
TERMS = 2  # largest alpha_ij terms written out in c_i = sum_j alpha_ij h_j
MOSTLY = 0.5  # a weight above this makes c_i mostly one annotation
STRIP_DECIMALS = 3  # vector strips are colour, not text: 3 decimals is plenty and keeps the page small


SUBSCRIPT = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def _sub(name: str, i: int) -> str:
    """s_6 as s₆: captions are plain text."""
    return name + str(i).translate(SUBSCRIPT)


def _strip(x: np.ndarray) -> np.ndarray:
    return np.round(x, STRIP_DECIMALS)


def _inverted_rows(tr: seq2seq.AlignmentTrace) -> list[bool]:
    """Reference rows whose source word is not the one at the same position (the inversions)."""
    return [j != i for i, j in enumerate(tr.reference_alignment)]


def _terms(tr: seq2seq.AlignmentTrace, i: int) -> list[dict]:
    order = np.argsort(-tr.alpha[i], kind="stable")[:TERMS]
    return [{"j": int(j), "word": tr.source[j], "alpha": tr.alpha[i, j], "e": tr.e[i, j],
             "h": _strip(tr.h[j])} for j in order]


def _reorder_note(tr: seq2seq.AlignmentTrace, i: int, ref_j: int) -> str:
    word, src = tr.output[i], tr.source[ref_j]
    rule = ("the noun moves before its adjectives" if src in toy.NOUNS
            else "adjectives follow the noun, in mirror order")
    return f" Reordered: “{word}” translates “{src}” (source word {ref_j + 1}), not word {i + 1}: {rule}."


def _article_note(tr: seq2seq.AlignmentTrace, i: int, ref_j: int) -> str:
    noun, det = next(w for w in tr.source[ref_j:] if w in toy.NOUNS), tr.source[ref_j]
    return (f" “{tr.output[i]}” is an article whose gender comes from “{noun}”; the bidirectional "
            f"annotations near “{det}” carry it too, so the weight need not sit on “{det}”.")


def _caption(tr: seq2seq.AlignmentTrace, i: int) -> str:
    word, j = tr.output[i], int(tr.alpha[i].argmax())
    c_i = _sub("c", i + 1)
    reading = (f"so {c_i} ≈ h of that word" if tr.alpha[i, j] >= MOSTLY
               else f"so {c_i} mixes several annotations")
    looked = f"It looks hardest at “{tr.source[j]}” (α = {tr.alpha[i, j]:.3f}), {reading}."
    emitted = f"It emits “{word}” with p = {tr.p_output[i]:.3f}."
    if i >= len(tr.reference):
        return f"Step {i + 1}: {looked} {emitted} End of sentence."
    ref_j = tr.reference_alignment[i]
    note = ""
    if tr.source[ref_j] in toy.DETERMINERS and j != ref_j:
        note = _article_note(tr, i, ref_j)
    elif j != ref_j:
        note = (f" The grammar says it translates “{tr.source[ref_j]}” (α = {tr.alpha[i, ref_j]:.3f} there): "
                f"the right word, with the weight elsewhere.")
    elif ref_j != i:
        note = _reorder_note(tr, i, ref_j)
    return f"Step {i + 1}: {_sub('s', i)} scores all {len(tr.source)} source words. {looked} {emitted}{note}"


def _step(tr: seq2seq.AlignmentTrace, i: int) -> dict:
    terms = _terms(tr, i)
    return {
        "i": i, "word": tr.output[i], "p": tr.p_output[i], "argmax": int(tr.alpha[i].argmax()),
        # Bars are |e_ij| / e_scale per step: softmax ignores a shift, so only the row's spread matters.
        "e_scale": float(np.abs(tr.e[i]).max()),
        "s_prev": _strip(tr.s_prev[i]), "s_norm": float(np.linalg.norm(tr.s_prev[i])),
        "c": _strip(tr.c[i]), "c_norm": float(np.linalg.norm(tr.c[i])),
        "terms": terms, "rest_alpha": float(1.0 - sum(t["alpha"] for t in terms)),
        "rest_count": len(tr.source) - len(terms), "caption": _caption(tr, i),
    }


def sentence(tr: seq2seq.AlignmentTrace) -> dict:
    """One sentence's alignment and its step list, as plain data."""
    inverted = _inverted_rows(tr)
    return {
        "source": list(tr.source), "output": list(tr.output), "reference": list(tr.reference),
        "reference_alignment": list(tr.reference_alignment), "inverted": inverted,
        "alpha": tr.alpha, "e": tr.e,  # (T_y, T_x), T_y counts the EOS step
        "correct": tr.output[:len(tr.reference)] == tr.reference,
        "agreement": seq2seq.alignment_agreement(tr),
        "agreement_content": seq2seq.alignment_agreement(tr, content_only=True),
        "steps": [_step(tr, i) for i in range(len(tr.output))],
    }


def _facts(model: seq2seq.Trained, sentences: dict) -> dict:
    facts = {"hidden": model.config.n, "annotation_width": 2 * model.config.n,
             "embedding": model.config.d_emb, "d_att": model.config.d_att,
             "params": f"{model.n_params:,}"}
    for name, s in sentences.items():
        facts[f"{name}_source"] = " ".join(s["source"])
        facts[f"{name}_output"] = " ".join(s["output"][:-1])
        facts[f"{name}_words"] = len(s["source"])
        facts[f"{name}_agreement"] = f"{s['agreement']:.0%}"
        facts[f"{name}_agreement_content"] = f"{s['agreement_content']:.0%}"
        facts[f"{name}_reordered"] = sum(s["inverted"])
        facts[f"{name}_min_p"] = f"{min(st['p'] for st in s['steps']):.3f}"
    return facts


def trace() -> dict:
    model = seq2seq.trained(KIND)
    sentences = {name: sentence(seq2seq.align(model, words)) for name, words in SENTENCES.items()}
    for name, s in sentences.items():
        if not s["correct"]:
            raise RuntimeError(f"the {KIND} model mistranslates the {name} example: rows would not match")
    data = {
        "sentences": sentences, "order": list(SENTENCES),
        "model": {"kind": KIND, "n": model.config.n, "width": 2 * model.config.n,
                  "d_emb": model.config.d_emb, "d_att": model.config.d_att, "params": model.n_params},
    }
    return {"data": data, "facts": _facts(model, sentences)}
