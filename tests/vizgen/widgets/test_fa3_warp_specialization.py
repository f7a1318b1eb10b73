"""The fa3-warp-specialization widget: its bars are the list scheduler's timeline, drawn legibly."""

import gzip
import itertools
import json

import pytest

from vizgen import tracejson
from vizgen.widgets import fa3_warp_specialization as widget


@pytest.fixture(scope="module")
def trace():
    return json.loads(tracejson.dumps(widget.trace()))  # what the page receives


def test_trace_is_deterministic_and_within_the_size_budget():
    encoded = tracejson.dumps(widget.trace())
    assert encoded == tracejson.dumps(widget.trace())
    assert len(gzip.compress(encoded)) < 100_000


def test_no_two_bars_share_a_row_at_the_same_time(trace):
    """Each drawn row (loads, a warpgroup's GEMMs, its exps, the tensor cores) is a sequence."""
    for schedule in trace["data"]["schedules"]:
        rows = {}
        for bar in schedule["bars"]:
            rows.setdefault(bar["lane"], []).append((bar["start"], bar["end"]))
        assert set(rows) == {"load", "wg0-gemm", "wg0-exp", "wg1-gemm", "wg1-exp", "tensor"}
        for lane, spans in rows.items():
            spans.sort()
            assert all(b[0] >= a[1] for a, b in itertools.pairwise(spans)), (schedule["id"], lane)


def test_every_row_does_every_tile(trace):
    n = trace["data"]["n_tiles"]
    for schedule in trace["data"]["schedules"]:
        for wg in ("wg0", "wg1"):
            for kind, sub in (("GEMM0", "gemm"), ("softmax", "exp"), ("GEMM1", "gemm")):
                tiles = sorted(b["tile"] for b in schedule["bars"] if b["lane"] == f"{wg}-{sub}" and b["kind"] == kind)
                assert tiles == list(range(n)), (schedule["id"], wg, kind)


def test_headline_numbers_come_from_the_bars(trace):
    data = trace["data"]
    fa2, fa3 = data["schedules"]
    for s in data["schedules"]:
        assert s["makespan"] == max(bar["end"] for bar in s["bars"])
        tensor = sum(b["end"] - b["start"] for b in s["bars"] if b["lane"] == "tensor")
        assert s["tensor_busy"] == pytest.approx(tensor / s["makespan"])
        assert s["makespan_us"] == pytest.approx(s["makespan"] / (data["clock_ghz"] * 1e3))
    assert fa3["makespan"] < fa2["makespan"] == data["scale"]
    assert fa3["speedup"] == pytest.approx(fa2["makespan"] / fa3["makespan"])


def test_facts_quote_the_papers_h100_arithmetic(trace):
    facts = trace["facts"]
    assert (facts["tensor_tflops"], facts["exp_tflops"]) == ("989", "3.9")
    assert (facts["matmul_to_exp_flops"], facts["exp_throughput_gap"]) == ("512×", "256×")
    assert (facts["exp_share_of_gemms"], facts["exp_share_of_gemms_fp8"]) == ("50 %", "100 %")
    fa2, fa3 = trace["data"]["schedules"]
    assert facts["speedup"] == f"{fa2['makespan'] / fa3['makespan']:.2f}×"
    assert facts["makespan_fa3"] == facts["makespan_pingpong_only"]  # the model's limit, said in the post
