"""The lsh-attention-bucketing widget shows what Reformer's hash really did.

Every check recomputes from the definitions (arXiv:2001.04451, Section 2) rather than
from the widget's helpers: h(x) = argmax([xR; -xR]) on the normalised queries, pairs
in the same bucket and in the query's own or previous chunk, top-k by exact scores.
"""

import gzip
import itertools

import numpy as np
import pytest

from kernels.approx import lsh, measure
from vizgen import tracejson
from vizgen.widgets import lsh_attention_bucketing as widget


@pytest.fixture(scope="module")
def trace():
    return widget.trace()


def test_trace_is_deterministic(trace):
    assert tracejson.dumps(trace) == tracejson.dumps(widget.trace())


def test_small_enough_to_inline(trace):
    assert len(gzip.compress(tracejson.dumps(trace))) < 100_000  # the widget budget, gzip


def test_buckets_are_the_argmax_of_the_signed_rotation(trace):
    data = trace["data"]
    keys = np.asarray(data["keys"], dtype=np.float64)
    np.testing.assert_allclose(np.linalg.norm(keys, axis=1), 1.0, atol=1e-3)  # shared-QK keys are unit
    for rd in data["rounds"]:
        w = np.asarray(rd["columns"], dtype=np.float64).T  # (2, b/2)
        x = keys @ w
        assert np.array_equal(np.argmax(np.concatenate([x, -x], axis=1), axis=1), rd["buckets"])


def test_sectors_cover_the_circle_and_hold_their_keys(trace):
    data = trace["data"]
    keys = np.asarray(data["keys"], dtype=np.float64)
    angles = np.mod(np.arctan2(keys[:, 1], keys[:, 0]), 2 * np.pi)
    for rd in data["rounds"]:
        sectors = rd["sectors"]
        assert sorted(s[2] for s in sectors) == list(range(data["n_buckets"]))
        assert sum(b - a for a, b, _ in sectors) == pytest.approx(2 * np.pi, abs=1e-3)
        assert min(b - a for a, b, _ in sectors) >= np.radians(widget.MIN_SECTOR_DEG)
        w = np.asarray(rd["columns"], dtype=np.float64).T
        for a, b, label in sectors:  # the hash at the middle of each sector is its label
            mid = np.array([np.cos((a + b) / 2), np.sin((a + b) / 2)]) @ w
            assert np.argmax(np.concatenate([mid, -mid])) == label
        for t, bucket in zip(angles, rd["buckets"]):
            inside = [label for a, b, label in sectors if any(a <= t + turn <= b for turn in (-2 * np.pi, 0, 2 * np.pi))]
            assert bucket in inside


def test_sort_and_chunks(trace):
    data = trace["data"]
    m = data["chunk_size"]
    for rd in data["rounds"]:
        order, buckets = np.asarray(rd["order"]), np.asarray(rd["buckets"])
        assert sorted(order.tolist()) == list(range(data["n"]))
        keys = list(zip(buckets[order], order))
        assert keys == sorted(keys)  # by (bucket, position)
        assert np.array_equal(np.asarray(rd["chunk_of"])[order], np.arange(data["n"]) // m)


def _expected_pairs(rd, n, m):
    chunk, bucket = np.asarray(rd["chunk_of"]), np.asarray(rd["buckets"])
    near = (chunk[None, :] == chunk[:, None]) | (chunk[None, :] == (chunk[:, None] - 1) % (n // m))
    return (bucket[:, None] == bucket[None, :]) & near & ~np.eye(n, dtype=bool)


def test_only_same_bucket_pairs_in_the_chunk_window_are_scored(trace):
    data = trace["data"]
    n, m = data["n"], data["chunk_size"]
    union = np.zeros((n, n), dtype=bool)
    for rd in data["rounds"]:
        got = np.zeros((n, n), dtype=bool)
        got[tuple(np.asarray(rd["pairs"]).T)] = True
        assert np.array_equal(got, _expected_pairs(rd, n, m))
        assert rd["pair_count"] == got.sum()
        union |= got
    got_union = np.zeros((n, n), dtype=bool)
    got_union[tuple(np.asarray(data["union"]["pairs"]).T)] = True
    assert np.array_equal(got_union, union)
    # and that union is exactly what the kernel's multi-round attention scores
    q = measure.generic_inputs(n, data["d"], data["input_seed"]).q
    result = lsh.lsh_attention(q, q, n_buckets=data["n_buckets"], n_rounds=data["n_rounds"], chunk_size=m, seed=data["seed"])
    assert np.array_equal(result.pairs.dense(), union)


def test_recall_is_the_share_of_exact_top_k_keys_scored(trace):
    data = trace["data"]
    n, k = data["n"], data["k"]
    q = np.asarray(measure.generic_inputs(n, data["d"], data["input_seed"]).q)
    unit = q / np.linalg.norm(q, axis=1, keepdims=True)
    cos = unit @ unit.T
    np.fill_diagonal(cos, -np.inf)
    top = np.asarray(data["top"])
    for i in range(n):  # in 2-D, shared-QK top keys are the nearest directions
        assert set(top[i]) == set(np.argsort(-cos[i])[:k])
    for rd in data["rounds"]:
        scored = _expected_pairs(rd, n, data["chunk_size"])
        hits = np.array([[scored[i, j] for j in top[i]] for i in range(n)])
        assert np.array_equal(hits, rd["hits"])
        assert rd["recall"] == pytest.approx(hits.mean())
        bucket = np.asarray(rd["buckets"])
        assert rd["recall_bucket"] == pytest.approx(np.mean([[bucket[i] == bucket[j] for j in top[i]] for i in range(n)]))
        assert rd["recall"] <= rd["recall_bucket"]
    assert data["union"]["recall"] >= max(rd["recall"] for rd in data["rounds"])


def test_the_focus_query_gains_from_the_second_round(trace):
    data = trace["data"]
    i = data["focus"]
    first, union = np.sum(data["rounds"][0]["hits"][i]), np.sum(data["union"]["hits"][i])
    assert union > first
    window = data["rounds"][0]["focus_window"]
    scored_keys = [j for a, j in data["rounds"][0]["pairs"] if a == i]
    assert all(data["rounds"][0]["chunk_of"][j] in window for j in scored_keys)


def test_steps_walk_the_algorithm_in_order(trace):
    phases = [(s["phase"], s["round"]) for s in trace["data"]["steps"]]
    assert phases[:7] == [(p, 0) for p in ("queries", "keys", "rotate", "bucket", "sort", "chunk", "pairs")]
    assert phases[-1] == ("union", 1)
    assert all(s["caption"] for s in trace["data"]["steps"])


def test_large_n_facts(trace):
    facts, big = trace["facts"], trace["data"]["large"]
    assert (big["n"], big["d"]) == (1024, 64)
    recall = big["union_scored"]
    assert all(a <= b for a, b in itertools.pairwise(recall)) and recall[-1] > recall[0]
    assert big["scored"] <= big["same_bucket"]
    assert big["scored"] > big["density_round"]  # better than scoring random pairs
    assert facts["large_recall_1"] == f"{100 * recall[0]:.0f}%"
    assert facts["union_recall"] == f"{100 * trace['data']['union']['recall']:.0f}%"
