"""The gpu-memory-hierarchy widget: published figures, exact traffic, an honest stopwatch."""

import gzip
import json
import math

import pytest

from kernels import gpu_specs, triton_runtime
from vizgen import registry, render, tracejson
from vizgen.widgets import gpu_memory_hierarchy as gmh

pytestmark = pytest.mark.skipif(not triton_runtime.interpreted(), reason="the IO counter needs the Triton interpreter")


@pytest.fixture(scope="module")
def trace():
    return gmh.trace()


@pytest.fixture(scope="module")
def data(trace):
    return json.loads(tracejson.dumps(trace))["data"]  # what the page receives


def scenario_keys():
    return [(n, d, scope) for n in gmh.N_VALUES for d in gmh.HEAD_DIMS for scope in gmh.SCOPES]


def test_trace_is_deterministic_and_small(trace):
    first = tracejson.dumps(trace)
    assert first == tracejson.dumps(gmh.trace())
    html, _ = render.render(registry.get("gpu-memory-hierarchy"), json.loads(first))
    assert len(gzip.compress(html.encode())) + len(gzip.compress(first)) < 100_000


def test_every_control_stop_is_precomputed(data):
    assert set(data["traffic"]) == {f"{n}|{d}|{s}" for n, d, s in scenario_keys()}
    assert set(data["per_gpu"]) == {f"{g}|{n}|{d}|{s}" for g in gpu_specs.GPUS for n, d, s in scenario_keys()}


@pytest.mark.parametrize("name", list(gpu_specs.GPUS))
def test_levels_carry_the_published_figures_fastest_first(data, name):
    gpu, levels = gpu_specs.GPUS[name], {lv["key"]: lv for lv in data["gpus"][name]["levels"]}
    assert [lv["key"] for lv in data["gpus"][name]["levels"]] == ["registers", "sram", "l2", "hbm", "host"]
    assert levels["sram"]["capacity"] == gpu.max_smem_per_sm * gpu.sms
    assert levels["l2"]["capacity"] == gpu.l2_bytes
    assert levels["hbm"]["bandwidth"] == pytest.approx(gpu.hbm_bandwidth)
    assert levels["sram"]["bandwidth"] == pytest.approx(gpu.smem_bandwidth)
    assert levels["registers"]["bandwidth"] is None and levels["l2"]["bandwidth"] is None  # not published
    # On a log axis, bigger is further right: SRAM outruns HBM, which outruns the host link.
    bw = [levels[k]["bandwidth_frac"] for k in ("sram", "hbm", "host")]
    assert bw == sorted(bw, reverse=True) and all(0 <= f <= 1 for f in bw)
    caps = [levels[k]["capacity_frac"] for k in ("sram", "l2", "hbm")]
    assert caps == sorted(caps)


@pytest.mark.parametrize("n, d, scope", scenario_keys())
def test_traffic_is_the_closed_forms_and_flash_moves_no_nxn_bytes(data, n, d, scope):
    t = data["traffic"][f"{n}|{d}|{scope}"]
    heads, layers = gmh.SCOPES[scope]
    standard = {x["tensor"]: x["bytes"] for x in t["standard"]}
    flash = {x["tensor"]: x["bytes"] for x in t["flash"]}
    assert set(flash) == {"Q", "K", "V", "O"}  # no S, no P
    per_head = layers * heads * gmh.ITEMSIZE
    # FA2: each program reads its Q tile once and writes its O tile once; K and V once per Q tile.
    assert flash["Q"] == flash["O"] == per_head * n * d
    assert flash["K"] == flash["V"] == per_head * math.ceil(n / gmh.GPU_BLOCK) * n * d
    # Standard: S and P written and read back, at least once each.
    assert standard["S"] >= 2 * per_head * n * n and standard["P"] >= 2 * per_head * n * n
    assert t["totals"]["standard"] == sum(standard.values()) > t["totals"]["flash"] == sum(flash.values())
    assert sum(x["frac"] for x in t["standard"]) == pytest.approx(1.0)
    assert sum(x["frac"] for x in t["flash"]) == pytest.approx(t["totals"]["flash"] / t["totals"]["standard"])
    assert t["footprint"] == 2 * heads * n * n * gmh.ITEMSIZE


@pytest.mark.parametrize("name", list(gpu_specs.GPUS))
def test_stopwatch_is_bytes_over_bandwidth(data, name):
    gpu = gpu_specs.GPUS[name]
    for n, d, scope in scenario_keys():
        t = data["traffic"][f"{n}|{d}|{scope}"]
        rows = {r["key"]: r for r in data["per_gpu"][f"{name}|{n}|{d}|{scope}"]["stopwatch"]}
        assert set(rows) == {"sram", "hbm", "host"}
        for algo in ("standard", "flash"):
            assert rows["hbm"][algo] == pytest.approx(t["totals"][algo] / gpu.hbm_bandwidth)
            assert rows["sram"][algo] < rows["hbm"][algo] < rows["host"][algo]


def test_time_grows_with_n_and_h100_is_faster(data):
    for d in gmh.HEAD_DIMS:
        for algo in ("standard", "flash"):
            times = [next(r for r in data["per_gpu"][f"A100|{n}|{d}|head"]["stopwatch"] if r["key"] == "hbm")[algo]
                     for n in gmh.N_VALUES]
            assert times == sorted(times) and times[-1] > 100 * times[0]  # quadratic: 16x N, >100x time
            h100 = next(r for r in data["per_gpu"][f"H100|4096|{d}|head"]["stopwatch"] if r["key"] == "hbm")[algo]
            a100 = next(r for r in data["per_gpu"][f"A100|4096|{d}|head"]["stopwatch"] if r["key"] == "hbm")[algo]
            assert h100 < a100


def test_io_counter_agrees_with_the_closed_forms(data):
    measured = data["measured"]
    assert measured["matches"]
    assert measured["counted"] == measured["closed_form"]
    assert "S" not in measured["counted"]["flash"] and measured["counted"]["standard"]["S"] > 0
    assert measured["totals"]["flash"] < measured["totals"]["standard"]


def test_facts_agree_with_the_data(trace, data):
    facts = trace["facts"]
    assert facts["a100_smem_bandwidth"] == "19.5 TB/s"  # 128 B/clock x 108 SMs x 1.41 GHz
    assert facts["standard_bytes_n4k_d64"] == data["traffic"]["4096|64|head"]["totals_text"]["standard"]
    hbm = next(r for r in data["per_gpu"]["H100|16384|128|head"]["stopwatch"] if r["key"] == "hbm")
    assert facts["h100_flash_time_n16k_d128"] == hbm["flash_text"]
    assert facts["measured_flash_bytes"] == data["measured"]["totals"]["flash"]
