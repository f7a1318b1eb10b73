"""Tests for kernels/approx/measure.py: the error, retrieval and memory accounting."""

import itertools

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


def test_score_memory_counts_what_each_method_materialises():
    mem = measure.score_memory([1024, 8192, 10**6], d=64)
    np.testing.assert_array_equal(mem.dense, [1024.0**2, 8192.0**2, 1e12])
    # strided: the pairs the pattern really lists
    assert mem.strided[1] == sparse.strided_pattern(8192, 91).count
    # Reformer: 4 rounds of 32-query chunks, each scoring its own chunk and the previous one
    assert mem.reformer[0] == 4 * 1024 * 64
    # Linformer N x k scores; Performer two N x m feature maps and the m x D summary
    assert mem.linformer[2] == 256e6 and mem.performer[0] == 2 * 1024 * 256 + 256 * 64
    # the slopes on a log-log plot: 2 for dense, 1.5 for strided, 1 for the rest
    slope = lambda y: np.log(y[2] / y[1]) / np.log(1e6 / 8192)
    assert slope(mem.dense) == pytest.approx(2.0)
    assert slope(mem.strided) == pytest.approx(1.5, abs=0.02)
    assert slope(mem.reformer) == pytest.approx(1.0) and slope(mem.linformer) == pytest.approx(1.0)


def test_score_memory_rejects_bad_budgets():
    with pytest.raises(ValueError, match="rank"):
        measure.score_memory([1024], rank=0)


def test_top_k_keys_and_hits():
    scores = np.array([[0.0, 3.0, 1.0, 2.0], [5.0, 5.0, 1.0, 0.0]])
    top = measure.top_k_keys(scores, 2)
    assert top.tolist() == [[1, 3], [0, 1]]  # ties keep the lower index first
    from kernels.approx.result import Pairs

    pairs = Pairs.from_mask(np.array([[False, True, False, False], [False, True, True, True]]))
    assert measure.top_k_hits(top, pairs).tolist() == [[True, False], [False, True]]
    with pytest.raises(ValueError, match="k must be at most"):
        measure.top_k_keys(scores, 5)
    with pytest.raises(ValueError, match="top must have shape"):
        measure.top_k_hits(top[:1], pairs)


def test_lsh_recall_grows_with_rounds_and_one_bucket_finds_everything():
    q = measure.generic_inputs(256, 16, seed=2).q
    got = measure.lsh_top_k_recall(q, 4, n_buckets=8, n_rounds=4, chunk_size=32, seed=0)
    assert all(a <= b for a, b in itertools.pairwise(got.union_scored))
    assert got.union_scored[-1] > got.union_scored[0]
    assert got.union_scored[0] == got.scored[0]
    assert all(s <= b for s, b in zip(got.scored, got.same_bucket))  # chunking only removes pairs
    # hashing beats chance: a round scores ~1/8 of the pairs but more than 1/8 of the top keys
    assert got.scored[0] > got.pairs_per_round[0] / (256 * 255)
    # one chunk holds every token: nothing in the bucket is left out of the window
    whole = measure.lsh_top_k_recall(q, 4, n_buckets=2, n_rounds=1, chunk_size=256, seed=0)
    assert whole.scored == whole.same_bucket
