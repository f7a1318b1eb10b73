"""The ring-attention-rotation widget replays a real 4-process ring (arXiv:2310.01889)
and pairs it with a GPU cost model whose numbers follow from kernels.ring and gpu_specs."""

import gzip
import json

import pytest

from kernels import gpu_specs, ring
from vizgen import registry, render, tracejson
from vizgen.widgets import ring_attention_rotation as widget

P = widget.WORLD_SIZE


@pytest.fixture(scope="module")
def run():
    return widget.load_run()  # the committed run (scripts/bench_ring.py)


@pytest.fixture(scope="module")
def trace(run):
    return json.loads(tracejson.dumps(widget.trace_from(run)))  # what the page receives


def test_trace_is_deterministic_given_the_run_and_small(run, trace):
    assert tracejson.dumps(widget.trace_from(run)) == tracejson.dumps(widget.trace_from(widget.load_run()))
    html, _ = render.render(registry.get("ring-attention-rotation"), trace)
    assert len(gzip.compress(html.encode())) + len(gzip.compress(json.dumps(trace).encode())) < 100_000
    assert 'class="viz-model-note"' in html and html.count('data-control="preset"') == len(widget.PRESETS)


def test_the_committed_run_is_what_the_code_does(run):
    # The rotation is fixed by the algorithm: a run committed from older code would show here.
    assert [(r.step, r.rank) for r in run.steps] == [(t, r) for t in range(P) for r in range(P)]
    assert all(r.shard == ring.shard_held(r.rank, r.step, P) and r.computed for r in run.steps)
    assert run.shard_bytes == 2 * widget.BATCH * widget.HEADS * widget.SHARD_TOKENS * widget.HEAD_DIM * 8
    assert run.max_error < 1e-12 and len(run.transfer_s) == P
    assert {"cpu", "torch", "date"} <= set(run.machine)


def test_the_page_says_where_the_times_were_measured(run, trace):
    note = trace["data"]["measured"]["note"]
    assert widget.MEASURE_COMMAND in note and run.machine["cpu"] in note and run.machine["date"][:10] in note


@pytest.mark.slow
def test_a_fresh_measurement_round_trips(tmp_path):
    fresh = widget.measure({"cpu": "test", "torch": "x", "date": "2026-01-01"})  # the real 4-process ring
    path = tmp_path / "run.json"
    path.write_text(json.dumps(fresh.to_json()))
    again = widget.load_run(path)
    assert again == fresh and [r.shard for r in again.steps] == [r.shard for r in widget.load_run().steps]


def test_a_missing_or_foreign_run_is_refused_in_one_line(tmp_path, run):
    with pytest.raises(FileNotFoundError, match="missing; measure it with: python scripts/bench_ring.py"):
        widget.load_run(tmp_path / "absent.json")
    foreign = dict(run.to_json(), setting={**widget.setting(), "heads": 8})
    (tmp_path / "foreign.json").write_text(json.dumps(foreign))
    with pytest.raises(ValueError, match="measured with .*'heads': 8.*re-measure with") as info:
        widget.load_run(tmp_path / "foreign.json")
    assert "\n" not in str(info.value)


def test_each_step_holds_the_rotated_shards(trace):
    steps = trace["data"]["steps"]
    assert len(steps) == P + 1 and steps[-1]["devices"] is None  # P rotation steps, then "done"
    for t, step in enumerate(steps[:P]):
        assert [d["shard"] for d in step["devices"]] == [(r - t) % P for r in range(P)]
        assert step["sends"] == (t < P - 1)  # the last shard is not passed on
        assert all(d["compute_ms"] >= 0 and d["wait_ms"] >= 0 for d in step["devices"])
    for r in range(P):
        assert sorted(step["devices"][r]["shard"] for step in steps[:P]) == list(range(P))


def test_the_measured_run_is_exact_attention(trace):
    measured = trace["data"]["measured"]
    assert float(measured["max_error"]) < 1e-12
    assert measured["n_ctx"] == P * widget.SHARD_TOKENS
    assert measured["shard_bytes"] == widget.binary_bytes(2 * widget.BATCH * widget.HEADS * widget.SHARD_TOKENS * widget.HEAD_DIM * 8)
    assert all(t > 0 for t in measured["transfer_ms"]) and all(t > 0 for t in measured["compute_ms"])


@pytest.mark.parametrize("index", range(len(widget.PRESETS)))
def test_comm_hides_exactly_from_the_crossover_on(trace, index):
    name, gpu, link = widget.PRESETS[index]
    preset = trace["data"]["model"]["presets"][index]
    crossover = gpu.tensor_flops[widget.LAYER.dtype] / link.bandwidth  # MHA in 16 bits: c* = F / W
    assert preset["name"] == name and preset["crossover"] == round(crossover)
    for tokens, stop in zip(widget.TOKENS, preset["stops"]):
        assert stop["hidden"] == (tokens >= crossover)
        cost = ring.step_cost(tokens, widget.LAYER, gpu, link)
        gather = ring.allgather_time(cost, P)["total_s"]
        ring_total = (P - 1) * max(cost.compute_s, cost.comm_s) + cost.compute_s
        assert stop["ring_total"] == widget.duration(ring_total)
        assert stop["allgather_total"] == widget.duration(gather)
        assert stop["speedup"] == f"{gather / ring_total:.2f}×" and gather > ring_total
        ends = stop["ring_ends"]
        assert ends == sorted(ends) and ends[-1] == pytest.approx(ring_total / gather, abs=1e-5)


def test_the_default_stop_shows_hiding_and_a_neighbour_does_not(trace):
    model = trace["data"]["model"]
    stops = model["presets"][model["default_preset"]]["stops"]
    assert stops[model["default_tokens"]]["hidden"] and not stops[model["default_tokens"] - 1]["hidden"]


def test_facts_name_the_crossovers(trace):
    facts = trace["facts"]
    assert facts["crossover_h100_nvlink"] == f"{989.4e12 / 450e9:,.0f}" == "2,199"
    assert facts["crossover_a100_nvlink"] == "1,040"  # 312 TFLOP/s over 300 GB/s
    assert facts["link_ndr_infiniband_gbs"] == f"{gpu_specs.NDR_INFINIBAND.bandwidth / 1e9:g}" == "50"
    assert facts["causal_work_last_over_first"] == f"{P}×"


@pytest.mark.parametrize("seconds, text", [(4.34e-6, "4.34 µs"), (0.0125, "12.5 ms"), (2.0, "2 s"), (5e-10, "0.5 ns")])
def test_durations_read_naturally(seconds, text):
    assert widget.duration(seconds) == text
