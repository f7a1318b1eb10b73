"""The fa1-vs-fa2-parallelism widget: what it draws is the dispatch model's schedule."""

import gzip
import itertools
import json
import math

import pytest

from vizgen import tracejson
from vizgen.widgets import fa1_vs_fa2_parallelism as widget


@pytest.fixture(scope="module")
def trace():
    return json.loads(tracejson.dumps(widget.trace()))  # what the page receives


def test_trace_is_deterministic_and_within_the_size_budget():
    encoded = tracejson.dumps(widget.trace())
    assert encoded == tracejson.dumps(widget.trace())
    assert len(gzip.compress(encoded)) < 100_000  # DESIGN.md: a widget's own data <= 100 KB gzip


def cases(trace):
    for mask in ("full", "causal"):
        yield from ((mask, case) for case in trace["data"]["cases"][mask])


def test_every_slider_stop_is_precomputed_for_both_masks(trace):
    data = trace["data"]
    for mask in ("full", "causal"):
        assert [case["batch"] for case in data["cases"][mask]] == data["batches"] == [1, 2, 4, 8, 16, 32, 64]


def test_programs_are_the_two_grids(trace):
    q_blocks = math.ceil(widget.N_CTX / widget.BLOCK_M)
    for _, case in cases(trace):
        assert case["fa1"]["programs"] == case["batch"] * widget.HEADS
        assert case["fa2"]["programs"] == q_blocks * case["batch"] * widget.HEADS


def test_drawn_timelines_account_for_every_tile(trace):
    """Each SM is busy from 0 to its end: the ends add up to the work, and the latest is the makespan."""
    for _, case in cases(trace):
        for tl in (case["fa1"], case["fa2"]):
            assert sum(tl["sm_end"]) == case["tiles"]
            assert max(tl["sm_end"]) == tl["makespan"]
            assert tl["utilisation"] == pytest.approx(case["tiles"] / (len(tl["sm_end"]) * tl["makespan"]))
            if tl["program_ends"] is not None:
                assert [ends[-1] if ends else 0 for ends in tl["program_ends"]] == tl["sm_end"]
                assert sum(map(len, tl["program_ends"])) == tl["programs"]


def test_fa1_utilisation_is_its_wave_count(trace):
    """Equal FA1 programs: busy share = P / (SMs x waves), with or without the causal mask."""
    sms = trace["data"]["n_sms"]
    for _, case in cases(trace):
        programs = case["fa1"]["programs"]
        assert case["fa1"]["utilisation"] == pytest.approx(programs / (sms * math.ceil(programs / sms)))


def test_fa2_wins_most_at_batch_one_and_the_gap_closes_with_batch(trace):
    for _, case in cases(trace):
        assert case["fa2"]["utilisation"] >= case["fa1"]["utilisation"]
        assert case["speedup"] == pytest.approx(case["fa1"]["makespan"] / case["fa2"]["makespan"])
    speedups = [case["speedup"] for case in trace["data"]["cases"]["full"]]
    # Wave tails wiggle the ratio by a fraction of a percent once both launches are large.
    assert all(later <= earlier + 0.01 for earlier, later in itertools.pairwise(speedups))
    assert speedups[0] > 5 and speedups[-1] < 1.1


def test_facts_agree_with_the_data(trace):
    facts, full = trace["facts"], trace["data"]["cases"]["full"]
    assert facts["fa1_programs_b1"] == 16 and facts["fa2_programs_b1"] == 1024
    assert facts["fa1_util_b1"] == f"{100 * full[0]['fa1']['utilisation']:.1f} %"
    assert facts["speedup_b1"] == f"{full[0]['speedup']:.1f}×"
    alike = next(c for c in full if c["batch"] == facts["alike_from_batch"])
    assert alike["fa1"]["utilisation"] >= 0.9
    assert all(c["fa1"]["utilisation"] < 0.9 for c in full if c["batch"] < facts["alike_from_batch"])
