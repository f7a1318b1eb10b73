"""The fp8-incoherent-processing widget shows what the formats hold and what the
emulated FP8 attention measured, and its facts agree with both."""

import math

import numpy as np
import pytest

from kernels import lowp
from vizgen import tracejson
from vizgen.widgets import fp8_incoherent_processing as widget


@pytest.fixture(scope="module")
def trace():
    return tracejson.to_jsonable(widget.trace())


def by_name(trace, name):
    return next(f for f in trace["data"]["formats"] if f["name"] == name)


def paper_stop(trace):
    return next(s for s in trace["data"]["stops"] if s["sigma"] == widget.SIGMA)


def test_trace_is_deterministic(monkeypatch):
    # The same code path as the full trace, at a size that runs twice quickly.
    monkeypatch.setattr(widget, "N_CTX", 256)
    monkeypatch.setattr(widget, "SIGMAS", (widget.SIGMA,))
    monkeypatch.setattr(widget, "SEEDS", 2)
    assert tracejson.dumps(widget.trace()) == tracejson.dumps(widget.trace())


def test_formats_are_described_by_their_decoded_bits(trace):
    e4m3 = by_name(trace, "E4M3")
    assert e4m3["example"]["bits"] == "0 1111 110"
    assert e4m3["example"]["formula"] == "(1 + 6/8) × 2^(15 − 7) = 448"
    assert e4m3["stats"]["max"] == 448 and e4m3["stats"]["finite"] == 254
    assert "240" in e4m3["note"] and "448" in e4m3["note"]
    for fmt, name, _ in widget.FORMATS:
        entry = by_name(trace, name)
        assert entry["stats"] == tracejson.to_jsonable(lowp.summary(fmt))
        assert len(entry["example"]["bits"].replace(" ", "")) == fmt.bits


def test_every_positive_value_is_counted_once(trace):
    for fmt, name, _ in widget.FORMATS:
        entry = by_name(trace, name)
        positive = (entry["stats"]["finite"] - 2) // 2  # without ±0
        assert sum(entry["binades"]["counts"]) == positive
        if fmt.bits <= widget.LISTED_BITS:
            values = [item["v"] for item in entry["values"]]
            assert len(values) == positive and values == sorted(values)
            assert [item["sub"] for item in entry["values"]] == [v < entry["stats"]["min_normal"] for v in values]
            assert entry["values"][-1]["bits"] == entry["example"]["bits"]
        else:
            assert "values" not in entry  # 16-bit formats send a histogram only
    fp16 = by_name(trace, "FP16")["binades"]
    normal = fp16["counts"][fp16["first_normal"] - fp16["lo"]:]
    assert set(normal) == {1024}  # 2^10 values in every normal binade


def test_bars_hold_the_measurement_and_the_paper_only_where_it_measured(trace):
    schemes = list(lowp.SCHEMES)
    for stop in trace["data"]["stops"]:
        assert [bar["scheme"] for bar in stop["bars"]] == schemes
        for bar in stop["bars"]:
            assert bar["lo"] <= bar["ours"] <= bar["hi"]
            assert ("paper" in bar) == (stop["sigma"] == widget.SIGMA)
        assert stop["bars"][0]["relative"] == 1.0
        assert stop["gain"] == pytest.approx(stop["bars"][0]["ours"] / stop["bars"][-1]["ours"])
    paper = {bar["scheme"]: bar["paper"] for bar in paper_stop(trace)["bars"]}
    assert paper == {s: v for s, (_, v) in widget.PAPER_TABLE3.items()}


def test_error_falls_per_tensor_to_per_block_to_hadamard_at_fa3s_setting(trace):
    ours = {bar["scheme"]: bar["ours"] for bar in paper_stop(trace)["bars"]}
    assert ours["per-tensor"] > ours["per-block"] > ours["per-block + Hadamard"]
    assert ours["per-tensor"] > ours["per-tensor + Hadamard"]


def test_without_outliers_the_scheme_does_not_matter(trace):
    quiet = trace["data"]["stops"][0]
    assert quiet["sigma"] == 1.0
    errors = [bar["ours"] for bar in quiet["bars"]]
    assert max(errors) / min(errors) < 1.05
    assert paper_stop(trace)["gain"] > 1.3  # while outliers make the rotation count


def test_facts_agree_with_the_data(trace):
    facts, stop = trace["facts"], paper_stop(trace)
    bars = {bar["scheme"]: bar for bar in stop["bars"]}
    assert facts["e4m3_max"] == "448" and facts["e5m2_max"] == "57,344" and facts["fp16_max"] == "65,504"
    assert facts["e4m3_max_if_ieee"] == "240"
    assert facts["e4m3_next_after_one"] == "1.125" and facts["fp16_next_after_one"] == "1.0009765625"
    assert facts["e4m3_min_subnormal"].startswith("2⁻⁹")
    assert facts["e2m1_finite_patterns"] == 16
    assert facts["rmse_per_block_hadamard"] == bars["per-block + Hadamard"]["ours_text"]
    assert float(facts["rmse_per_tensor"]) == pytest.approx(bars["per-tensor"]["ours"], rel=0.05)
    assert facts["paper_rmse_per_tensor"] == "0.024" and facts["paper_rmse_per_block_hadamard"] == "0.0091"
    assert facts["paper_ratio"] == "2.6×"
    assert facts["ratio"] == f"{stop['gain']:.1f}×"
    assert facts["n_ctx"] == widget.N_CTX and facts["outlier_fraction"] == "0.1%"
    for s in trace["data"]["stops"]:
        assert f"{s['gain']:.2f}" in s["caption"]


def test_readable_numbers():
    assert widget._readable(65504.0) == "65,504"
    assert widget._readable(3.3895313892515355e38) == "3.39 × 10³⁸"
    assert widget._power(2.0**-9) == "2⁻⁹ = 0.001953125"
    assert widget._power(2.0**-24) == "2⁻²⁴ ≈ 5.96 × 10⁻⁸"
    assert widget._decimal(0.0091) == "0.0091"
    assert math.isclose(float(widget._decimal(0.0152)), 0.015)
    assert np.isclose(widget._round(0.0123456), 0.01235)
