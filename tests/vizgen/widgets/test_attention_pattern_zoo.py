"""The pattern zoo draws what each method scored and counts what it ran, at every N."""

import gzip

import numpy as np
import pytest

from kernels.approx import chunked, lowrank, lsh, measure, sparse
from vizgen import tracejson
from vizgen.widgets import attention_pattern_zoo as widget

SMALL_NS = (256, 512)  # 512 is past the measured range in the small trace


def _small(mp: pytest.MonkeyPatch) -> None:
    """The widget's own code path at two small N, errors measured at the first only."""
    mp.setattr(widget, "NS", SMALL_NS)
    mp.setattr(widget, "DEFAULT_N", 256)
    mp.setattr(widget, "MAX_MEASURED_N", 256)


@pytest.fixture(scope="module")
def trace():
    with pytest.MonkeyPatch.context() as mp:
        _small(mp)
        return tracejson.to_jsonable(widget.trace())


def cell(trace, n, key):
    stop = next(s for s in trace["data"]["stops"] if s["n"] == n)
    return stop["variants"]["global"] if key == "bigbird-variant" else stop["cells"][key]


def levels(c) -> np.ndarray:
    return np.array([[int(ch) for ch in row] for row in c["levels"]])  # (cells, cells)


def test_trace_is_deterministic(monkeypatch):
    _small(monkeypatch)
    assert tracejson.dumps(widget.trace()) == tracejson.dumps(widget.trace())


def test_shades_halve_per_level_and_keep_single_pairs_visible():
    share = np.array([[1.0, 0.5, 0.26, 0.24, 2.0**-7, 2.0**-12, 0.0]])  # level L: [2^(L-8), 2^(L-7))
    assert widget.shade_levels(share) == ["8765110"]
    with pytest.raises(ValueError, match="share"):
        widget.shade_levels(np.array([[1.5]]))


@pytest.mark.parametrize("n", SMALL_NS)
def test_maps_are_the_runs_pairs_coarsened(trace, n):
    x = measure.generic_inputs(n, widget.D, widget.SEED)
    budgets = measure.default_budgets(n)
    for key, method, budget in (("strided", "strided", budgets["strided"]),
                                ("window", "longformer", {**budgets["longformer"], "global_tokens": ()}),
                                ("global", "longformer", budgets["longformer"]),
                                ("lsh", "reformer", budgets["reformer"])):
        pairs = measure.run_method(method, x, **budget).pairs
        assert cell(trace, n, key)["levels"] == widget.shade_levels(pairs.density_grid(widget.CELLS)), key
        assert cell(trace, n, key)["pairs"] == pairs.count
    assert (levels(cell(trace, n, "dense")) == widget.LEVELS).all()


def test_each_pattern_has_its_shape(trace):
    n, cells = 256, widget.CELLS
    a, b = np.indices((cells, cells))  # block row (queries), block column (keys)
    strided, window, glob = (levels(cell(trace, n, k)) for k in ("strided", "window", "global"))
    side, l = n // cells, sparse.default_stride(n)  # positions per block side, stride
    assert not strided[b > a].any() and (np.diag(strided) > 0).all()  # causal, the local part on the diagonal
    far = (strided > 0) & ((a - b) * side > l + side)  # lit blocks beyond the local window: the strided part
    assert far[2 * l // side:].any(axis=1).all()
    half = measure.default_budgets(n)["longformer"]["window"] // 2
    assert not window[np.abs(a - b) * (n // cells) > half + n // cells].any()  # a band, nothing far off
    assert (glob[0] > 0).all() and (glob[:, 0] > 0).all() and not (window[0] > 0).all()  # token 0 global


def test_pair_counts_follow_the_patterns_closed_forms(trace):
    for n in SMALL_NS:
        l = sparse.default_stride(n)
        half = measure.default_budgets(n)["longformer"]["window"] // 2
        i = np.arange(n)
        window = int(np.sum(np.minimum(i + half, n - 1) - np.maximum(i - half, 0) + 1))  # |i - j| <= w/2
        assert cell(trace, n, "strided")["pairs"] == measure.strided_pair_count(n, l)
        assert cell(trace, n, "window")["pairs"] == window
        assert cell(trace, n, "global")["pairs"] == window + 2 * (n - half - 1)  # row 0 and column 0 filled
        assert cell(trace, n, "dense")["pairs"] == n * n
        assert cell(trace, n, "dense")["share"] == 100


def test_flops_are_the_counted_ones_and_match_each_closed_form(trace):
    d = widget.D
    for n in SMALL_NS:
        b = measure.default_budgets(n)
        dense = 4 * n * n * d
        assert cell(trace, n, "dense")["flops"] == dense == chunked.chunked_attention_flops(n, d)
        for key in ("strided", "window", "global", "bigbird-variant"):
            c = cell(trace, n, key)
            assert c["flops"] == 4 * d * c["pairs"]  # sparse_attention_flops: 4 D |S|
            assert c["flops_share"] == c["share"]  # 4 D per pair, sparse and dense alike
        r = b["reformer"]
        assert cell(trace, n, "lsh")["flops"] == lsh.lsh_attention_flops(n, d, r["n_buckets"], r["n_rounds"], r["chunk_size"])
        assert cell(trace, n, "lowrank")["flops"] == lowrank.linformer_flops(n, d, b["linformer"]["k"])
    assert cell(trace, 256, "lsh")["flops_share"] > 100  # at N = 256 hashing and 4 rounds cost more than dense


def test_low_rank_scores_no_pair_but_n_times_k_scores(trace):
    for n in SMALL_NS:
        c, k = cell(trace, n, "lowrank"), measure.default_budgets(n)["linformer"]["k"]
        assert c["pairs"] == 0 and c["levels"] is None
        assert c["k"] == k and c["scores"] == n * k
        assert c["share"] == pytest.approx(100 * k / n, rel=1e-2)
        assert c["peak_bytes"] == lowrank.linformer_peak_bytes(n, widget.D, k)


def test_peak_memory_in_binary_units_and_dense_is_quadratic(trace):
    for n in SMALL_NS:
        dense = cell(trace, n, "dense")
        assert dense["peak_bytes"] == 8 * (n * widget.D + 2 * n * n + n * (widget.D + 2))  # one N x N tile
        assert dense["peak_bytes"] == chunked.chunked_attention_peak_bytes(n, widget.D, n, n)
        assert dense["peak_text"] == widget.binary_bytes(dense["peak_bytes"])
    assert widget.binary_bytes(17 * 2**20) == "17.0 MiB" and widget.binary_bytes(2**30 + 2**23) == "1.01 GiB"
    assert widget.binary_bytes(288 * 2**10) == "288 KiB" and widget.flop_text(268_435_456) == "268 M"


def test_errors_are_measured_only_up_to_the_limit(trace):
    measured, unmeasured = (next(s for s in trace["data"]["stops"] if s["n"] == n) for n in SMALL_NS)
    for key, c in measured["cells"].items():
        assert {"error", "needle", "error_text", "needle_text"} <= c.keys(), key
    for c in unmeasured["cells"].values():
        assert "error" not in c and "needle" not in c
    assert "measured up to" not in measured["caption"]


def test_measured_errors_tell_the_story(trace):
    cells = next(s for s in trace["data"]["stops"] if s["n"] == 256)["cells"]
    assert cells["dense"]["error"] == 0 and cells["dense"]["needle"] == pytest.approx(0.9, abs=1e-9)
    for key in ("strided", "window", "global"):  # position 1 is outside the last query's window
        assert cells[key]["needle"] == pytest.approx(0, abs=1e-6), key
        assert cells[key]["error"] > 1, key  # further off than returning zeros on these inputs
    assert 0 < cells["lowrank"]["error"] < 1
    ev = measure.evaluate("strided", 256, widget.D, widget.SEED, **measure.default_budgets(256)["strided"])
    assert cells["strided"]["error"] == pytest.approx(ev.error)
    assert cells["strided"]["error_text"] == f"{ev.error:.2f}"


def test_bigbird_variant_adds_random_keys_to_a_narrower_window(trace):
    n = 256
    b = measure.default_budgets(n)["bigbird"]
    c = cell(trace, n, "bigbird-variant")
    assert c["budget"] == f"window w = {b['window']} + token 0 + {b['random_keys']} random"
    assert trace["data"]["variants"]["global"]["source"].startswith("BigBird")
    assert c["pairs"] > cell(trace, n, "global")["pairs"] * b["window"] / measure.default_budgets(n)["longformer"]["window"]


def test_caption_and_facts_come_from_the_cells(trace):
    stop = trace["data"]["stops"][0]
    assert stop["caption"].startswith("N = 256: dense attention scores all 65,536 pairs")
    facts = trace["facts"]
    assert facts["strided_pairs_256"] == f"{cell(trace, 256, 'strided')['pairs']:,}"
    assert facts["bigbird_pairs_512"] == f"{cell(trace, 512, 'bigbird-variant')['pairs']:,}"
    assert facts["lsh_needle_256"] == cell(trace, 256, "lsh")["needle_text"]
    assert "lsh_needle_512" not in facts
    assert facts["exact_needle"] == "0.900"


@pytest.mark.slow
def test_full_trace_fits_the_budget_and_spans_256_to_8192():
    full = widget.trace()
    data = full["data"]
    assert [s["n"] for s in data["stops"]] == [256, 512, 1024, 2048, 4096, 8192]
    assert data["ns"][data["default"]] == 1024
    assert len(gzip.compress(tracejson.dumps(full))) <= 100 * 1024
    last = data["stops"][-1]["cells"]
    assert last["dense"]["peak_text"] == "1.01 GiB"  # 2 x 8192^2 float64 scores and weights, plus the rest
    assert all(last[k]["share"] < 2.5 for k in ("strided", "window", "global", "lsh"))
    assert [("error" in s["cells"]["strided"]) for s in data["stops"]] == [True] * 4 + [False] * 2
