"""The seq2seq sheet: Part 1's measured bottleneck, attention against the fixed vector."""

import numpy as np
import pytest

from kernels import seq2seq
from vizgen.sheets import seq2seq_results as sheet


def _curve(kind, count, sent, tok):
    count = np.array(count)
    return seq2seq.LengthCurve(kind, np.array([3, 7, 11]), np.array([6, 10, 14]), count,
                               np.array(sent), np.array(tok), 0.5, 0.5)


def test_length_table_skips_empty_buckets_and_pairs_the_two_models():
    curves = {"additive": _curve("additive", [10, 0, 5], [1.0, np.nan, 0.8], [1.0, np.nan, 0.9]),
              "none": _curve("none", [10, 0, 5], [0.9, np.nan, 0.0], [0.95, np.nan, 0.4])}
    rows = sheet.length_table(curves).splitlines()[2:]
    assert rows == ["| 3–6 | 10 | 1.000 | 0.900 | 1.000 | 0.950 |",
                    "| 11–14 | 5 | 0.800 | 0.000 | 0.900 | 0.400 |"]


@pytest.fixture(scope="module")
def result():
    return sheet.trace()


@pytest.mark.slow
def test_table_covers_every_held_out_pair(result):
    rows = result["tables"]["by_length"].splitlines()[2:]
    counts = [int(r.split("|")[2].replace(",", "")) for r in rows]
    assert f"{sum(counts):,}" == result["facts"]["held_out_pairs"]
    assert rows[0].split("|")[1].strip() == result["facts"]["shortest_bucket"]
    assert rows[-1].split("|")[1].strip() == result["facts"]["longest_bucket"]


@pytest.mark.slow
def test_the_fixed_vector_degrades_with_length_and_attention_does_not(result):
    rows = [[float(x) for x in r.split("|")[3:7]] for r in result["tables"]["by_length"].splitlines()[2:]]
    att_sent, fixed_sent, att_tok, fixed_tok = np.array(rows).T
    assert np.all(np.diff(fixed_tok) < 0)  # each longer bucket loses words
    assert np.all(att_sent >= fixed_sent) and att_sent.min() > 0.9
    assert np.all(att_tok >= fixed_tok)
    assert fixed_sent[-1] < 0.1 < fixed_sent[0]
    facts = result["facts"]
    assert float(facts["additive_sentence_accuracy"]) > float(facts["none_sentence_accuracy"])


@pytest.mark.slow
def test_every_kind_has_accuracy_size_and_training_time(result):
    facts = result["facts"]
    for kind in seq2seq.KINDS:
        assert 0 <= float(facts[f"{kind}_sentence_accuracy"]) <= float(facts[f"{kind}_token_accuracy"]) <= 1
        assert int(facts[f"{kind}_params"].replace(",", "")) == seq2seq.trained(kind).n_params
        assert float(facts[f"{kind}_train_seconds"]) > 0
    # The dot score has no W_a, U_a, v_a: it is the smallest attention model.
    assert int(facts["dot_params"].replace(",", "")) < int(facts["additive_params"].replace(",", ""))
