"""The KV cache: how many bytes each token leaves behind, and how many tokens fit on a GPU.

During decoding every layer keeps the keys and values of every past token so the next
token's query can attend to them without recomputing them. Per token and per layer:

* MHA (Vaswani et al. 2017, arXiv:1706.03762): ``2 * n_h * d_h`` elements (K and V,
  every head).
* GQA (Ainslie et al. 2023, arXiv:2305.13245): ``2 * n_g * d_h``; ``n_g`` K/V heads,
  each shared by ``n_h / n_g`` query heads.
* MQA (Shazeer 2019, arXiv:1911.02150): ``2 * d_h``; one K/V head for all queries.
* MLA (DeepSeek-V2, arXiv:2405.04434, Section 2.1): ``d_c + d_h^R``; the joint KV
  latent ``c_t^KV`` (width ``d_c``) and the one decoupled RoPE key ``k_t^R`` (width
  ``d_h^R``) shared by all heads. K and V are rebuilt from the latent, or the
  up-projections are absorbed into ``W^Q`` and ``W^O``; neither is cached.

Times ``l`` layers: this is Table 1 of the DeepSeek-V2 paper. Times bytes per element,
tokens and requests: the cache. A sliding-window model (Mistral 7B, arXiv:2310.06825,
Section 2 "Rolling Buffer Cache") keeps only the last ``w`` tokens, so its cache stops
growing at ``w``.

Every preset is a model's published configuration, with its source. Sizes are bytes;
the posts print them in binary units (KiB, GiB) because that is what 2**k-sized
tensors add up to.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from kernels.gpu_specs import GPU

__all__ = [
    "CLASS_70B",
    "DTYPE_BYTES",
    "PRESETS",
    "SCHEMES",
    "ModelSpec",
    "cached_tokens",
    "get",
    "kv_bytes",
    "kv_bytes_per_token",
    "kv_elements_per_token",
    "max_batch",
    "max_context",
    "min_gpus",
    "scheme_variant",
    "serving_gpus",
    "weight_bytes",
]

# The one table of element sizes. fp8 is E4M3 / E5M2, both one byte.
DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "fp8": 1}

SCHEMES = ("MHA", "GQA", "MQA", "MLA")

KEY_AND_VALUE = 2  # MHA / GQA / MQA cache a key and a value vector per KV head


def _dtype_bytes(dtype: str) -> int:
    try:
        return DTYPE_BYTES[dtype]
    except KeyError:
        raise ValueError(f"dtype {dtype!r} is not one of {', '.join(DTYPE_BYTES)}") from None


def _check_positive(**values) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


@dataclass(frozen=True)
class ModelSpec:
    """The attention shape of one model: everything that sizes its KV cache and weights.

    Invariants (checked on construction): every size is a positive int;
    ``n_heads % n_kv_heads == 0``; ``d_c`` and ``d_h_R`` are both set (MLA) or both
    ``None``.
    """

    name: str
    n_layers: int  # l: transformer blocks, each keeps its own K/V for every token
    n_heads: int  # n_h: query heads
    n_kv_heads: int  # n_g: K/V heads per layer; n_h for MHA, 1 for MQA, n_h for MLA (rebuilt, not cached)
    head_dim: int  # d_h: width of one head
    params: int  # every parameter (all experts of an MoE) must sit in memory to serve
    context: int  # longest context the model was released for, tokens
    source: str  # where the numbers above were published
    d_c: int | None = None  # MLA: width of the cached joint KV latent c_t^KV
    d_h_R: int | None = None  # MLA: width of the cached decoupled RoPE key k_t^R
    window: int | None = None  # sliding window w: a query sees the w most recent keys, itself included

    def __post_init__(self):
        _check_positive(n_layers=self.n_layers, n_heads=self.n_heads, n_kv_heads=self.n_kv_heads,
                        head_dim=self.head_dim, params=self.params, context=self.context)
        if self.n_heads % self.n_kv_heads != 0:
            raise ValueError(f"{self.name}: n_heads ({self.n_heads}) must be divisible by "
                             f"n_kv_heads ({self.n_kv_heads})")
        if (self.d_c is None) != (self.d_h_R is None):
            raise ValueError(f"{self.name}: MLA needs both d_c and d_h_R, got d_c={self.d_c}, d_h_R={self.d_h_R}")
        if self.d_c is not None:
            _check_positive(d_c=self.d_c, d_h_R=self.d_h_R)
        if self.window is not None:
            _check_positive(window=self.window)

    @property
    def scheme(self) -> str:
        """Which of SCHEMES the cache follows: MLA if a latent is cached, else by the number of KV heads."""
        if self.d_c is not None:
            return "MLA"
        if self.n_kv_heads == self.n_heads:
            return "MHA"
        return "MQA" if self.n_kv_heads == 1 else "GQA"


def kv_elements_per_token(spec: ModelSpec) -> int:
    """Cached elements per token over all layers: the DeepSeek-V2 paper's Table 1.

    MHA 2 n_h d_h l, GQA 2 n_g d_h l, MQA 2 d_h l, MLA (d_c + d_h^R) l.
    """
    if spec.scheme == "MLA":
        per_layer = spec.d_c + spec.d_h_R
    else:
        per_layer = KEY_AND_VALUE * spec.n_kv_heads * spec.head_dim
    return per_layer * spec.n_layers


def kv_bytes_per_token(spec: ModelSpec, dtype: str = "bf16") -> int:
    return kv_elements_per_token(spec) * _dtype_bytes(dtype)


def cached_tokens(spec: ModelSpec, n_tokens: int) -> int:
    """Tokens one request holds in its cache after ``n_tokens``: all of them, or at most w.

    Mistral's rolling buffer stores position i at slot i mod w and overwrites what no
    query can see any more (arXiv:2310.06825, Section 2).
    """
    _check_positive(n_tokens=n_tokens)
    return n_tokens if spec.window is None else min(n_tokens, spec.window)


def kv_bytes(spec: ModelSpec, n_tokens: int, batch: int = 1, dtype: str = "bf16") -> int:
    """KV cache of ``batch`` requests of ``n_tokens`` tokens each, in bytes."""
    _check_positive(batch=batch)
    return batch * cached_tokens(spec, n_tokens) * kv_bytes_per_token(spec, dtype)


def weight_bytes(spec: ModelSpec, dtype: str = "bf16") -> int:
    return spec.params * _dtype_bytes(dtype)


def _free_bytes(spec: ModelSpec, gpu: GPU, n_gpus: int, weight_dtype: str) -> int:
    """HBM left for the cache once the weights are loaded; ValueError if they are not loadable at all.

    An upper bound: activations, the CUDA context and the allocator's reserve also take
    memory (vLLM by default lets itself use 90% of it, ``gpu_memory_utilization=0.9``).
    """
    _check_positive(n_gpus=n_gpus)
    hbm = gpu.hbm_bytes * n_gpus
    weights = weight_bytes(spec, weight_dtype)
    if weights > hbm:
        raise ValueError(f"{spec.name}: {weights / 1e9:.1f} GB of {weight_dtype} weights exceed the "
                         f"{hbm / 1e9:.0f} GB of {n_gpus} x {gpu.name}")
    return hbm - weights


def min_gpus(spec: ModelSpec, gpu: GPU, weight_dtype: str = "bf16") -> int:
    """Fewest GPUs whose HBM holds the weights with at least one byte left for the cache."""
    return weight_bytes(spec, weight_dtype) // gpu.hbm_bytes + 1


GPUS_PER_NODE = 8  # an HGX / DGX server: models larger than one GPU are served on whole servers


def serving_gpus(spec: ModelSpec, gpu: GPU, weight_dtype: str = "bf16") -> int:
    """GPUs a deployment would use: one if the weights fit on one, else whole 8-GPU servers."""
    fewest = min_gpus(spec, gpu, weight_dtype)
    return 1 if fewest == 1 else -(-fewest // GPUS_PER_NODE) * GPUS_PER_NODE


def max_context(spec: ModelSpec, gpu: GPU, *, batch: int = 1, n_gpus: int = 1,
                kv_dtype: str = "bf16", weight_dtype: str = "bf16") -> int:
    """Longest context (tokens, at most ``spec.context``) each of ``batch`` requests can reach.

    0 when not even one token per request fits beside the weights. A sliding-window
    model whose window fits reaches its full context: its cache stops growing at w.
    """
    _check_positive(batch=batch)
    free = _free_bytes(spec, gpu, n_gpus, weight_dtype)
    tokens = free // (batch * kv_bytes_per_token(spec, kv_dtype))  # cached tokens per request
    if spec.window is not None and tokens >= spec.window:
        return spec.context
    return min(tokens, spec.context)


def max_batch(spec: ModelSpec, gpu: GPU, n_tokens: int, *, n_gpus: int = 1,
              kv_dtype: str = "bf16", weight_dtype: str = "bf16") -> int:
    """How many requests of ``n_tokens`` tokens fit beside the weights (0 if not one)."""
    if n_tokens > spec.context:
        raise ValueError(f"{spec.name}: {n_tokens} tokens exceed its {spec.context}-token context")
    free = _free_bytes(spec, gpu, n_gpus, weight_dtype)
    return free // kv_bytes(spec, n_tokens, 1, kv_dtype)


def scheme_variant(spec: ModelSpec, scheme: str, *, n_groups: int = 8) -> ModelSpec:
    """The same layers, heads and head width with another cache scheme: a like-for-like comparison.

    GQA uses ``n_groups`` K/V heads. MLA takes DeepSeek-V2's ratios, d_c = 4 d_h and
    d_h^R = d_h / 2 (arXiv:2405.04434, Section 2.1.4), so it caches (9/2) d_h per layer.
    Parameters and source are kept: only the cache shape is hypothetical.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme {scheme!r} is not one of {', '.join(SCHEMES)}")
    kv_heads = {"MHA": spec.n_heads, "GQA": n_groups, "MQA": 1, "MLA": spec.n_heads}[scheme]
    latent = (4 * spec.head_dim, spec.head_dim // 2) if scheme == "MLA" else (None, None)
    return replace(spec, name=f"{spec.name} as {scheme}", n_kv_heads=kv_heads, d_c=latent[0], d_h_R=latent[1])


# ------------------------------------------------------------------------ presets

_LLAMA3_PAPER = "Llama 3 paper (arXiv:2407.21783) Table 3"
_HF_COUNT = "exact count: Hugging Face safetensors total"

PRESETS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("Llama 3.1 8B", n_layers=32, n_heads=32, n_kv_heads=8, head_dim=128,
                  params=8_030_261_248, context=131_072,
                  source=f"{_LLAMA3_PAPER}; meta-llama/Llama-3.1-8B config.json; {_HF_COUNT}"),
        ModelSpec("Llama 3.1 70B", n_layers=80, n_heads=64, n_kv_heads=8, head_dim=128,
                  params=70_553_706_496, context=131_072,
                  source=f"{_LLAMA3_PAPER}; meta-llama/Llama-3.1-70B config.json; {_HF_COUNT}"),
        ModelSpec("Llama 3.1 405B", n_layers=126, n_heads=128, n_kv_heads=8, head_dim=128,
                  params=405_853_388_800, context=131_072,
                  source=f"{_LLAMA3_PAPER}; meta-llama/Llama-3.1-405B config.json; {_HF_COUNT}"),
        ModelSpec("Mistral 7B", n_layers=32, n_heads=32, n_kv_heads=8, head_dim=128,
                  params=7_241_732_096, context=8192, window=4096,
                  source="Mistral 7B paper (arXiv:2310.06825) Table 1; mistralai/Mistral-7B-v0.1 "
                         "(7,241,732,096 parameters from that shape: 32000-token vocabulary, FFN 14336)"),
        ModelSpec("Falcon-7B", n_layers=32, n_heads=71, n_kv_heads=1, head_dim=64,
                  params=7_000_000_000, context=2048,
                  source="tiiuae/falcon-7b model card and config.json (hidden 4544 = 71 x 64, multi_query); "
                         "parameters: the card's nominal '7B'"),
        ModelSpec("OPT-13B", n_layers=40, n_heads=40, n_kv_heads=40, head_dim=128,
                  params=13_000_000_000, context=2048,
                  source="OPT paper (arXiv:2205.01068) Table 1 (40 layers, 40 heads, d_model 5120); "
                         "vLLM paper (arXiv:2309.06180) Figure 1: 13B parameters, 26 GB in FP16"),
        ModelSpec("DeepSeek 67B", n_layers=95, n_heads=64, n_kv_heads=8, head_dim=128,
                  params=67_000_000_000, context=4096,
                  source="DeepSeek LLM paper (arXiv:2401.02954) Table 2; the baseline of DeepSeek-V2's "
                         "'93.3% less KV cache'"),
        ModelSpec("DeepSeek-V2", n_layers=60, n_heads=128, n_kv_heads=128, head_dim=128,
                  params=236_000_000_000, context=131_072, d_c=512, d_h_R=64,
                  source="DeepSeek-V2 paper (arXiv:2405.04434) Section 3.1.2 and abstract (236B total, "
                         "21B active); deepseek-ai/DeepSeek-V2 config.json kv_lora_rank, qk_rope_head_dim"),
        ModelSpec("DeepSeek-V3", n_layers=61, n_heads=128, n_kv_heads=128, head_dim=128,
                  params=671_000_000_000, context=131_072, d_c=512, d_h_R=64,
                  source="DeepSeek-V3 paper (arXiv:2412.19437) Section 4.2 and abstract (671B total, "
                         "37B active; the 14B MTP module not counted)"),
    )
}


# Like-for-like comparison: Llama 3.1 70B's 80 layers x 64 heads x 128 wide under every scheme.
CLASS_70B: dict[str, ModelSpec] = {scheme: scheme_variant(PRESETS["Llama 3.1 70B"], scheme) for scheme in SCHEMES}


def get(name: str) -> ModelSpec:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r} (known: {', '.join(PRESETS)})") from None
