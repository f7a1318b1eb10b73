"""The flash-attention-tiling widget replays what the kernel did, in its order, and is right."""

import gzip
import json

import numpy as np
import pytest

from kernels import triton_runtime
from vizgen import registry, render, tracejson
from vizgen.widgets import flash_attention_tiling as fat

pytestmark = pytest.mark.skipif(not triton_runtime.interpreted(), reason="the IO counter needs the Triton interpreter")

N, BM, BN = fat.N_CTX, fat.BLOCK_M, fat.BLOCK_N


@pytest.fixture(scope="module")
def trace():
    return fat.trace()


@pytest.fixture(scope="module")
def data(trace):
    return json.loads(tracejson.dumps(trace))["data"]  # what the page receives


def scores(data, causal):
    q, k = np.asarray(data["q"]), np.asarray(data["k"])
    s = q @ k.T / np.sqrt(fat.HEAD_DIM)  # (N, N) float64, independent of the widget's float32 copy
    return np.where(np.tril(np.ones((N, N), bool)), s, -np.inf) if causal else s


def tracejson_num(x):
    """A number as the trace carries it: non-finite floats travel as strings."""
    return {"-inf": -np.inf, "inf": np.inf, "nan": np.nan}.get(x, x) if isinstance(x, str) else x


def kv_steps(run):
    return [step for step in run["steps"] if step["phase"] == "kv"]


def test_trace_is_deterministic_and_small(trace):
    first = tracejson.dumps(trace)
    assert first == tracejson.dumps(fat.trace())
    html, _ = render.render(registry.get("flash-attention-tiling"), json.loads(first))
    assert len(gzip.compress(html.encode())) + len(gzip.compress(first)) < 100_000


def test_steps_follow_the_grid_order_and_both_runs_align(data):
    full, causal = data["runs"]["full"], data["runs"]["causal"]
    assert len(full["steps"]) == len(causal["steps"])  # one player drives both
    n_tiles = N // BN
    expected = ["intro"] + (["load_q"] + ["kv"] * n_tiles + ["store"]) * (N // BM) + ["final"]
    assert [s["phase"] for s in full["steps"]] == expected
    order = [(s["q_block"], s["kv_block"]) for s in kv_steps(full)]
    assert order == [(i, j) for i in range(N // BM) for j in range(n_tiles)]  # programs in grid order, K/V inside


@pytest.mark.parametrize("run_name", fat.RUNS)
def test_running_state_matches_an_independent_online_softmax(data, run_name):
    run = data["runs"][run_name]
    s, v = scores(data, run_name == "causal"), np.asarray(data["v"])
    for step in kv_steps(run):
        seen = slice(0, (step["kv_block"] + 1) * BN)  # keys folded in so far
        for row in step["rows"]:
            m = max(s[row["row"], seen])
            w = np.exp(s[row["row"], seen] - m)
            assert row["m"] == pytest.approx(m, abs=1e-5)
            assert row["l"] == pytest.approx(w.sum(), rel=1e-5)
            np.testing.assert_allclose(row["o"], w @ v[seen] / w.sum(), atol=1e-5)


@pytest.mark.parametrize("run_name", fat.RUNS)
def test_rescale_alpha_is_what_the_kernel_applied(data, run_name):
    """l_new = alpha * l_old + rowsum(exp(S_ij - m_new)), with alpha = exp(m_old - m_new)."""
    run = data["runs"][run_name]
    previous = {}
    for step in run["steps"]:
        if step["phase"] != "kv":
            continue
        p_tile = np.asarray([[tracejson_num(x) for x in row] for row in step["p_tile"]])
        for r, row in enumerate(step["rows"]):
            l_old = previous.get(row["row"], 0.0) if step["kv_block"] else 0.0
            assert row["alpha"] == pytest.approx(np.exp(tracejson_num(row["m_old"]) - row["m"]), abs=1e-6)
            assert 0.0 <= row["alpha"] <= 1.0
            assert row["l"] == pytest.approx(row["alpha"] * l_old + p_tile[r].sum(), rel=1e-5)
            previous[row["row"]] = row["l"]


@pytest.mark.parametrize("run_name", fat.RUNS)
def test_final_state_is_the_reference_output_and_rows_sum_to_one(data, run_name):
    run = data["runs"][run_name]
    s = scores(data, run_name == "causal")
    stores = [step for step in run["steps"] if step["phase"] == "store"]
    out = np.concatenate([[row["o"] for row in step["rows"]] for step in stores])  # (N, D)
    np.testing.assert_allclose(out, run["reference"], atol=1e-5)
    np.testing.assert_allclose(out, run["out"], atol=1e-6)
    assert run["max_abs_diff"] < 1e-5
    m = np.concatenate([[row["m"] for row in step["rows"]] for step in stores])
    l_ = np.concatenate([[row["l"] for row in step["rows"]] for step in stores])
    probs = np.exp(s - m[:, None]) / l_[:, None]  # the softmax the final m_i, l_i imply
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("run_name", fat.RUNS)
def test_byte_counters_climb_to_the_io_counter_totals_which_equal_the_closed_forms(data, run_name):
    run = data["runs"][run_name]
    for algo in ("flash", "standard"):
        totals = [step["bytes"][algo]["total"] for step in run["steps"]]
        assert totals == sorted(totals) and totals[0] == 0
        counted = run["counted"][algo]
        last = dict(run["steps"][-1]["bytes"][algo]["tensors"])
        assert last == {t: b["load"] + b["store"] for t, b in counted.items()}
        assert counted == run["closed_form"][algo]
    # FlashAttention never moves S or P; standard attention moves each N x N matrix at least twice.
    assert all(step["bytes"]["flash"]["nxn"] == 0 for step in run["steps"])
    itemsize = 4  # fp32 inputs
    assert run["counted"]["standard"]["S"] == {"load": N * N * itemsize, "store": N * N * itemsize}


def test_skipped_causal_tiles_are_exactly_those_above_the_diagonal(data):
    above = {(i, j) for i in range(N // BM) for j in range(N // BN) if j * BN > (i + 1) * BM - 1}
    causal, full = data["runs"]["causal"], data["runs"]["full"]
    assert {tuple(t) for t in causal["skipped"]} == above
    assert full["skipped"] == []
    final = causal["steps"][-1]["tiles"]
    assert {divmod(t, N // BN) for t, code in enumerate(final) if code == "x"} == above
    skips = [step for step in causal["steps"] if step["phase"] == "skip"]
    assert {(s["q_block"], s["kv_block"]) for s in skips} == above
    for step in skips:  # no bytes move for a tile the loop never reaches
        i = causal["steps"].index(step)
        assert step["bytes"]["flash"]["total"] == causal["steps"][i - 1]["bytes"]["flash"]["total"]
    assert causal["executed"] + len(above) == full["executed"]


def test_only_the_current_tile_is_in_sram(data):
    for step in kv_steps(data["runs"]["full"]):
        codes = step["tiles"]
        assert codes.count("a") == 1
        assert codes.index("a") == step["q_block"] * (N // BN) + step["kv_block"]


def test_facts_agree_with_the_data(trace, data):
    facts = trace["facts"]
    assert facts["tile_steps_full"] == data["runs"]["full"]["executed"] == (N // BM) * (N // BN)
    assert facts["tiles_skipped_causal"] == len(data["runs"]["causal"]["skipped"])
    assert facts["max_abs_diff_full"] == data["runs"]["full"]["max_abs_diff_text"]
    assert facts["flash_bytes_full"] < facts["standard_bytes_full"]
    assert facts["standard_nxn_bytes_full"] == data["runs"]["full"]["steps"][-1]["bytes"]["standard"]["nxn"]
    assert 0 < float(facts["rescale_alpha"]) < 1
    assert float(facts["rescale_alpha"]) == pytest.approx(
        np.exp(float(facts["rescale_m_old"].replace("−", "-")) - float(facts["rescale_m_new"].replace("−", "-"))),
        abs=2e-3)
