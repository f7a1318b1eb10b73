"""Measure every method against exact attention: error, retrieval, FLOPs, memory.

* Generic inputs: q, k, v with i.i.d. N(0, 1) entries (seeded). Error is the relative
  Frobenius error ||out - exact||_F / ||exact||_F against the exact attention the
  method approximates (its ``baseline``), on the same inputs.
* Retrieval task: one query (the last token) must find one key (the second token, so
  that it is not the global token 0 of Longformer and BigBird), far away. The needle key is the query itself (so the shared-QK keys of Reformer match
  too), and its length is set by bisection so that *exact* attention puts
  ``target_weight`` of the query's probability on the needle. Values have a marker
  coordinate: v[:, 0] is 1 at the needle and 0 elsewhere, so out[query, 0] is exactly
  the weight the method gave the needle, for every method here (each output is a
  linear combination of values). It is the simplest long-range lookup: a method that
  never scores the pair, or blurs it into a summary, cannot return the needle.
* Memory: the analytic working set each method states, and a measured proxy, the peak
  of Python's tracemalloc while the method runs (NumPy reports its buffers to it).
* :func:`n2_memory_table`: the bytes of one N x N attention matrix, the "N^2 wall".
* :func:`scaling_curves` and :func:`score_memory`: closed-form FLOPs and score-sized
  memory of each family against N, up to N = 1e6 (the scaling chart).
* :func:`lsh_top_k_recall`: the share of each query's true top-k keys (exact shared-QK
  scores) that Reformer's hashing puts in its bucket and actually scores.
"""

from __future__ import annotations

import tracemalloc
from dataclasses import dataclass, field

import numpy as np

from kernels import reference as ref
from kernels.approx import chunked, kernel_features, lowrank, lsh, sparse
from kernels.approx.checks import check_positive_int, check_qkv, default_scale
from kernels.approx.result import ApproxResult, Baseline

BISECTION_STEPS = 60  # halvings of the needle-length bracket: far below float64 resolution
TASK_QUERY_FROM_END = 1  # the query is the last token ...
TASK_NEEDLE = 1  # ... and the needle the second: far away, and not the global token 0


@dataclass(frozen=True)
class Inputs:
    """One head's self-attention inputs."""

    q: np.ndarray  # (N, D) queries
    k: np.ndarray  # (N, D) keys (Reformer ignores them: its keys are the normalised queries)
    v: np.ndarray  # (N, D) values


def generic_inputs(n: int, d: int, seed: int = 0) -> Inputs:
    """q, k, v with i.i.d. standard normal entries."""
    n, d = check_positive_int(n, "n"), check_positive_int(d, "d")
    q, k, v = np.random.default_rng(seed).standard_normal((3, n, d))
    return Inputs(q, k, v)


def exact_output(inputs: Inputs, baseline: Baseline) -> np.ndarray:
    """The exact attention a method with this baseline approximates. (N, D)."""
    if baseline is Baseline.SHARED_QK:
        return lsh.shared_qk_attention(inputs.q, inputs.v)
    q, k, v = (x[None, None] for x in (inputs.q, inputs.k, inputs.v))
    return ref.attention(q, k, v, causal=baseline is Baseline.CAUSAL)[0, 0]


def relative_error(out, exact) -> float:
    """||out - exact||_F / ||exact||_F."""
    out, exact = np.asarray(out, dtype=np.float64), np.asarray(exact, dtype=np.float64)
    if out.shape != exact.shape:
        raise ValueError(f"out {out.shape} and exact {exact.shape} must have the same shape")
    return float(np.linalg.norm(out - exact) / np.linalg.norm(exact))


@dataclass(frozen=True)
class RetrievalTask:
    """A needle-in-a-haystack lookup for one query."""

    inputs: Inputs  # q, k, v with the needle planted
    query: int  # the position that must retrieve
    needle: int  # the position it must find
    shared_qk: bool  # calibrated for Reformer's shared-QK scores
    exact_weight: float  # exact attention's probability of the needle for the query


def _needle_weight_exact(q, k, query: int, needle: int, shared_qk: bool) -> float:
    """Exact attention probability of ``needle`` in row ``query`` (one row: O(N D))."""
    keys = lsh.shared_keys(q) if shared_qk else k
    s = keys @ q[query] * default_scale(q.shape[1])  # (N,)
    if shared_qk:
        s[query] = lsh.SELF_SCORE
    p = np.exp(s - s.max())
    return float(p[needle] / p.sum())


def retrieval_task(n: int, d: int, seed: int = 0, *, shared_qk: bool = False, target_weight: float = 0.9) -> RetrievalTask:
    """Plant a needle at position 1 for the query at position N - 1 (see the module docstring).

    q[query] = q[needle] = k[needle] = t u, with u the query's random direction and the
    length t found by bisection so that exact attention gives the needle
    ``target_weight``.
    """
    if not 0.0 < target_weight < 1.0:
        raise ValueError(f"target_weight must lie in (0, 1), got {target_weight}")
    if n < 3:
        raise ValueError(f"n must be at least 3 (a query, a needle and a distractor), got {n}")
    base = generic_inputs(n, d, seed)
    query, needle = n - TASK_QUERY_FROM_END, TASK_NEEDLE
    u = base.q[query] / np.linalg.norm(base.q[query])  # (D,)
    v = base.v.copy()
    v[:, 0] = 0.0
    v[needle, 0] = 1.0  # the marker: out[query, 0] is the needle's weight

    def planted(t: float):
        q, k = base.q.copy(), base.k.copy()
        q[query] = q[needle] = k[needle] = t * u
        return q, k

    lo, hi = 0.0, 1.0
    while _needle_weight_exact(*planted(hi), query, needle, shared_qk) < target_weight:
        hi *= 2.0
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        if _needle_weight_exact(*planted(mid), query, needle, shared_qk) < target_weight:
            lo = mid
        else:
            hi = mid
    q, k = planted(hi)
    weight = _needle_weight_exact(q, k, query, needle, shared_qk)
    return RetrievalTask(Inputs(q, k, v), query, needle, shared_qk, weight)


def measured_peak_bytes(fn, *args, **kwargs):
    """(fn(*args, **kwargs), peak bytes tracemalloc saw allocated during the call)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start, _ = tracemalloc.get_traced_memory()
        result = fn(*args, **kwargs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak - start


# --------------------------------------------------------------------------
# The methods, by name, with one budget knob each
# --------------------------------------------------------------------------


def _linformer(inputs: Inputs, *, k: int, projection: str = "pooling", seed: int = 0) -> ApproxResult:
    n = inputs.q.shape[0]
    if projection == "pooling":
        e = lowrank.pooling_projection(n, k)
    elif projection == "gaussian":
        e = lowrank.gaussian_projection(n, k, seed)
    else:
        raise ValueError(f"projection must be 'pooling' or 'gaussian', got {projection!r}")
    return lowrank.linformer_attention(inputs.q, inputs.k, inputs.v, e=e)


METHODS = {
    "strided": lambda x, **p: sparse.strided_attention(x.q, x.k, x.v, **p),
    "fixed": lambda x, **p: sparse.fixed_attention(x.q, x.k, x.v, **p),
    "longformer": lambda x, **p: sparse.longformer_attention(x.q, x.k, x.v, **p),
    "bigbird": lambda x, **p: sparse.bigbird_attention(x.q, x.k, x.v, **p),
    "reformer": lambda x, **p: lsh.lsh_attention(x.q, x.v, **p),
    "linformer": _linformer,
    "performer": lambda x, **p: kernel_features.performer_attention(x.q, x.k, x.v, **p),
    "linear": lambda x, **p: kernel_features.linear_attention(x.q, x.k, x.v, **p),
    "chunked": lambda x, **p: chunked.chunked_attention(x.q, x.k, x.v, **p),
}


def run_method(name: str, inputs: Inputs, **params) -> ApproxResult:
    """Run method ``name`` (a key of METHODS) with its budget ``params``."""
    if name not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {name!r}")
    check_qkv(inputs.q, inputs.k, inputs.v)
    return METHODS[name](inputs, **params)


def default_budgets(n: int) -> dict[str, dict]:
    """Comparable budgets at length N: about 2 sqrt(N) keys per query for the sparse ones.

    Sparse Transformer: stride l = ceil(sqrt(N)). Longformer: window 2l with one global
    token (position 0, a [CLS]-like token). BigBird: window l, the same global token,
    l // 2 random keys. Reformer: 4 rounds of N / 64 buckets in chunks of 32 (a few
    tokens per bucket). Linformer: k = 2l, mean pooling. Performer: m = 256 features.
    """
    n = check_positive_int(n, "n")
    l = sparse.default_stride(n)
    return {
        "strided": {"stride": l},
        "fixed": {"stride": l, "c": max(1, l // 8)},
        "longformer": {"window": 2 * l, "global_tokens": (0,)},
        "bigbird": {"window": l, "global_tokens": (0,), "random_keys": l // 2},
        "reformer": {"n_buckets": max(2, 2 * (n // 128)), "n_rounds": 4, "chunk_size": min(32, n)},
        "linformer": {"k": min(n, 2 * l)},
        "performer": {"n_features": 256},
        "linear": {},
        "chunked": {"query_chunk": 128, "key_chunk": 128},
    }


@dataclass(frozen=True)
class Evaluation:
    """One method at one budget: everything a widget or a post table needs, as plain data."""

    method: str  # a key of METHODS
    params: dict = field(hash=False)  # the budget it ran with
    n: int  # sequence length
    d: int  # head dimension
    coverage: str  # "subset", "all" or "none" (see result.Coverage)
    pairs: int | None  # scored pairs, None when the method scores none
    flops: int  # counted matrix-product FLOPs
    dense_flops: int  # 4 N^2 D, exact attention's, for the ratio
    peak_bytes: int  # the method's analytic working set
    measured_peak_bytes: int  # tracemalloc's peak during the run
    error: float  # relative Frobenius error on generic inputs
    retrieval_weight: float  # the needle's weight in the method's output
    exact_retrieval_weight: float  # the needle's weight under exact attention
    retrieval_error: float  # relative error of the query's output row


def evaluate(name: str, n: int, d: int, seed: int = 0, **params) -> Evaluation:
    """Run ``name`` on generic inputs and on the retrieval task; collect every number."""
    inputs = generic_inputs(n, d, seed)
    result, measured = measured_peak_bytes(run_method, name, inputs, **params)
    error = relative_error(result.out, exact_output(inputs, result.baseline))

    task = retrieval_task(n, d, seed, shared_qk=result.baseline is Baseline.SHARED_QK)
    found = run_method(name, task.inputs, **params).out[task.query]  # (D,)
    exact_row = exact_output(task.inputs, result.baseline)[task.query]  # (D,)
    return Evaluation(
        method=name,
        params=dict(params),
        n=n,
        d=d,
        coverage=result.coverage.value,
        pairs=None if result.pairs is None else result.pairs.count,
        flops=result.flops,
        dense_flops=4 * n * n * d,
        peak_bytes=result.peak_bytes,
        measured_peak_bytes=measured,
        error=error,
        retrieval_weight=float(found[0]),
        exact_retrieval_weight=task.exact_weight,
        retrieval_error=relative_error(found, exact_row),
    )


def evaluate_all(n: int, d: int, seed: int = 0) -> list[Evaluation]:
    """Every method at :func:`default_budgets` (N): the zoo's table in one call."""
    return [evaluate(name, n, d, seed, **params) for name, params in default_budgets(n).items()]


# --------------------------------------------------------------------------
# The N^2 wall
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class N2MemoryRow:
    """Bytes of the attention matrices one forward pass materialises at length N."""

    n: int  # sequence length
    per_head_bytes: int  # N^2 * bytes per element: one head, one layer
    model_bytes: int  # times heads and layers


def n2_memory_table(ns=(512, 2048, 8192, 32768), *, dtype_bytes: int = 2, heads: int = 16, layers: int = 24) -> list[N2MemoryRow]:
    """One row per N. Defaults: fp16 (2 bytes) and BERT-large's 16 heads x 24 layers
    (Devlin et al. 2019, arXiv:1810.04805, Section 3: L = 24, A = 16)."""
    dtype_bytes = check_positive_int(dtype_bytes, "dtype_bytes")
    heads, layers = check_positive_int(heads, "heads"), check_positive_int(layers, "layers")
    rows = []
    for n in ns:
        per_head = check_positive_int(n, "n") ** 2 * dtype_bytes
        rows.append(N2MemoryRow(n, per_head, per_head * heads * layers))
    return rows


def strided_pair_count(n: int, stride: int) -> int:
    """|S| of :func:`sparse.strided_pattern` without building it, O(N) time: for N up to 1e6.

    Row i has min(i, l) + 1 local keys (t = max(0, i - l), ..., i) and floor(i / l) + 1
    strided ones; they share j = i, and j = i - l when i >= l.
    """
    n, l = check_positive_int(n, "n"), check_positive_int(stride, "stride")
    i = np.arange(n, dtype=np.int64)
    return int(np.sum(np.minimum(i, l) + 1 + i // l + 1 - 1 - (i >= l)))


@dataclass(frozen=True)
class ScalingCurves:
    """FLOPs of each family against N at fixed budgets (for the log-log chart)."""

    ns: np.ndarray  # (P,) sequence lengths
    d: int  # head dimension
    dense: np.ndarray  # (P,) 4 N^2 D
    strided: np.ndarray  # (P,) 4 D |S|, stride ceil(sqrt(N))
    reformer: np.ndarray  # (P,) 4 rounds, chunks of 32, N / 64 buckets
    linformer: np.ndarray  # (P,) 8 N k D with k = 256
    performer: np.ndarray  # (P,) 8 N m D + 4 N m with m = 256


def scaling_curves(ns, d: int = 64, *, rank: int = 256, n_features: int = 256) -> ScalingCurves:
    """The closed-form FLOP counts of each module, evaluated at every N in ``ns``."""
    ns = np.asarray(ns, dtype=np.int64)
    d = check_positive_int(d, "d")
    strided = [4 * d * strided_pair_count(int(n), sparse.default_stride(int(n))) for n in ns]
    chunk = 32
    reformer = [lsh.lsh_attention_flops(int(n), d, max(2, 2 * (int(n) // 128)), 4, min(chunk, int(n))) for n in ns]
    return ScalingCurves(
        ns=ns,
        d=d,
        dense=np.array([chunked.chunked_attention_flops(int(n), d) for n in ns], dtype=np.float64),
        strided=np.array(strided, dtype=np.float64),
        reformer=np.array(reformer, dtype=np.float64),
        linformer=np.array([lowrank.linformer_flops(int(n), d, rank) for n in ns], dtype=np.float64),
        performer=np.array([kernel_features.favor_flops(int(n), d, n_features) for n in ns], dtype=np.float64),
    )


@dataclass(frozen=True)
class ScoreMemory:
    """Elements of the score-sized tensor each family materialises at length N, one head.

    What stands where the N x N attention matrix stood, and what a training step keeps
    for the backward pass: dense N^2 probabilities; the Sparse Transformer's |S| scored
    pairs (stride ceil(sqrt(N))); Reformer's n_r rounds of N x kv chunk scores (kv = 2m);
    Linformer's N x k scores; Performer's two N x m feature matrices and the m x D
    summary. Multiply by the bytes per element (fp16: 2) for bytes.
    """

    ns: np.ndarray  # (P,) sequence lengths
    d: int  # head dimension
    dense: np.ndarray  # (P,) N^2
    strided: np.ndarray  # (P,) |S|
    reformer: np.ndarray  # (P,) 4 rounds x N x 64 (chunks of 32 attend to 2 chunks)
    linformer: np.ndarray  # (P,) N k, k = 256
    performer: np.ndarray  # (P,) 2 N m + m D, m = 256


def score_memory(ns, d: int = 64, *, rank: int = 256, n_features: int = 256) -> ScoreMemory:
    """The closed-form element counts of :class:`ScoreMemory` at every N in ``ns``.

    Budgets are those of :func:`scaling_curves`: Reformer 4 rounds in chunks of 32 (one
    chunk when N <= 32), Linformer k = ``rank``, Performer m = ``n_features``.
    """
    ns = np.asarray(ns, dtype=np.int64)
    d = check_positive_int(d, "d")
    rank, n_features = check_positive_int(rank, "rank"), check_positive_int(n_features, "n_features")
    chunk, rounds = 32, 4
    reformer = [rounds * int(n) * (min(chunk, int(n)) if int(n) <= chunk else 2 * chunk) for n in ns]
    return ScoreMemory(
        ns=ns,
        d=d,
        dense=ns.astype(np.float64) ** 2,
        strided=np.array([strided_pair_count(int(n), sparse.default_stride(int(n))) for n in ns], dtype=np.float64),
        reformer=np.array(reformer, dtype=np.float64),
        linformer=ns.astype(np.float64) * rank,
        performer=2.0 * ns * n_features + n_features * d,
    )


# --------------------------------------------------------------------------
# Does LSH find the keys that matter? Top-k recall
# --------------------------------------------------------------------------


def top_k_keys(scores, k: int) -> np.ndarray:
    """(N, k) each row's k highest-scoring keys, best first (ties: lower index first)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be a 2-D (N_q, N_k) array, got shape {scores.shape}")
    k = check_positive_int(k, "k")
    if k > scores.shape[1]:
        raise ValueError(f"k must be at most N_k = {scores.shape[1]}, got {k}")
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def top_k_hits(top, pairs) -> np.ndarray:
    """(N, k) bool: whether each of a query's top keys is among the pairs it scored."""
    top = np.asarray(top, dtype=np.int64)
    if top.ndim != 2 or top.shape[0] != pairs.n_q:
        raise ValueError(f"top must have shape ({pairs.n_q}, k), got {top.shape}")
    return np.array([np.isin(row, pairs.row(i)) for i, row in enumerate(top)], dtype=bool).reshape(top.shape)


@dataclass(frozen=True)
class LSHRecall:
    """How many of each query's true top-k keys (exact shared-QK scores) LSH lets it see."""

    n: int  # sequence length
    d: int  # head dimension
    k: int  # top keys per query
    params: dict = field(hash=False)  # n_buckets, n_rounds, chunk_size, seed of the hash
    same_bucket: tuple[float, ...]  # per round: share of top-k keys in the query's bucket
    scored: tuple[float, ...]  # per round: share also inside the chunk window (actually scored)
    union_scored: tuple[float, ...]  # after rounds 1..r: share scored in at least one of them
    pairs_per_round: tuple[int, ...]  # pairs each round scores
    union_pairs: int  # pairs scored in at least one round


def lsh_top_k_recall(q, k: int, *, n_buckets: int, n_rounds: int, chunk_size: int, seed: int = 0) -> LSHRecall:
    """Top-k recall of Reformer's hashing on queries q (N, D): per round, and as rounds accumulate."""
    hashes = lsh.lsh_hash(q, n_buckets=n_buckets, n_rounds=n_rounds, chunk_size=chunk_size, seed=seed)
    top = top_k_keys(lsh.shared_qk_scores(q), k)  # (N, k)
    rounds = lsh.round_pairs(hashes)
    unions = [lsh.union_pairs(rounds[: r + 1]) for r in range(n_rounds)]
    n, d = np.shape(q)
    return LSHRecall(
        n=n,
        d=d,
        k=k,
        params={"n_buckets": n_buckets, "n_rounds": n_rounds, "chunk_size": chunk_size, "seed": seed},
        same_bucket=tuple(float(top_k_hits(top, p).mean()) for p in lsh.bucket_pairs(hashes)),
        scored=tuple(float(top_k_hits(top, p).mean()) for p in rounds),
        union_scored=tuple(float(top_k_hits(top, p).mean()) for p in unions),
        pairs_per_round=tuple(p.count for p in rounds),
        union_pairs=unions[-1].count,
    )
