"""Fixed sparse patterns: Sparse Transformer, Longformer, BigBird.

Each pattern is a set of (query, key) pairs fixed before the data is seen; attention
is the ordinary softmax restricted to them:

    out_i = sum_{j in S_i} softmax_j(q_i . k_j / sqrt(D)) v_j

* Child et al. 2019, "Generating Long Sequences with Sparse Transformers"
  (arXiv:1904.10509), Sections 4-5 (the two factorized patterns, and the ways to
  give them to heads). Autoregressive, so every S_i is within j <= i.
  *Strided*: A1_i = {t, ..., i} with t = max(0, i - l) and A2_i = {j : (i - j) mod l = 0}.
  *Fixed*: A1_i = {j : floor(j / l) = floor(i / l)} and A2_i = {j : j mod l in {l - c, ..., l - 1}}
  ("summary" columns at the end of each block). The paper gives A1 and A2 to separate
  heads or interleaved layers, or merges them in one head; we build the merged head,
  S_i = A1_i | A2_i, intersected with j <= i. With l ~ sqrt(N) each row has
  O(sqrt(N)) pairs: O(N sqrt(N)) in all.
* Beltagy et al. 2020, "Longformer" (arXiv:2004.05150), Section 3.1: a sliding window
  of w keys around each query (w/2 on each side), plus global tokens that attend to
  every key and are attended to by every query (symmetric).
* Zaheer et al. 2020, "Big Bird" (arXiv:2007.14062), Section 2: window + global + r
  random keys per query. The paper's implementation works on blocks; this is the
  token-level graph of its Section 2 description.

The engine :func:`sparse_attention` computes exactly the pairs in a :class:`Pairs` and
nothing else: a few queries at a time (at most ``PAIRS_PER_STEP`` padded slots) it
gathers their keys, padded to the longest row of the step, scores them, masks the
padding and normalises.
FLOPs = 4 * D * |S| (2 D for q . k and 2 D for p v per pair).
"""

from __future__ import annotations

import math

import numpy as np

from kernels.approx.checks import FLOAT_BYTES, check_positive_int, check_qkv, default_scale
from kernels.approx.result import ApproxResult, Baseline, Coverage, Pairs

PAIRS_PER_STEP = 1 << 12  # padded (query, key) slots gathered per step: bounds the working set
ROWS_PER_STEP = 256  # pattern rows built at once: a (256, N) mask, never (N, N)


def _pattern(n: int, rule, extra_rows=(), extra_cols=()) -> Pairs:
    """Pairs where ``rule(i, j)`` holds, built ROWS_PER_STEP rows at a time, plus extra pairs.

    ``rule`` takes query positions ``i`` of shape (rows, 1) and key positions ``j`` of
    shape (1, N) and returns a (rows, N) bool; building it by row blocks keeps N = 8192
    patterns within a few MB.
    """
    j = np.arange(n)[None, :]  # (1, N) key positions
    rows, cols = [np.asarray(extra_rows, dtype=np.int64)], [np.asarray(extra_cols, dtype=np.int64)]
    for start in range(0, n, ROWS_PER_STEP):
        i = np.arange(start, min(start + ROWS_PER_STEP, n))[:, None]  # (rows, 1)
        r, c = np.nonzero(rule(i, j))
        rows.append(r + start)
        cols.append(c)
    return Pairs.from_coo(n, n, np.concatenate(rows), np.concatenate(cols))


def strided_pattern(n: int, stride: int) -> Pairs:
    """Sparse Transformer strided pattern (merged head), causal. ``stride`` is l."""
    n, l = check_positive_int(n, "n"), check_positive_int(stride, "stride")

    def rule(i, j):
        a1 = j >= np.maximum(0, i - l)  # t = max(0, i - l), ..., i
        a2 = (i - j) % l == 0  # every l-th position back
        return (a1 | a2) & (j <= i)

    return _pattern(n, rule)


def fixed_pattern(n: int, stride: int, c: int) -> Pairs:
    """Sparse Transformer fixed pattern (merged head), causal: own block + summary columns."""
    n, l, c = check_positive_int(n, "n"), check_positive_int(stride, "stride"), check_positive_int(c, "c")
    if c > l:
        raise ValueError(f"c must be at most stride ({l}), got {c}")

    def rule(i, j):
        a1 = (j // l) == (i // l)  # same block of l
        a2 = (j % l) >= l - c  # the last c positions of every block
        return (a1 | a2) & (j <= i)

    return _pattern(n, rule)


def _check_global(global_tokens, n: int) -> np.ndarray:
    g = np.asarray(global_tokens, dtype=np.int64).reshape(-1)
    if np.any((g < 0) | (g >= n)):
        raise ValueError(f"global_tokens must lie in [0, {n}), got {g.tolist()}")
    return g


def _window_and_global_rule(n: int, window: int, global_tokens):
    """|i - j| <= w/2 (w/2 keys each side and the query itself), or i or j global."""
    half = check_positive_int(window, "window") // 2
    g = _check_global(global_tokens, n)
    return lambda i, j: (np.abs(i - j) <= half) | np.isin(i, g) | np.isin(j, g)


def longformer_pattern(n: int, window: int, global_tokens=()) -> Pairs:
    """Longformer: sliding window of ``window`` keys (w/2 per side) + symmetric global tokens."""
    n = check_positive_int(n, "n")
    return _pattern(n, _window_and_global_rule(n, window, global_tokens))


def bigbird_pattern(n: int, window: int, global_tokens=(), random_keys: int = 0, seed: int = 0) -> Pairs:
    """BigBird: the Longformer graph plus ``random_keys`` keys per query drawn without replacement."""
    n = check_positive_int(n, "n")
    if isinstance(random_keys, bool) or not isinstance(random_keys, int) or not 0 <= random_keys <= n:
        raise ValueError(f"random_keys must be an int in [0, {n}], got {random_keys!r}")
    rng = np.random.default_rng(seed)
    random_cols = [rng.choice(n, size=random_keys, replace=False) for _ in range(n)]
    rows = np.repeat(np.arange(n), random_keys)
    cols = np.concatenate(random_cols) if random_keys else np.zeros(0, dtype=np.int64)
    return _pattern(n, _window_and_global_rule(n, window, global_tokens), rows, cols)


def _row_blocks(lengths: np.ndarray):
    """Group query rows into gather steps of at most PAIRS_PER_STEP padded slots.

    Rows go longest first, so rows of similar length share a step and a Longformer
    global row (length N) does not pad many window rows to N. Each step takes
    ``max(1, PAIRS_PER_STEP // width)`` rows, ``width`` being its longest row. Yields
    (rows, width) with ``rows`` an int array of query indices.
    """
    order = np.argsort(-lengths, kind="stable")  # longest rows first
    order = order[: np.count_nonzero(lengths)]  # rows that score nothing keep a zero output
    start = 0
    while start < order.shape[0]:
        width = int(lengths[order[start]])
        stop = min(start + max(1, PAIRS_PER_STEP // width), order.shape[0])
        yield order[start:stop], width
        start = stop


def sparse_attention_flops(pairs: Pairs, d: int) -> int:
    """Closed form: 4 * D * |S|."""
    return 4 * d * pairs.count


def sparse_attention_peak_bytes(pairs: Pairs, d: int) -> int:
    """Output (N, D) + the largest gather step: its keys and values (rows, width, D) and scores.

    A step holds at most PAIRS_PER_STEP padded slots, or one row when a row is longer.
    """
    slots = max((rows.shape[0] * width for rows, width in _row_blocks(pairs.row_lengths)), default=0)
    return FLOAT_BYTES * (pairs.n_q * d + slots * (2 * d + 1))


def sparse_attention(q, k, v, pairs: Pairs, *, method: str = "sparse", baseline: Baseline = Baseline.FULL) -> ApproxResult:
    """Softmax attention over exactly the pairs in ``pairs``. q, k, v: (N, D).

    A query with no pair gets a zero output row (the oracle's convention).
    """
    q, k, v = check_qkv(q, k, v)
    n, d = q.shape
    if (pairs.n_q, pairs.n_k) != (n, n):
        raise ValueError(f"pairs must be {n}x{n} to match q, got {pairs.n_q}x{pairs.n_k}")
    scale = default_scale(d)
    out = np.zeros((n, d))  # (N, D)
    flops = 0
    lengths = pairs.row_lengths
    for rows, width in _row_blocks(lengths):
        slot = np.arange(width)[None, :]  # (1, L)
        valid = slot < lengths[rows, None]  # (rows, L) real pairs, not padding
        at = np.where(valid, pairs.indptr[rows, None] + slot, 0)  # (rows, L) positions in indices
        keys = np.where(valid, pairs.indices[at], 0)  # (rows, L) key positions, padding -> key 0
        k_g, v_g = k[keys], v[keys]  # (rows, L, D) gathered keys and values
        s = np.einsum("md,mld->ml", q[rows], k_g) * scale  # (rows, L)
        s = np.where(valid, s, -np.inf)
        p = np.exp(s - s.max(axis=1, keepdims=True))  # (rows, L); every row has a real pair
        out[rows] = np.einsum("ml,mld->md", p, v_g) / p.sum(axis=1, keepdims=True)
        flops += 4 * d * int(valid.sum())
    return ApproxResult(method, out, pairs, flops, sparse_attention_peak_bytes(pairs, d), baseline, Coverage.SUBSET)


def default_stride(n: int) -> int:
    """l = ceil(sqrt(N)), the paper's stride "close to sqrt(n)" (Child et al. 2019, Section 4)."""
    return math.isqrt(n - 1) + 1 if n > 1 else 1


def strided_attention(q, k, v, *, stride: int | None = None) -> ApproxResult:
    """Sparse Transformer strided attention (causal); stride defaults to ceil(sqrt(N))."""
    n = np.shape(q)[0]
    pairs = strided_pattern(n, default_stride(n) if stride is None else stride)
    return sparse_attention(q, k, v, pairs, method="strided", baseline=Baseline.CAUSAL)


def fixed_attention(q, k, v, *, stride: int | None = None, c: int = 1) -> ApproxResult:
    """Sparse Transformer fixed attention (causal); c summary columns per block of l."""
    n = np.shape(q)[0]
    pairs = fixed_pattern(n, default_stride(n) if stride is None else stride, c)
    return sparse_attention(q, k, v, pairs, method="fixed", baseline=Baseline.CAUSAL)


def longformer_attention(q, k, v, *, window: int, global_tokens=()) -> ApproxResult:
    """Longformer sliding window + global attention (bidirectional)."""
    pairs = longformer_pattern(np.shape(q)[0], window, global_tokens)
    return sparse_attention(q, k, v, pairs, method="longformer")


def bigbird_attention(q, k, v, *, window: int, global_tokens=(), random_keys: int = 0, seed: int = 0) -> ApproxResult:
    """BigBird window + global + random attention (bidirectional)."""
    pairs = bigbird_pattern(np.shape(q)[0], window, global_tokens, random_keys, seed)
    return sparse_attention(q, k, v, pairs, method="bigbird")
