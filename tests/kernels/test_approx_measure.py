"""Tests for kernels/approx/measure.py: the error, retrieval and memory accounting."""

import numpy as np
import pytest

from kernels.approx import measure, sparse
from kernels.approx.result import Baseline


def test_n2_memory_table_in_numbers():
    rows = {r.n: r for r in measure.n2_memory_table()}
    assert rows[512].per_head_bytes == 512 * 512 * 2 == 2**19  # 0.5 MiB
    assert rows[512].model_bytes == 192 * 2**20  # x 16 heads x 24 layers
    assert rows[2048].model_bytes == 3 * 2**30
    assert rows[8192].per_head_bytes == 128 * 2**20 and rows[8192].model_bytes == 48 * 2**30
    assert rows[32768].per_head_bytes == 2 * 2**30 and rows[32768].model_bytes == 768 * 2**30


def test_relative_error():
    assert measure.relative_error(np.array([3.0, 4.0]), np.array([0.0, 5.0])) == pytest.approx(np.sqrt(10) / 5)
    with pytest.raises(ValueError, match="same shape"):
        measure.relative_error(np.zeros(2), np.zeros(3))


@pytest.mark.parametrize("shared_qk", [False, True])
def test_retrieval_task_plants_a_needle_exact_attention_finds(shared_qk):
    task = measure.retrieval_task(256, 16, seed=3, shared_qk=shared_qk, target_weight=0.8)
    assert task.exact_weight == pytest.approx(0.8, abs=1e-9)
    baseline = Baseline.SHARED_QK if shared_qk else Baseline.FULL
    exact = measure.exact_output(task.inputs, baseline)
    assert exact[task.query, 0] == pytest.approx(task.exact_weight, abs=1e-12)  # the marker coordinate
    assert (task.query, task.needle) == (255, 1)


def test_measured_peak_sees_an_allocation():
    _, peak = measure.measured_peak_bytes(np.ones, 10**6)
    assert 8 * 10**6 <= peak < 9 * 10**6


def test_evaluate_exact_and_local_methods_on_retrieval():
    exact = measure.evaluate("chunked", 256, 16, query_chunk=64, key_chunk=64)
    assert exact.error < 1e-12 and exact.retrieval_error < 1e-12
    assert exact.retrieval_weight == pytest.approx(exact.exact_retrieval_weight, abs=1e-12)
    assert exact.coverage == "all" and exact.flops == exact.dense_flops
    local = measure.evaluate("longformer", 256, 16, window=32, global_tokens=(0,))
    assert local.retrieval_weight == 0.0  # the needle is 254 positions away from the query
    assert local.pairs == sparse.longformer_pattern(256, 32, (0,)).count


def test_unknown_method_raises():
    with pytest.raises(ValueError, match="method must be one of"):
        measure.run_method("synthesizer", measure.generic_inputs(8, 2))


def test_scaling_curves_match_the_modules():
    curves = measure.scaling_curves([64, 1024, 10**6], d=64)
    np.testing.assert_array_equal(curves.dense, 4.0 * curves.ns**2 * 64)
    assert curves.strided[1] == 4 * 64 * sparse.strided_pattern(1024, 32).count
    assert np.all(np.diff(np.log(curves.performer)) > 0)
    assert curves.performer[2] / curves.performer[1] == pytest.approx(10**6 / 1024)  # linear in N


def test_evaluate_all_covers_every_method():
    table = measure.evaluate_all(256, 16)
    assert [e.method for e in table] == list(measure.METHODS)
    for e in table:
        assert np.isfinite(e.error)
        # the formulas count the float working set; tracemalloc also sees temporaries,
        # pattern construction and pair lists (largest share for Reformer's pairs)
        assert e.peak_bytes <= e.measured_peak_bytes <= 5 * e.peak_bytes, e.method
        assert (e.pairs is None) == (e.coverage != "subset")
