"""The attention-scoring-functions widget holds, at every d_k stop, what the sampled
vectors gave, and it tells the footnote-4 story (arXiv:1706.03762, §3.2.1)."""

import math

import numpy as np
import pytest

from kernels import scoring
from vizgen import tracejson
from vizgen.widgets import attention_scoring_functions as widget


@pytest.fixture(scope="module")
def trace():
    return tracejson.to_jsonable(widget.trace())


def panel(stop, key):
    keys = [f["key"] for f in widget.FUNCTIONS]
    return stop["panels"][keys.index(key)]


def test_trace_is_deterministic(monkeypatch):
    monkeypatch.setattr(widget, "D_KS", (4, 64))
    monkeypatch.setattr(widget, "FACT_D_KS", (64,))
    monkeypatch.setattr(widget, "START_D_K", 64)
    assert tracejson.dumps(widget.trace()) == tracejson.dumps(widget.trace())


def test_a_stop_for_every_slider_position_from_4_to_512(trace):
    d_ks = [stop["d_k"] for stop in trace["data"]["stops"]]
    assert d_ks == sorted(d_ks) and d_ks[0] == 4 and d_ks[-1] == 512
    assert {4, 8, 16, 32, 64, 128, 256, 512} <= set(d_ks)
    assert d_ks[trace["data"]["setting"]["start"]] == 64


def test_panels_hold_what_the_kernel_measured(trace):
    stop = trace["data"]["stops"][3]
    stats = scoring.score_statistics(stop["d_k"], widget.N_ROWS, widget.M_KEYS, widget.SEED)
    for f in widget.FUNCTIONS:
        shown, measured = panel(stop, f["key"]), stats[f["key"]]
        assert shown["variance"] == pytest.approx(measured.variance, rel=1e-6)
        assert shown["entropy"] == pytest.approx(measured.entropy, rel=1e-6)
        np.testing.assert_allclose(shown["row_weights"], measured.weights[widget.EXAMPLE_ROW], rtol=1e-6)


def test_histograms_count_every_score_on_an_axis_that_grows_with_the_dot_spread(trace):
    his = []
    for stop in trace["data"]["stops"]:
        for p in stop["panels"]:
            assert sum(p["hist"]) == widget.N_ROWS * widget.M_KEYS and len(p["hist"]) == widget.HIST_BINS
            assert math.isclose(sum(p["row_weights"]), 1, rel_tol=1e-5)
        axis = stop["axis"]
        assert axis["lo"] == -axis["hi"] and axis["ticks"][0] == axis["lo"] and axis["ticks"][-1] == axis["hi"]
        assert axis["hi"] >= widget.AXIS_SIGMAS * math.sqrt(panel(stop, "dot")["variance"])
        his.append(axis["hi"])
    assert his == sorted(his)


def test_dot_saturates_and_scaled_does_not(trace):
    first, last = trace["data"]["stops"][0], trace["data"]["stops"][-1]
    log_m = math.log(widget.M_KEYS)
    assert panel(last, "dot")["entropy"] < 0.1 * log_m < 0.8 * log_m < panel(last, "scaled_dot")["entropy"]
    assert panel(last, "dot")["max_weight"] > 0.9
    assert panel(last, "dot")["gradient_norm"] < 0.5 * panel(first, "dot")["gradient_norm"]
    for key in ("scaled_dot", "additive"):
        assert abs(panel(last, key)["entropy"] - panel(first, key)["entropy"]) < 0.1 * log_m


def test_facts_quote_the_trace(trace):
    facts = trace["facts"]
    stop64 = next(s for s in trace["data"]["stops"] if s["d_k"] == 64)
    assert facts["dot_variance_64"] == f"{panel(stop64, 'dot')['variance']:.1f}"
    assert facts["scaled_dot_entropy_64"] == f"{panel(stop64, 'scaled_dot')['entropy']:.2f}"
    assert facts["log_m"] == "2.77" and facts["samples"] == "8,192"
    assert "d_k = 64" in stop64["caption"] and facts["dot_entropy_64"] in stop64["caption"]
