"""Tests for kernels/kv_cache.py against the figures the papers themselves publish."""

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernels import kv_cache
from kernels.gpu_specs import A100, H100
from kernels.kv_cache import (
    CLASS_70B,
    ModelSpec,
    get,
    kv_bytes,
    kv_bytes_per_token,
    kv_elements_per_token,
)

KiB, MiB, GiB = 2**10, 2**20, 2**30


# ------------------------------------------------------------------ published figures


@pytest.mark.parametrize("name", list(kv_cache.PRESETS))
def test_elements_follow_table_1_of_deepseek_v2(name):
    # arXiv:2405.04434 Table 1: MHA 2 n_h d_h l, GQA 2 n_g d_h l, MQA 2 d_h l, MLA (d_c + d_h^R) l.
    s = get(name)
    if s.scheme == "MLA":
        expected = (s.d_c + s.d_h_R) * s.n_layers
    else:
        expected = {"MHA": 2 * s.n_heads, "GQA": 2 * s.n_kv_heads, "MQA": 2}[s.scheme] * s.head_dim * s.n_layers
    assert kv_elements_per_token(s) == expected


def test_mla_caches_nine_halves_of_a_head_per_layer():
    # "d_c is set to 4 d_h and d_h^R to d_h / 2 ... equal to GQA with only 2.25 groups."
    for name in ("DeepSeek-V2", "DeepSeek-V3"):
        s = get(name)
        assert 2 * kv_elements_per_token(s) == 9 * s.head_dim * s.n_layers
        assert kv_elements_per_token(s) / (2 * s.head_dim * s.n_layers) == 2.25


def test_deepseek_v2_cuts_the_cache_of_deepseek_67b_by_93_3_percent():
    # Section 3.2 (inference efficiency): the 93.3% compares against DeepSeek 67B (16-bit GQA) and counts the
    # KV-cache quantization "into 6 bits on average"; the architecture alone gives 82.2%.
    v2, dense = get("DeepSeek-V2"), get("DeepSeek 67B")
    bits_v2, bits_dense = kv_elements_per_token(v2) * 6, kv_elements_per_token(dense) * 16
    assert round(1 - bits_v2 / bits_dense, 3) == 0.933
    assert round(1 - kv_elements_per_token(v2) / kv_elements_per_token(dense), 3) == 0.822


def test_opt_13b_keeps_800_kb_per_token_as_in_the_vllm_paper():
    # arXiv:2309.06180 Section 3: 2 (K and V) x 5120 (hidden) x 40 (layers) x 2 (FP16 bytes).
    opt = get("OPT-13B")
    assert opt.n_heads * opt.head_dim == 5120
    assert kv_bytes_per_token(opt, "fp16") == 2 * 5120 * 40 * 2 == 800 * KiB
    # "... up to 2048 tokens, the KV cache of one request can be as much as 1.6 GB"
    assert round(kv_bytes(opt, 2048, dtype="fp16") / GiB, 1) == 1.6
    # Figure 1: 13B parameters take 26 GB in FP16.
    assert kv_cache.weight_bytes(opt, "fp16") == 26e9


def test_llama_70b_at_128k_with_and_without_gqa():
    llama = get("Llama 3.1 70B")
    mha = kv_cache.scheme_variant(llama, "MHA")
    assert kv_bytes(llama, 128 * 1024) == 40 * GiB
    assert kv_bytes(mha, 128 * 1024) == 320 * GiB
    assert llama.context == 128 * 1024


def test_70b_class_table():
    # The like-for-like table: same 80 layers x 64 heads x 128, bf16.
    per_token = {scheme: kv_bytes_per_token(spec) for scheme, spec in CLASS_70B.items()}
    assert per_token == {"MHA": 2560 * KiB, "GQA": 320 * KiB, "MQA": 40 * KiB, "MLA": 90 * KiB}
    assert {s: kv_bytes(spec, 128 * 1024) / GiB for s, spec in CLASS_70B.items()} == {
        "MHA": 320, "GQA": 40, "MQA": 5, "MLA": 11.25}
    assert {spec.scheme for spec in CLASS_70B.values()} == set(kv_cache.SCHEMES)


def test_mistral_cache_stops_at_its_window():
    mistral = get("Mistral 7B")
    assert kv_bytes_per_token(mistral) == 128 * KiB
    assert kv_bytes(mistral, 4096) == kv_bytes(mistral, 8192) == 512 * MiB
    assert kv_bytes(mistral, 4095) < 512 * MiB


def test_falcon_is_multi_query_and_opt_multi_head():
    assert get("Falcon-7B").scheme == "MQA" and get("Falcon-7B").n_heads * get("Falcon-7B").head_dim == 4544
    assert get("OPT-13B").scheme == "MHA"
    assert get("Llama 3.1 8B").scheme == "GQA"


def test_fp8_halves_the_cache():
    for spec in kv_cache.PRESETS.values():
        fp8, bf16, fp16 = (kv_bytes_per_token(spec, dtype) for dtype in ("fp8", "bf16", "fp16"))
        assert 2 * fp8 == bf16 == fp16


# ------------------------------------------------------------------ fitting on a GPU


def test_llama_8b_on_one_h100():
    llama = get("Llama 3.1 8B")
    free = H100.hbm_bytes - 2 * llama.params
    tokens = free // kv_bytes_per_token(llama)
    assert tokens == 487_819  # (80e9 - 2 x 8,030,261,248) // 131,072: the 128k context fits 3.7 times
    assert kv_cache.max_context(llama, H100) == llama.context
    assert kv_cache.max_context(llama, H100, batch=4) == tokens // 4
    assert kv_cache.max_batch(llama, H100, 131_072) == 3


def test_llama_70b_needs_two_h100s_in_bf16_and_fits_one_in_fp8():
    llama = get("Llama 3.1 70B")
    with pytest.raises(ValueError, match=r"141\.1 GB of bf16 weights exceed the 80 GB of 1 x H100"):
        kv_cache.max_context(llama, H100)
    assert kv_cache.max_context(llama, H100, n_gpus=2) == 57_655  # (160e9 - 141.1e9) // 327,680
    # fp8 halves both the weights and the bytes per token: the same context on half the GPUs.
    assert kv_cache.max_context(llama, H100, weight_dtype="fp8", kv_dtype="fp8") == 57_655


@pytest.mark.parametrize("n_tokens", [1, 100, 2048])
@pytest.mark.parametrize("gpu", [A100, H100])
def test_max_batch_is_the_largest_that_fits(n_tokens, gpu):
    opt = get("OPT-13B")
    b = kv_cache.max_batch(opt, gpu, n_tokens, kv_dtype="fp16", weight_dtype="fp16")
    free = gpu.hbm_bytes - kv_cache.weight_bytes(opt, "fp16")
    assert kv_bytes(opt, n_tokens, b, "fp16") <= free < kv_bytes(opt, n_tokens, b + 1, "fp16")


def test_sliding_window_reaches_full_context_when_the_window_fits():
    mistral = get("Mistral 7B")
    window_requests = (H100.hbm_bytes - 2 * mistral.params) // kv_bytes(mistral, mistral.window)
    assert kv_cache.max_context(mistral, H100, batch=window_requests) == mistral.context
    assert kv_cache.max_context(mistral, H100, batch=window_requests + 1) < mistral.window
    assert kv_cache.max_batch(mistral, H100, 8192) == kv_cache.max_batch(mistral, H100, 4096) == window_requests


def test_no_room_for_a_token_is_zero():
    huge_batch = 10**9
    assert kv_cache.max_context(get("Llama 3.1 8B"), H100, batch=huge_batch) == 0


# ------------------------------------------------------------------ properties

specs = st.builds(
    lambda layers, kv_heads, group, head_dim, window: ModelSpec(
        "random", n_layers=layers, n_heads=kv_heads * group, n_kv_heads=kv_heads, head_dim=head_dim,
        params=10**9, context=10**6, source="hypothesis", window=window),
    st.integers(1, 128), st.integers(1, 16), st.integers(1, 16), st.sampled_from([32, 64, 128, 256]),
    st.none() | st.integers(1, 10_000),
)
dtypes = st.sampled_from(list(kv_cache.DTYPE_BYTES))


@given(specs, st.integers(1, 10**6), st.integers(1, 64), dtypes)
def test_bytes_scale_linearly_with_tokens_and_batch(spec, n, batch, dtype):
    spec = replace(spec, window=None)
    assert kv_bytes(spec, n, batch, dtype) == n * batch * kv_bytes(spec, 1, 1, dtype)


@given(specs, dtypes)
def test_gqa_is_mha_times_kv_heads_over_heads(spec, dtype):
    mha = kv_cache.scheme_variant(spec, "MHA")
    assert kv_bytes_per_token(spec, dtype) * spec.n_heads == kv_bytes_per_token(mha, dtype) * spec.n_kv_heads
    assert kv_bytes_per_token(kv_cache.scheme_variant(spec, "MQA"), dtype) * spec.n_heads == kv_bytes_per_token(
        mha, dtype)


@given(specs.filter(lambda s: s.window is not None), st.integers(1, 10**6), st.integers(1, 8))
def test_sliding_window_cache_never_exceeds_the_window(spec, n, batch):
    assert kv_cache.cached_tokens(spec, n) == min(n, spec.window)
    assert kv_bytes(spec, n, batch) <= kv_bytes(spec, spec.window, batch)
    assert kv_bytes(spec, n + 1, batch) >= kv_bytes(spec, n, batch)


# ------------------------------------------------------------------ bad requests


@pytest.mark.parametrize(("change", "message"), [
    ({"n_heads": 64, "n_kv_heads": 6}, r"n_heads \(64\) must be divisible by n_kv_heads \(6\)"),
    ({"n_layers": 0}, r"n_layers must be a positive int, got 0"),
    ({"head_dim": -128}, r"head_dim must be a positive int, got -128"),
    ({"d_c": 512}, r"MLA needs both d_c and d_h_R, got d_c=512, d_h_R=None"),
    ({"window": 0}, r"window must be a positive int, got 0"),
])
def test_bad_specifications_name_the_field(change, message):
    with pytest.raises(ValueError, match=message):
        replace(get("Llama 3.1 70B"), **change)


def test_bad_requests_name_the_numbers():
    with pytest.raises(ValueError, match=r"unknown model 'GPT-5'"):
        get("GPT-5")
    with pytest.raises(ValueError, match=r"dtype 'int3' is not one of"):
        kv_bytes_per_token(get("OPT-13B"), "int3")
    with pytest.raises(ValueError, match=r"scheme 'MLQ' is not one of"):
        kv_cache.scheme_variant(get("OPT-13B"), "MLQ")
    with pytest.raises(ValueError, match=r"4096 tokens exceed its 2048-token context"):
        kv_cache.max_batch(get("OPT-13B"), H100, 4096)
    with pytest.raises(ValueError, match=r"n_tokens must be a positive int, got 0"):
        kv_bytes(get("OPT-13B"), 0)


@pytest.mark.parametrize(("name", "vocab", "ffn"), [
    ("Llama 3.1 8B", 128_256, 14_336),
    ("Llama 3.1 70B", 128_256, 28_672),
    ("Llama 3.1 405B", 128_256, 53_248),
    ("Mistral 7B", 32_000, 14_336),
])
def test_published_parameter_counts_follow_from_the_configs(name, vocab, ffn):
    # vocab_size and intermediate_size from each config.json. Untied embedding and output,
    # per layer Q, K, V, O + a 3-matrix SwiGLU MLP + 2 RMSNorms, then the final norm.
    s = get(name)
    d = s.n_heads * s.head_dim
    attention = 2 * d * s.n_heads * s.head_dim + 2 * d * s.n_kv_heads * s.head_dim
    per_layer = attention + 3 * d * ffn + 2 * d
    assert s.params == 2 * vocab * d + s.n_layers * per_layer + d


def test_min_gpus_is_the_fewest_that_leave_room_for_the_cache():
    # 16 GB of bf16 weights fit one 80 GB H100; 141 GB need two; 812 GB (405B) need eleven.
    assert [kv_cache.min_gpus(get(m), H100) for m in ("Llama 3.1 8B", "Llama 3.1 70B", "Llama 3.1 405B")] == [1, 2, 11]
    assert kv_cache.min_gpus(get("Llama 3.1 70B"), H100, weight_dtype="fp8") == 1
    for spec in kv_cache.PRESETS.values():
        n = kv_cache.min_gpus(spec, H100)
        assert kv_cache.max_context(spec, H100, n_gpus=n) >= 0  # the weights load on n GPUs
        if n > 1:  # and not on one fewer
            with pytest.raises(ValueError, match="exceed"):
                kv_cache.max_context(spec, H100, n_gpus=n - 1)


def test_serving_gpus_are_one_gpu_or_whole_servers():
    counts = {m: kv_cache.serving_gpus(get(m), H100) for m in ("Llama 3.1 8B", "Llama 3.1 70B", "Llama 3.1 405B", "DeepSeek-V3")}
    assert counts == {"Llama 3.1 8B": 1, "Llama 3.1 70B": 8, "Llama 3.1 405B": 16, "DeepSeek-V3": 24}
