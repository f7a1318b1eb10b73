"""The alignment widget shows the trained additive model's own numbers, step by step."""

import numpy as np
import pytest

from kernels import seq2seq
from kernels import toy_translation as toy
from vizgen import tracejson
from vizgen.widgets import attention_bahdanau_alignment as widget

pytestmark = pytest.mark.slow  # needs the trained model (cached after the first training)


@pytest.fixture(scope="module")
def model():
    return seq2seq.trained(widget.KIND)


@pytest.fixture(scope="module")
def trace():
    return widget.trace()


@pytest.fixture(scope="module")
def aligned(model):
    return {name: seq2seq.align(model, words) for name, words in widget.SENTENCES.items()}


def test_trace_is_plain_deterministic_data(trace):
    assert tracejson.dumps(trace) == tracejson.dumps(widget.trace())


def test_one_step_per_emitted_word_ending_in_eos(trace):
    for s in trace["data"]["sentences"].values():
        assert len(s["steps"]) == len(s["output"]) == len(s["source"]) + 1
        assert s["output"][-1] == toy.EOS and s["output"][:-1] == s["reference"]
        assert [st["word"] for st in s["steps"]] == s["output"]


def test_alpha_rows_sum_to_one_and_the_heatmap_is_aligns_alpha(trace, aligned):
    for name, s in trace["data"]["sentences"].items():
        alpha = np.asarray(s["alpha"])  # (T_y, T_x)
        np.testing.assert_allclose(alpha.sum(axis=1), 1.0, atol=1e-6)
        np.testing.assert_array_equal(alpha, aligned[name].alpha)
        np.testing.assert_array_equal(np.asarray(s["e"]), aligned[name].e)
        assert [st["argmax"] for st in s["steps"]] == list(alpha.argmax(axis=1))


def test_context_strip_is_the_alpha_weighted_sum_of_annotations(trace, aligned):
    for name, s in trace["data"]["sentences"].items():
        tr = aligned[name]
        for i, st in enumerate(s["steps"]):
            c = tr.alpha[i] @ tr.h  # (2n,): recomputed here, not read from the trace
            np.testing.assert_allclose(st["c"], c, atol=10 ** -widget.STRIP_DECIMALS / 2 + 1e-6)
            np.testing.assert_allclose(st["s_prev"], tr.s_prev[i], atol=10 ** -widget.STRIP_DECIMALS)


def test_written_out_terms_are_the_largest_weights_and_the_rest_sums_to_one(trace, aligned):
    for name, s in trace["data"]["sentences"].items():
        tr = aligned[name]
        for i, st in enumerate(s["steps"]):
            weights = [t["alpha"] for t in st["terms"]]
            assert weights == sorted(tr.alpha[i], reverse=True)[:widget.TERMS]
            assert sum(weights) + st["rest_alpha"] == pytest.approx(1.0, abs=1e-6)
            for t in st["terms"]:
                np.testing.assert_allclose(t["h"], tr.h[t["j"]], atol=10 ** -widget.STRIP_DECIMALS)


def test_inversions_follow_the_reference_alignment(trace):
    long = trace["data"]["sentences"]["long"]
    rows = [i for i, inv in enumerate(long["inverted"]) if inv]
    # "the long black cat" -> "le chat noir long" (rows 1, 3 swap), "a small bird" -> "un pigeon petit",
    # "the new white door" -> "la porte blanche nouvelle".
    assert rows == [1, 3, 6, 7, 13, 15]
    assert not any(trace["data"]["sentences"]["short"]["inverted"][i] for i in (0, 3, 4))


def test_facts_match_the_kernels_agreement(trace, aligned):
    facts = trace["facts"]
    for name, tr in aligned.items():
        assert facts[f"{name}_agreement"] == f"{seq2seq.alignment_agreement(tr):.0%}"
        assert facts[f"{name}_agreement_content"] == f"{seq2seq.alignment_agreement(tr, content_only=True):.0%}"
    assert facts["annotation_width"] == 2 * facts["hidden"] == len(trace["data"]["sentences"]["short"]["steps"][0]["c"])


def test_captions_own_up_when_the_weight_misses_the_translated_word(trace):
    for s in trace["data"]["sentences"].values():
        for i, st in enumerate(s["steps"][:len(s["reference"])]):
            ref_j = s["reference_alignment"][i]
            missed = st["argmax"] != ref_j and s["source"][ref_j] not in toy.DETERMINERS
            assert ("The grammar says" in st["caption"]) == missed
            assert ("Reordered" in st["caption"]) == (not missed and s["inverted"][i])
