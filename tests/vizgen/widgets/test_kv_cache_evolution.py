"""The kv-cache-evolution widget draws and sizes each scheme's cache as kernels.kv_cache computes it."""

from itertools import pairwise

import pytest

from kernels import kv_cache
from kernels.gpu_specs import H100
from vizgen import tracejson
from vizgen.widgets import kv_cache_evolution as widget


@pytest.fixture(scope="module")
def trace():
    return widget.trace()


def model(trace, name):
    return next(m for m in trace["data"]["models"] if m["name"] == name)


def rows(trace, name):
    return {r["scheme"]: r for r in model(trace, name)["rows"]}


def test_trace_is_plain_deterministic_data(trace):
    assert tracejson.dumps(trace) == tracejson.dumps(widget.trace())


def test_slider_stops_are_powers_of_two_from_1k_to_128k(trace):
    stops = trace["data"]["stops"]
    assert stops[0] == 1024 and stops[-1] == 128 * 1024
    assert all(b == 2 * a for a, b in pairwise(stops))
    assert trace["data"]["stop_labels"][trace["data"]["default_stop"]] == "32k"


def test_every_model_has_each_scheme_once_and_its_own_marked(trace):
    for m in trace["data"]["models"]:
        assert [r["scheme"] for r in m["rows"]] == ["MHA", "MQA", "GQA", "MLA"]
        own = [r["scheme"] for r in m["rows"] if r["own"]]
        assert own == [kv_cache.get(m["name"]).scheme]
    assert model(trace, "DeepSeek-V2")["scheme"] == "MLA"
    assert model(trace, "Llama 3.1 405B")["scheme"] == "GQA"


def test_blocks_count_the_cached_vectors_per_layer(trace):
    # Units x 2 head-wide vectors (K and V) = the per-layer elements / d_h; MLA: d_c / d_h + d_h^R / d_h.
    for m in trace["data"]["models"]:
        spec = kv_cache.get(m["name"])
        for r in m["rows"]:
            variant = spec if r["own"] else kv_cache.scheme_variant(spec, r["scheme"])
            per_layer = kv_cache.kv_elements_per_token(variant) / spec.n_layers
            b = r["blocks"]
            widths = b["latent"] + b["rope"] if r["scheme"] == "MLA" else 2 * b["units"]
            assert widths * spec.head_dim == per_layer
            assert b["units"] * b["reads"] == spec.n_heads  # every query head reads exactly one unit
    llama = rows(trace, "Llama 3.1 70B")
    assert (llama["MHA"]["blocks"]["units"], llama["GQA"]["blocks"]["units"], llama["MQA"]["blocks"]["units"]) == (64, 8, 1)
    assert llama["GQA"]["blocks"]["reads"] == 8
    v2 = rows(trace, "DeepSeek-V2")["MLA"]["blocks"]
    assert (v2["latent"], v2["rope"], v2["d_c"], v2["d_h_R"]) == (4.0, 0.5, 512, 64)


def test_sizes_are_kv_bytes_at_every_stop(trace):
    data = trace["data"]
    for name in ("Llama 3.1 8B", "DeepSeek-V3"):
        spec = kv_cache.get(name)
        for scheme, r in rows(trace, name).items():
            variant = spec if r["own"] else kv_cache.scheme_variant(spec, scheme)
            expected = [widget.size(kv_cache.kv_bytes(variant, n, dtype="bf16")) for n in data["stops"]]
            assert r["sizes"] == expected
    llama = rows(trace, "Llama 3.1 70B")
    assert llama["GQA"]["sizes"][-1] == "40 GiB" and llama["MHA"]["sizes"][-1] == "320 GiB"


def test_bars_grow_with_context_except_past_the_sliding_window(trace):
    stops = trace["data"]["stops"]
    for m in trace["data"]["models"]:
        for r in m["rows"]:
            pos = r["pos"]
            assert all(0 <= p <= 1 for p in pos)
            for n, a, b in zip(stops[1:], pos, pos[1:]):
                if m["window"] is not None and n > m["window"]:
                    assert b == a  # the rolling buffer holds w tokens, however long the context
                else:
                    assert b > a
    assert rows(trace, "Mistral 7B")["GQA"]["sizes"][3:] == ["512 MiB"] * 5


def test_fit_follows_max_context_on_the_serving_gpus(trace):
    stops = trace["data"]["stops"]
    for m in trace["data"]["models"]:
        spec = kv_cache.get(m["name"])
        assert m["n_gpus"] == kv_cache.serving_gpus(spec, H100)
        for r in m["rows"]:
            for n, fit in zip(stops, r["fits"]):
                if n > spec.context:
                    assert fit == "beyond"
                else:
                    assert fit == ("yes" if n <= r["max_context"] else "no")
    # 16 x H100 leave 1.28e12 - 811,706,777,600 = 468,293,222,400 bytes beside 405B's bf16 weights:
    # as MHA (8,257,536 bytes per token) that is 56,711 tokens; its own GQA reaches the full 128k.
    llama = rows(trace, "Llama 3.1 405B")
    assert llama["MHA"]["max_context"] == 56_711 and llama["GQA"]["max_context"] == 131_072
    assert llama["MHA"]["fits"][5] == "yes" and llama["MHA"]["fits"][6] == "no"


def test_free_hbm_marker_separates_fitting_bars_from_the_rest(trace):
    # On the shared log axis a bar that fits ends left of the marker, one that does not, right of it.
    for m in trace["data"]["models"]:
        for r in m["rows"]:
            for pos, fit in zip(r["pos"], r["fits"]):
                if fit == "yes":
                    assert pos <= m["free_pos"]
                elif fit == "no":
                    assert pos > m["free_pos"]


def test_facts_for_the_post(trace):
    facts = trace["facts"]
    assert facts["class70b_mha_per_token"] == "2.5 MiB"
    assert facts["class70b_gqa_per_token"] == "320 KiB"
    assert facts["class70b_mqa_per_token"] == "40 KiB"
    assert facts["class70b_mla_per_token"] == "90 KiB"
    assert facts["class70b_gqa_128k"] == "40 GiB" and facts["class70b_mha_32k"] == "80 GiB"
    # DeepSeek-V2 Table 1: MLA (d_c + d_h^R) l = 576 x 60 against MHA 2 n_h d_h l = 2 x 128 x 128 x 60.
    assert facts["v2_mla_elements"] == "34,560" and facts["v2_mha_elements"] == "1,966,080"
    assert facts["v2_mla_vs_mha_ratio"] == "56.9×" and facts["v2_mla_vs_mha_reduction"] == "98.2%"
    assert facts["mistral_cache_at_window"] == facts["mistral_cache_at_context"] == "512 MiB"


def test_captions_name_the_model_and_its_own_size(trace):
    for m in trace["data"]["models"]:
        own = next(r for r in m["rows"] if r["own"])
        for i, caption in enumerate(m["captions"]):
            assert caption.startswith(m["name"]) and own["sizes"][i] in caption
    assert "stopped growing" in model(trace, "Mistral 7B")["captions"][-1]
