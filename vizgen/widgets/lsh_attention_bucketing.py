"""lsh-attention-bucketing: Reformer's hashing of real vectors, round by round.

Kitaev, Kaiser & Levskaya 2020 (arXiv:2001.04451), Section 2: with shared-QK the keys
are the unit-normalised queries; a random matrix R (D x b/2) hashes each key to
h(x) = argmax([xR; -xR]); tokens are sorted by bucket, cut into chunks of m, and each
chunk scores its own chunk and the previous one, same-bucket pairs only; several
rounds with independent R are combined. Everything here runs `kernels.approx.lsh`
(`lsh_hash`, `round_pairs`, `bucket_pairs`) on seeded N(0, 1) queries.

D = 2 so the geometry is exact on screen, as in the paper's own 2-D Figure 1: a key's
bucket depends only on its angle, so every bucket is an angular sector. The sector
edges are computed, not drawn by eye: buckets can only change where two signed columns
of R tie, so the hash of one point between consecutive tie angles labels each sector.

The readout is top-k recall: of each query's k best keys under exact shared-QK
attention, the share in its bucket and the share actually scored, per round and for
the union of rounds; the same measure at N = 1024, D = 64 is computed for the post.
"""

from __future__ import annotations

import numpy as np

from kernels.approx import lsh, measure

N = 32  # tokens: few enough to draw every point, chord and matrix cell
HEAD_DIM = 2  # D = 2: the rotation and its sectors are exact in the plane
N_BUCKETS = 4  # b: in 2-D, R has b/2 = 2 columns and the signed ones give 4 sectors
CHUNK_SIZE = 8  # m = N/b, the mean bucket size: a chunk and its predecessor span twice that
N_ROUNDS = 2  # enough to show a second hash recovering keys the first one split off
TOP_K = 4  # the keys that carry most of a query's exact attention
INPUT_SEED = 0  # measure.generic_inputs' seed: the same N(0, 1) inputs as the rest of Part 2
MIN_SECTOR_DEG = 45.0  # every sector of every round at least this wide, so all four read on screen
MAX_SEEDS = 200  # hash seeds tried before giving up
DIGITS = 4  # decimals kept for coordinates and angles in the trace
LARGE_N, LARGE_D = 1024, 64  # the post's larger setting: measure.default_budgets(1024)'s Reformer
LARGE_ROUNDS = 8  # rounds shown for the larger setting (the default budget uses 4)


def _queries() -> np.ndarray:
    """(N, D) the queries: measure.generic_inputs, as every Part 2 measurement uses."""
    return measure.generic_inputs(N, HEAD_DIM, INPUT_SEED).q


def _hash(q: np.ndarray, seed: int) -> lsh.LSHHashes:
    return lsh.lsh_hash(q, n_buckets=N_BUCKETS, n_rounds=N_ROUNDS, chunk_size=CHUNK_SIZE, seed=seed)


def _tie_angles(rotation: np.ndarray) -> np.ndarray:
    """(T,) sorted angles in [0, 2 pi) where two signed columns of R (2, b/2) score alike.

    The bucket of a unit vector u(t) = (cos t, sin t) is argmax_c u . w_c over the b
    signed columns w; it can only change where u . (w_a - w_c) = 0 for some a != c.
    """
    w = np.concatenate([rotation, -rotation], axis=1)  # (2, b)
    diffs = [w[:, a] - w[:, c] for a in range(w.shape[1]) for c in range(a + 1, w.shape[1])]
    angles = [np.arctan2(dy, dx) + side for dx, dy in diffs for side in (np.pi / 2, -np.pi / 2)]
    return np.unique(np.mod(angles, 2 * np.pi))


def sectors(q: np.ndarray, seed: int) -> list[list[tuple[float, float, int]]]:
    """Per round, the buckets as angular sectors (start, end, bucket), radians, start < end.

    Each stretch between consecutive tie angles is labelled by hashing its midpoint
    with the same seeded rotations (lsh_hash draws R from the seed alone).
    """
    rotations = _hash(q, seed).rotations  # (n_r, 2, b/2)
    ties = [_tie_angles(rotations[r]) for r in range(N_ROUNDS)]
    result = []
    for r, t in enumerate(ties):
        ends = np.append(t[1:], t[0] + 2 * np.pi)  # (T,) each stretch runs t[i] .. ends[i]
        mids = (t + ends) / 2
        ring = np.stack([np.cos(mids), np.sin(mids)], axis=1)  # (T, 2) unit vectors
        labels = lsh.lsh_hash(ring, n_buckets=N_BUCKETS, n_rounds=N_ROUNDS, chunk_size=len(ring), seed=seed).buckets[r]
        result.append(_merge(t, ends, labels))
    return result


def _merge(starts, ends, labels) -> list[tuple[float, float, int]]:
    """Join neighbouring stretches of one bucket, including across angle 0."""
    merged: list[list] = []
    for a, b, label in zip(starts, ends, labels):
        if merged and merged[-1][2] == label:
            merged[-1][1] = b
        else:
            merged.append([a, b, int(label)])
    if len(merged) > 1 and merged[0][2] == merged[-1][2]:
        last = merged.pop()
        merged[0][0] = last[0] - 2 * np.pi
    return [(float(a), float(b), label) for a, b, label in merged]


def _sector_widths_ok(secs) -> bool:
    return all(len(s) == N_BUCKETS and min(b - a for a, b, _ in s) >= np.radians(MIN_SECTOR_DEG) for s in secs)


def choose_seed(q: np.ndarray) -> int:
    """The first hash seed with four readable sectors per round whose second round
    scores some top-k key the first one missed. Deterministic, documented by code."""
    top = measure.top_k_keys(lsh.shared_qk_scores(q), TOP_K)
    for seed in range(MAX_SEEDS):
        if not _sector_widths_ok(sectors(q, seed)):
            continue
        rounds = lsh.round_pairs(_hash(q, seed))
        if measure.top_k_hits(top, lsh.union_pairs(rounds)).sum() > measure.top_k_hits(top, rounds[0]).sum():
            return seed
    raise RuntimeError(f"no hash seed below {MAX_SEEDS} gives {N_BUCKETS} sectors of {MIN_SECTOR_DEG} degrees")


def _pair_list(pairs) -> list[list[int]]:
    """[[i, j], ...] the scored (query, key) pairs, by query then key."""
    rows = np.repeat(np.arange(pairs.n_q), pairs.row_lengths)
    return np.stack([rows, pairs.indices], axis=1).tolist()


def _round_data(r, hashes, secs, top, bucket_pairs, pairs) -> dict:
    hits_bucket = measure.top_k_hits(top, bucket_pairs)  # (N, k)
    hits = measure.top_k_hits(top, pairs)  # (N, k)
    return {
        "columns": np.round(hashes.rotations[r].T, DIGITS),  # (b/2, 2): r_1 .. r_{b/2}
        "sectors": [[round(a, DIGITS), round(b, DIGITS), label] for a, b, label in secs],
        "buckets": hashes.buckets[r],
        "order": hashes.order[r],
        "chunk_of": hashes.chunk_of[r],
        "bucket_sizes": np.bincount(hashes.buckets[r], minlength=N_BUCKETS),
        "pairs": _pair_list(pairs),
        "pair_count": pairs.count,
        "bucket_pair_count": bucket_pairs.count,
        "hits_bucket": hits_bucket,
        "hits": hits,
        "recall_bucket": float(hits_bucket.mean()),
        "recall": float(hits.mean()),
        "cut": int((hits_bucket & ~hits).sum()),  # top-k keys in the bucket that chunking left out
    }


def _window(hashes, r: int, i: int) -> list[int]:
    """The chunks query i scores in round r: its own, then the previous one (chunk 0 wraps)."""
    n_chunks = hashes.order.shape[1] // hashes.chunk_size
    c = int(hashes.chunk_of[r][i])
    return [c, (c - 1) % n_chunks]


def _focus(round_hits, union_hits) -> int:
    """The query the second round helps most (ties: lowest index): it is highlighted."""
    gain = union_hits.sum(axis=1) - round_hits.sum(axis=1)  # (N,)
    return int(np.argmax(gain))


def large_recall() -> measure.LSHRecall:
    """Top-k recall at N = 1024, D = 64 with the Reformer budget of measure.default_budgets."""
    budget = dict(measure.default_budgets(LARGE_N)["reformer"], n_rounds=LARGE_ROUNDS)
    q = measure.generic_inputs(LARGE_N, LARGE_D, INPUT_SEED).q
    return measure.lsh_top_k_recall(q, TOP_K, **budget)


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def trace() -> dict:
    q = _queries()  # (N, 2)
    seed = choose_seed(q)
    hashes = _hash(q, seed)
    keys = lsh.shared_keys(q)  # (N, 2) on the unit circle
    top = measure.top_k_keys(lsh.shared_qk_scores(q), TOP_K)  # (N, k)
    rounds_p, buckets_p = lsh.round_pairs(hashes), lsh.bucket_pairs(hashes)
    union = lsh.union_pairs(rounds_p)
    rounds = [_round_data(r, hashes, s, top, buckets_p[r], rounds_p[r]) for r, s in enumerate(sectors(q, seed))]
    union_hits = measure.top_k_hits(top, union)
    focus = _focus(rounds[0]["hits"], union_hits)
    for r, rd in enumerate(rounds):
        rd["focus_window"] = _window(hashes, r, focus)
    large = large_recall()
    data = {
        "n": N, "d": HEAD_DIM, "n_buckets": N_BUCKETS, "chunk_size": CHUNK_SIZE, "k": TOP_K,
        "n_rounds": N_ROUNDS, "seed": seed, "input_seed": INPUT_SEED,
        "q": np.round(q, DIGITS), "keys": np.round(keys, DIGITS), "top": top,
        "rounds": rounds,
        "union": {"pairs": _pair_list(union), "pair_count": union.count, "hits": union_hits,
                  "recall": float(union_hits.mean())},
        "all_pairs": N * (N - 1),
        "focus": focus,
        "large": _large_data(large),
    }
    data["steps"] = _steps(data)
    return {"data": data, "facts": _facts(data, large)}


def _large_data(large: measure.LSHRecall) -> dict:
    all_pairs = large.n * (large.n - 1)
    return {
        "n": large.n, "d": large.d, "k": large.k, **large.params,
        "same_bucket": large.same_bucket[0], "scored": large.scored[0],
        "union_scored": list(large.union_scored),
        "density_round": large.pairs_per_round[0] / all_pairs,
        "density_union": large.union_pairs / all_pairs,
    }


def _steps(data) -> list[dict]:
    r0, r1, un = data["rounds"][0], data["rounds"][1], data["union"]
    n, b, m, k, i = data["n"], data["n_buckets"], data["chunk_size"], data["k"], data["focus"]
    sizes = ", ".join(str(s) for s in r0["bucket_sizes"])
    found = lambda hits: int(np.asarray(hits)[i].sum())
    return [
        {"phase": "queries", "round": 0,
         "caption": f"{n} query vectors q_j, D = {data['d']}, drawn from N(0, 1) (seed {data['input_seed']}). "
                    f"Exact attention would score all {data['all_pairs']} pairs."},
        {"phase": "keys", "round": 0,
         "caption": "Shared-QK: each key is its query scaled to length 1, k_j = q_j/‖q_j‖. "
                    "Only the direction matters now: every key lies on the unit circle."},
        {"phase": "rotate", "round": 0,
         "caption": f"Round 1 draws a random R ({data['d']} × {b // 2}): its columns r₁, r₂ and their negatives "
                    f"give {b} directions. Each key is projected on all of them: [xR; −xR]."},
        {"phase": "bucket", "round": 0,
         "caption": f"h(x) = argmax([xR; −xR]): each key takes the direction it points along most. "
                    f"In 2-D every bucket is an angular sector; bucket sizes {sizes}."},
        {"phase": "sort", "round": 0,
         "caption": "Sort the tokens by (bucket, position): tokens of one bucket now sit side by side."},
        {"phase": "chunk", "round": 0,
         "caption": f"Cut the sorted order into chunks of m = {m}. Each chunk scores itself and the chunk before it: "
                    f"{2 * m} keys per query, whatever N is."},
        {"phase": "pairs", "round": 0,
         "caption": f"Scored: same bucket and inside that window, {r0['pair_count']} of {data['all_pairs']} pairs. "
                    f"{_pct(r0['recall_bucket'])} of the true top-{k} keys share the query's bucket; "
                    f"chunking cuts that to {_pct(r0['recall'])}."},
        {"phase": "focus", "round": 0, "caption": _focus_caption(data)},
        {"phase": "bucket", "round": 1,
         "caption": "Round 2 hashes again with an independent random R: new sectors, new buckets. "
                    "Keys that round 1 separated, by a sector edge or a chunk boundary, get a second chance."},
        {"phase": "pairs", "round": 1,
         "caption": f"Round 2 sorts and chunks again and scores {r1['pair_count']} pairs; "
                    f"{_pct(r1['recall'])} of the top-{k} keys on its own."},
        {"phase": "union", "round": 1,
         "caption": f"Attention runs over the union of both rounds: {un['pair_count']} pairs "
                    f"({_pct(un['pair_count'] / data['all_pairs'])} of all), {_pct(un['recall'])} of the top-{k} keys. "
                    f"Query {i} now sees {found(un['hits'])} of its {k}."},
    ]


def _focus_caption(data) -> str:
    """Why round 1 misses some of the focus query's top keys: a sector edge, or the chunk window."""
    r0, i, k = data["rounds"][0], data["focus"], data["k"]
    scored = int(np.sum(r0["hits"][i]))
    in_bucket = int(np.sum(r0["hits_bucket"][i]))
    reasons = []
    if k - in_bucket:
        reasons.append(f"{k - in_bucket} across a sector edge (another bucket)")
    if in_bucket - scored:
        reasons.append(f"{in_bucket - scored} in its bucket but outside its window (its own chunk and the one before)")
    return f"Query {i}: round 1 scores {scored} of its top-{k} keys. Missed: " + "; ".join(reasons) + "."


def _facts(data, large: measure.LSHRecall) -> dict:
    r0, r1, un, big = data["rounds"][0], data["rounds"][1], data["union"], data["large"]
    return {
        "n": N, "d": HEAD_DIM, "n_buckets": N_BUCKETS, "chunk_size": CHUNK_SIZE, "top_k": TOP_K,
        "seed": data["seed"],
        "all_pairs": data["all_pairs"],
        "round1_pairs": r0["pair_count"], "round2_pairs": r1["pair_count"], "union_pairs": un["pair_count"],
        "round1_same_bucket": _pct(r0["recall_bucket"]),
        "round1_recall": _pct(r0["recall"]),
        "round2_recall": _pct(r1["recall"]),
        "union_recall": _pct(un["recall"]),
        "large_n": large.n, "large_d": large.d,
        "large_buckets": large.params["n_buckets"], "large_chunk": large.params["chunk_size"],
        "large_same_bucket": _pct(big["same_bucket"]),
        "large_recall_1": _pct(large.union_scored[0]),
        "large_recall_4": _pct(large.union_scored[3]),
        "large_recall_8": _pct(large.union_scored[7]),
        "large_density_1": f"{100 * big['density_round']:.1f}%",
        "large_density_union_8": f"{100 * big['density_union']:.1f}%",
    }
