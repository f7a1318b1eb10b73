"""The attention-multihead-self widget shows the model's own heads, chosen by score, honestly."""

import numpy as np
import pytest

from kernels import pretrained_heads as ph
from vizgen import tracejson
from vizgen.widgets import attention_multihead_self as widget


@pytest.fixture(scope="module")
def trace():
    return widget.trace()


@pytest.fixture(scope="module")
def cache():
    return ph.read_cache()


def test_trace_is_plain_deterministic_data(trace):
    assert tracejson.dumps(trace) == tracejson.dumps(widget.trace())


def test_four_distinct_heads_one_per_pattern_in_the_head_colours(trace):
    heads = trace["data"]["heads"]
    assert [h["pattern"] for h in heads] == list(ph.PATTERNS)
    assert len({(h["layer"], h["head"]) for h in heads}) == 4
    assert [h["color"] for h in heads] == [f"head-{i}" for i in range(4)]


def test_each_head_is_the_best_of_all_72_for_its_pattern(trace, cache):
    main = cache["sentences"][ph.MAIN]
    scores = ph.head_scores(main["attention"], main["tokens"])
    for h in trace["data"]["heads"]:
        grid = scores[h["pattern"]]
        assert grid[h["layer"], h["head"]] == grid.max(), h["label"]
        assert h["score"][ph.MAIN] == f"{grid.max():.2f}"


def test_the_heads_show_their_patterns(trace):
    by = {h["pattern"]: np.asarray(h["attention"][ph.MAIN]) for h in trace["data"]["heads"]}
    n = by["previous"].shape[0]
    rows = np.arange(1, n)
    assert by["previous"][rows, rows - 1].mean() > 0.9  # a near-perfect previous-token head
    assert by["next"][rows - 1, rows].mean() > 0.5
    assert (by["sink"][:, 0] + by["sink"][:, -1]).mean() > 0.8
    it = trace["data"]["pronoun"]
    tokens = trace["data"]["sentences"][ph.MAIN]["tokens"]
    assert tokens[int(np.argmax(by["coreference"][it]))] == "animal"


def test_drawn_matrices_are_the_cached_attention_and_rows_sum_to_one(trace, cache):
    for h in trace["data"]["heads"]:
        for key, a in h["attention"].items():
            a = np.asarray(a)
            np.testing.assert_allclose(a, cache["sentences"][key]["attention"][h["layer"], h["head"]], atol=1e-12)
            np.testing.assert_allclose(a.sum(-1), 1.0, atol=a.shape[-1] / 2000)


def test_top_targets_are_sorted_and_above_the_drawing_threshold(trace):
    for h in trace["data"]["heads"]:
        for key, top in h["top"].items():
            a = np.asarray(h["attention"][key])
            for i, keys in enumerate(top):
                weights = a[i, keys]
                assert (np.diff(weights) <= 0).all() and (weights >= widget.MIN_WEIGHT).all()
                assert a[i].max() in weights or a[i].max() < widget.MIN_WEIGHT


def test_control_sentence_verdict_matches_the_weights(trace):
    control = trace["data"]["control"]
    w = control["weights"]
    flips = w["tired"]["animal"] > w["tired"]["street"] and w["wide"]["street"] > w["wide"]["animal"]
    assert control["resolves"] == flips
    assert ("follows the subject" in control["verdict"]) == (not flips)
    facts = trace["facts"]
    assert facts["coref_wide_animal"] == f"{w['wide']['animal']:.2f}"
    assert facts["coref_verdict"] == ("resolves" if flips else "follows the subject")


def test_flip_count_is_recounted_from_every_head(trace, cache):
    s = {k: ph.head_scores(e["attention"], e["tokens"]) for k, e in cache["sentences"].items()}
    count = int(((s["tired"]["it_animal"] > s["tired"]["it_street"])
                 & (s["wide"]["it_street"] > s["wide"]["it_animal"])).sum())
    assert trace["data"]["control"]["flips"] == count == trace["facts"]["flip_count"]


def test_sentences_differ_only_in_the_adjective(trace):
    tired, wide = (trace["data"]["sentences"][k]["tokens"] for k in ("tired", "wide"))
    assert len(tired) == len(wide)
    assert [i for i, (a, b) in enumerate(zip(tired, wide)) if a != b] == [len(tired) - 2]


def test_facts_agree_with_the_data(trace):
    facts, heads = trace["facts"], trace["data"]["heads"]
    for h in heads:
        assert facts[f"{h['pattern']}_head"] == h["label"]
    assert facts["total_heads"] == 72
    assert facts["reference_max_abs_diff"].endswith(("10⁻⁷", "10⁻⁸", "10⁻⁹", "10⁻¹⁰"))  # below 1e-6
