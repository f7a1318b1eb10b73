"""The attention-complexity-scaling widget draws the kernels' closed forms at model scale,
its dots sit on its curves, its axes hold everything they draw, and the measured CPU
times come from the committed benchmark (or say "not run" without it)."""

import gzip
import json
import math
from itertools import pairwise

import numpy as np
import pytest

from kernels.approx import measure
from vizgen import registry, render, tracejson
from vizgen.fmt import binary_bytes, flops, seconds, significant
from vizgen.widgets import attention_complexity_scaling as widget

SCALE = widget.HEADS * widget.LAYERS  # 384 heads in a BERT-large-shaped forward pass


@pytest.fixture(scope="module")
def trace():
    return tracejson.to_jsonable(widget.trace())


def at(trace, n):
    return next(s for s in trace["data"]["stops"] if s["n"] == n)


def test_trace_is_deterministic(trace):
    assert tracejson.dumps(widget.trace()) == tracejson.dumps(trace)


def test_curves_are_the_kernels_closed_forms_at_model_scale(trace):
    data = trace["data"]
    ns = np.array(data["ns"], dtype=np.float64)
    d, m = widget.HEAD_DIM, widget.FEATURES
    np.testing.assert_allclose(data["curves"]["memory"]["dense"], ns**2 * 2 * SCALE, rtol=1e-3)
    np.testing.assert_allclose(data["curves"]["flops"]["dense"], 4 * ns**2 * d * SCALE, rtol=1e-3)
    np.testing.assert_allclose(data["curves"]["flops"]["performer"], (8 * ns * m * d + 4 * ns * m) * SCALE, rtol=1e-3)
    curves = measure.scaling_curves([8192], d)
    assert at(trace, 8192)["flops"]["strided"]["v"] == pytest.approx(curves.strided[0] * SCALE, rel=1e-3)
    assert at(trace, 8192)["flops"]["reformer"]["v"] == pytest.approx(curves.reformer[0] * SCALE, rel=1e-3)


def test_slopes_on_log_log_axes(trace):
    """Between 10^5 and 10^6: 2 for dense, 1.5 for strided, 1 for Performer; Reformer's
    hashing (b = N/64 buckets) bends its FLOPs towards 2 while its memory stays at 1."""
    data = trace["data"]
    ns = data["ns"]
    i, j = int(np.searchsorted(ns, 10**5)), len(ns) - 1

    def slope(curve):
        return math.log(curve[j] / curve[i]) / math.log(ns[j] / ns[i])

    assert slope(data["curves"]["flops"]["dense"]) == pytest.approx(2, abs=1e-3)
    assert slope(data["curves"]["flops"]["strided"]) == pytest.approx(1.5, abs=0.02)
    assert slope(data["curves"]["flops"]["performer"]) == pytest.approx(1, abs=1e-3)
    assert slope(data["curves"]["memory"]["reformer"]) == pytest.approx(1, abs=1e-3)
    assert 1.7 < slope(data["curves"]["flops"]["reformer"]) < 2


def test_every_dot_sits_on_its_curve(trace):
    data = trace["data"]
    for stop in data["stops"]:
        i = data["ns"].index(stop["n"])
        for metric in ("memory", "flops"):
            for key in widget.METHODS:
                assert stop[metric][key]["v"] == data["curves"][metric][key][i]


def test_stops_are_log_spaced_and_reach_a_million(trace):
    ns = [s["n"] for s in trace["data"]["stops"]]
    assert ns[0] == 256 and ns[-1] == 10**6
    ratios = [b / a for a, b in pairwise(ns)]
    assert all(1.9 <= r <= 2 for r in ratios)


def test_axes_hold_every_value_they_draw(trace):
    data = trace["data"]
    for metric in ("memory", "flops"):
        axis = data["axes"][metric]
        values = [v for curve in data["curves"][metric].values() for v in curve]
        assert axis["lo"] <= min(values) and max(values) <= axis["hi"]
        assert all(axis["lo"] <= t["value"] <= axis["hi"] for t in axis["ticks"])
        assert axis["lo"] <= axis["line"]["value"] <= axis["hi"]
    times = [t for p in data["cpu"]["points"] for t in p["s"].values()]
    assert data["axes"]["time"]["lo"] <= min(times) and max(times) <= data["axes"]["time"]["hi"]


def test_axis_labels_are_concrete_binary_sizes(trace):
    axes = trace["data"]["axes"]
    assert [t["text"] for t in axes["memory"]["ticks"]] == ["1 MiB", "32 MiB", "1 GiB", "32 GiB", "1 TiB", "32 TiB", "1 PiB"]
    assert axes["memory"]["line"]["value"] == 80e9 and "74.5 GiB" in axes["memory"]["line"]["text"]
    assert "989" in axes["flops"]["line"]["text"]


def test_gpu_crossings_are_where_memory_passes_80_gb(trace):
    crossing = trace["data"]["crossing"]
    # dense: 384 heads x N^2 x 2 bytes > 80e9  <=>  N > sqrt(80e9 / 768) = 10,206.2
    assert crossing["dense"] == math.isqrt(80 * 10**9 // (2 * SCALE)) + 1 == 10207
    for key, n in crossing.items():
        below, above = widget.model_memory([n - 1, n])[key]
        assert below <= 80e9 < above, key
    assert trace["facts"]["dense_gpu_limit_n"] == "10,207"
    # the linear methods hit the same wall, about 200,000 tokens later
    assert 15 * crossing["dense"] < crossing["performer"] < 25 * crossing["dense"]


def test_markers_are_the_verified_context_lengths(trace):
    markers = {m["key"]: m for m in trace["data"]["markers"]}
    assert (markers["gpt2"]["year"], markers["gpt2"]["n"]) == (2019, 1024)
    assert (markers["longformer"]["year"], markers["longformer"]["n"]) == (2020, 4096)
    assert (markers["gemini"]["year"], markers["gemini"]["n"]) == (2024, 10**6)
    stops = {s["n"] for s in trace["data"]["stops"]}
    assert all(m["n"] in stops for m in markers.values())  # the slider lands on each
    assert trace["facts"]["gpt2_dense_memory"] == "768 MiB"  # 384 x 1024^2 x 2 bytes
    assert trace["facts"]["longformer_dense_memory"] == "12 GiB"


def test_captions_compare_with_dense_both_ways(trace):
    small, large = at(trace, 256), at(trace, 8192)
    # At N = 256 Performer's 2 N m features outweigh dense's N^2 probabilities.
    assert small["memory"]["performer"]["v"] > small["memory"]["dense"]["v"]
    assert "more." in small["caption"]["memory"]
    assert "16× less" in large["caption"]["memory"] and "48 GiB" in large["caption"]["memory"]
    assert "GPUs' worth" in at(trace, 10**6)["caption"]["memory"]


def test_cpu_times_come_from_the_committed_benchmark(trace):
    run = widget.load_cpu_times()
    assert run is not None, "docs/data/approx_cpu_times.json is committed"
    measured = {p["n"]: p["methods"] for p in run["points"]}
    for stop in trace["data"]["stops"]:
        for key in widget.METHODS:
            time = stop["time"][key]
            if stop["n"] in measured:
                assert time["v"] == pytest.approx(measured[stop["n"]][key]["best_s"], rel=1e-3)
            else:
                assert time is None
    assert "not run" in at(trace, 10**6)["caption"]["time"]


def test_without_the_benchmark_the_time_view_says_not_run(monkeypatch, tmp_path):
    monkeypatch.setattr(widget, "CPU_TIMES", tmp_path / "missing.json")
    monkeypatch.setattr(widget, "STOPS", (256, 512))
    monkeypatch.setattr(widget, "CURVE_POINTS", 3)
    result = widget.trace()
    assert result["data"]["cpu"] is None and result["facts"]["cpu_machine"] == "not measured"
    assert all(value is None for stop in result["data"]["stops"] for value in stop["time"].values())
    assert "not run" in result["data"]["stops"][0]["caption"]["time"]


def test_page_fits_the_budget(trace):
    entry = registry.get("attention-complexity-scaling")
    html, fallback = render.render(entry, trace)
    assert len(gzip.compress(html.encode())) <= 100 * 1024
    assert "10,207" in fallback and "768 MiB" in fallback
    assert len(json.dumps(trace["data"])) < 60_000


def test_readable_units():
    assert binary_bytes(3 * 2**30) == "3 GiB" and binary_bytes(7.68e14) == "698 TiB"
    assert binary_bytes(500) == "500 bytes"
    assert flops(6.6e12) == "6.6 TFLOP" and flops(1e9) == "1 GFLOP"
    assert seconds(0.1002) == "100 ms" and seconds(2.07) == "2.1 s"
    assert significant(1234.5, 3) == "1,230"


def test_ratios_to_dense_read_both_ways(trace):
    assert at(trace, 8192)["memory"]["performer"]["vs"] == "1/16"
    assert at(trace, 256)["memory"]["performer"]["vs"].endswith("×")  # more than dense at small N
    assert all(stop[metric]["dense"]["vs"] == "1" for stop in trace["data"]["stops"] for metric in ("memory", "flops"))
    assert widget._of_dense(0.51, 0.53) == "≈ 1"
