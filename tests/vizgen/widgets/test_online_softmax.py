"""The online-softmax widget shows what the kernel computed, and it is right."""

import numpy as np
import pytest

from vizgen import tracejson
from vizgen.widgets import online_softmax


@pytest.fixture(scope="module")
def trace():
    return online_softmax.trace()


def by_phase(data, phase):
    return [step for step in data["steps"] if step["phase"] == phase]


def test_trace_is_plain_deterministic_data(trace):
    assert tracejson.dumps(trace) == tracejson.dumps(online_softmax.trace())


def test_two_tiles_of_four_and_the_max_grows_in_the_second(trace):
    data = trace["data"]
    assert (data["n_keys"], data["block_n"]) == (8, 4)
    updates = by_phase(data, "update")
    assert [s["tile"] for s in updates] == [0, 1]
    s = np.asarray(data["scores"])
    assert updates[0]["m"] == pytest.approx(s[:4].max(), abs=1e-6)
    assert updates[1]["m"] == pytest.approx(s.max(), abs=1e-6)
    assert 0 < updates[1]["alpha"] < 1


def test_running_sums_match_an_independent_computation(trace):
    data = trace["data"]
    s = np.asarray(data["scores"])
    v = np.asarray(data["v"])
    for step in by_phase(data, "update"):
        seen = slice(0, (step["tile"] + 1) * 4)
        w = np.exp(s[seen] - step["m"])
        assert step["l"] == pytest.approx(w.sum(), rel=1e-5)
        np.testing.assert_allclose(step["acc"], w @ v[seen], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(step["weights"][: seen.stop]), w, rtol=1e-5)


def test_final_state_equals_softmax_times_v(trace):
    data = trace["data"]
    final = data["steps"][-1]
    assert final["phase"] == "final"
    np.testing.assert_allclose(np.asarray(final["acc"]) / final["l"], final["out"], rtol=1e-5, atol=1e-6)
    assert sum(final["weights"]) == pytest.approx(1.0, abs=1e-6)  # the row sums to one
    s = np.asarray(data["scores"], dtype=np.float64)
    p = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
    np.testing.assert_allclose(final["out"], p @ np.asarray(data["v"]), atol=1e-5)
    assert data["max_abs_diff"] < 1e-5


def test_facts_agree_with_the_data(trace):
    facts, updates = trace["facts"], by_phase(trace["data"], "update")
    assert facts["m_1"] == f"{updates[1]['m']:.3f}"
    assert facts["l_1"] == f"{updates[1]['l']:.3f}"
    assert float(facts["l_1_rescaled"]) + float(facts["l_1_added"]) == pytest.approx(float(facts["l_1"]), abs=2e-3)
    assert facts["out"] == facts["direct_out"]
