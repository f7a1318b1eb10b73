"""The sliding-window widget shows what the composed masks compute, and agrees with the closed form."""

from itertools import pairwise

import numpy as np
import pytest

from kernels.reference import attention_mask
from vizgen import tracejson
from vizgen.widgets import sliding_window_receptive_field as widget


@pytest.fixture(scope="module")
def trace():
    return widget.trace()


def test_trace_is_plain_deterministic_data(trace):
    assert tracejson.dumps(trace) == tracejson.dumps(widget.trace())


def test_one_stop_per_window_and_one_state_per_layer(trace):
    data = trace["data"]
    assert [s["w"] for s in data["stops"]] == list(widget.WINDOWS)
    assert data["windows"][data["default_window"]] == 4
    for stop in data["stops"]:
        assert [layer["layer"] for layer in stop["layers"]] == list(range(data["n_layers"] + 1))


def test_reach_grows_by_w_minus_1_per_layer_and_matches_the_closed_form(trace):
    for stop in trace["data"]["stops"]:
        w = stop["w"]
        for layer in stop["layers"]:
            reached = np.asarray(layer["reached"])
            L = layer["layer"]
            assert reached.sum() == layer["reach"] == L * (w - 1) + 1
            assert reached[: L * (w - 1) + 1].all() and not reached[L * (w - 1) + 1:].any()  # a contiguous band
            assert layer["effective"] == layer["closed_form"] == L * (w - 1) + 1
            assert layer["frontier"] == L * (w - 1)
            assert layer["mistral_form"] == L * w
        assert stop["layers"][-1]["reach"] < trace["data"]["n"]  # never capped by the sequence end


def test_new_cells_are_exactly_the_band_this_layer_adds(trace):
    for stop in trace["data"]["stops"]:
        layers = stop["layers"]
        for prev, layer in pairwise(layers):
            added = np.asarray(layer["reached"]) & ~np.asarray(prev["reached"])
            assert layer["new"] == list(np.flatnonzero(added))
            assert len(layer["new"]) == stop["w"] - 1


def test_the_frontier_window_is_a_row_of_the_real_mask_and_holds_the_previous_frontier(trace):
    n = trace["data"]["n"]
    for stop in trace["data"]["stops"]:
        w = stop["w"]
        mask = attention_mask(n, n, causal=True, window=w)[0, 0]
        for prev, layer in pairwise(stop["layers"]):
            lo, hi = layer["window"]
            assert hi == layer["frontier"] and hi - lo + 1 == w  # w keys, the query itself included
            assert list(np.flatnonzero(mask[hi])) == list(range(lo, hi + 1))
            assert lo == prev["frontier"]  # exactly one window edge reaches back to what token 0 reached


def test_mistral_spans_under_both_conventions(trace):
    m = trace["data"]["mistral"]
    assert (m["layers"], m["window"]) == (32, 4096)
    assert m["ours"] == 32 * 4095 + 1 == 131_041
    assert m["paper_mask"] == 32 * 4096 + 1 == 131_073
    assert m["paper"] == 131_072  # "approximately 131K tokens"
    facts = trace["facts"]
    assert (facts["mistral_span_ours"], facts["mistral_span_paper_mask"], facts["mistral_span_paper"]) == (
        "131,041", "131,073", "131,072")
    assert (facts["span"], facts["span_mistral_reading"]) == (19, 24)  # L = 6, w = 4


def test_captions_use_the_window_from_the_mask(trace):
    stop = trace["data"]["stops"][trace["data"]["default_window"]]
    assert stop["layers"][0]["caption"].startswith("Layer 0 is the input")
    assert "position 9 attends to positions 6…9 of layer 2" in stop["layers"][3]["caption"]
    assert stop["layers"][-1]["caption"].endswith("= 19.")
