"""Reformer LSH attention: hash, sort, chunk, attend within the bucket.

Kitaev, Kaiser & Levskaya 2020, "Reformer: The Efficient Transformer"
(arXiv:2001.04451), Section 2:

* Shared-QK: keys are the queries, unit-normalised, k_j = q_j / ||q_j||, so a query
  and its key always hash alike.
* Angular LSH with a random rotation R of shape (D, b/2): h(x) = argmax([xR; -xR]),
  one of b buckets (b even).
* Sort the tokens by (bucket, position), cut the sorted order into chunks of m, and
  let every chunk attend to itself and to the previous chunk, keeping only the pairs
  in the same bucket.
* A token does not attend to itself unless it has no other target: its own score is
  replaced by a large negative constant (``SELF_SCORE``), so it matters only when it
  is alone.
* Multi-round LSH: n_r independent hashes; the rounds' outputs are combined with
  weights exp(z_r - z) from their log-sum-exps, after each score is lowered by
  log N_ij, the number of rounds in which j is in i's window, so no pair counts twice.
  The result is exactly softmax attention over the union of the rounds' pairs.

``round_pairs`` / ``bucket_pairs`` list each round's scored / same-bucket pairs, and
``shared_qk_scores`` the exact scores, for measuring which top keys the hash finds.

This module does the non-causal, single-head case. Costs, with kv = 2m keys per chunk
(m when one chunk holds everything):
    FLOPs = n_r * (N D b + 4 N kv D)   (hashing: N x D times D x b/2, counted as 2 N D b/2;
                                        then scores and weighted sums of every chunk)
    working set = 8 bytes * (n_r N (D + 1) per-round outputs and log-sum-exps
                             + N D (1 + 2 kv / m) one round's gathered q, k, v
                             + 3 N kv one round's scores, counts and weights)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kernels.approx.checks import FLOAT_BYTES, as_matrix, check_positive_int, default_scale
from kernels.approx.result import ApproxResult, Baseline, Coverage, Pairs

SELF_SCORE = -1e5  # a token's score for itself: exp(-1e5) underflows unless nothing else is visible


@dataclass(frozen=True)
class LSHHashes:
    """The bucketing of every round: what the LSH animation draws."""

    buckets: np.ndarray  # (n_rounds, N) int: h(k_j) in round r
    order: np.ndarray  # (n_rounds, N) int: positions sorted by (bucket, position)
    rotations: np.ndarray  # (n_rounds, D, n_buckets // 2) the random R of each round
    chunk_size: int  # m: sorted positions per chunk

    @property
    def chunk_of(self) -> np.ndarray:
        """(n_rounds, N) the chunk each position lands in after sorting."""
        rank = np.argsort(self.order, axis=1)  # rank[r, t] = where position t sits in the sorted order
        return rank // self.chunk_size


def shared_keys(q) -> np.ndarray:
    """k_j = q_j / ||q_j||: Reformer's shared-QK keys (Section 2, "Shared-QK")."""
    q = as_matrix(q, "q")
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def lsh_hash(q, *, n_buckets: int, n_rounds: int = 1, chunk_size: int, seed: int = 0) -> LSHHashes:
    """Hash the shared keys with n_rounds random rotations; sort and chunk."""
    q = as_matrix(q, "q")
    n, d = q.shape
    b = check_positive_int(n_buckets, "n_buckets")
    if b % 2:
        raise ValueError(f"n_buckets must be even (argmax over [xR; -xR]), got {b}")
    n_rounds = check_positive_int(n_rounds, "n_rounds")
    m = check_positive_int(chunk_size, "chunk_size")
    if n % m:
        raise ValueError(f"chunk_size must divide N = {n}, got {m}")
    rotations = np.random.default_rng(seed).standard_normal((n_rounds, d, b // 2))  # (n_r, D, b/2)
    xr = np.einsum("nd,rdb->rnb", shared_keys(q), rotations)  # (n_r, N, b/2)
    buckets = np.argmax(np.concatenate([xr, -xr], axis=2), axis=2)  # (n_r, N)
    order = np.argsort(buckets * n + np.arange(n), axis=1, kind="stable")  # (n_r, N)
    return LSHHashes(buckets, order, rotations, m)


def _chunk_keys(order_r: np.ndarray, m: int) -> np.ndarray:
    """(n_chunks, kv) positions each chunk attends to: its own chunk, then the previous one."""
    chunks = order_r.reshape(-1, m)  # (n_chunks, m)
    if chunks.shape[0] == 1:
        return chunks  # one chunk: its "previous" chunk is itself, never count it twice
    return np.concatenate([chunks, np.roll(chunks, 1, axis=0)], axis=1)  # (n_chunks, 2m), chunk 0 wraps


def _round_window(hashes: LSHHashes, r: int):
    """Round r's chunked layout: (qpos, kpos, same, is_self).

    qpos (n_chunks, m): the query positions of each chunk; kpos (n_chunks, kv): the key
    positions each chunk scores (its own chunk, then the previous one); same and is_self
    (n_chunks, m, kv): the query and key share round r's bucket / are one token.
    """
    m = hashes.chunk_size
    qpos = hashes.order[r].reshape(-1, m)  # (n_chunks, m)
    kpos = _chunk_keys(hashes.order[r], m)  # (n_chunks, kv)
    same = hashes.buckets[r][qpos][:, :, None] == hashes.buckets[r][kpos][:, None, :]
    is_self = qpos[:, :, None] == kpos[:, None, :]
    return qpos, kpos, same, is_self


def round_pairs(hashes: LSHHashes) -> tuple[Pairs, ...]:
    """The pairs each round lets take part: same bucket, key in the query's chunk or the
    previous one, the token itself excluded. Their union is ``lsh_attention``'s pairs."""
    n = hashes.order.shape[1]
    rounds = []
    for r in range(hashes.order.shape[0]):
        qpos, kpos, same, is_self = _round_window(hashes, r)
        keep = same & ~is_self  # (n_chunks, m, kv)
        rows = np.broadcast_to(qpos[:, :, None], keep.shape)[keep]
        cols = np.broadcast_to(kpos[:, None, :], keep.shape)[keep]
        rounds.append(Pairs.from_coo(n, n, rows, cols))
    return tuple(rounds)


def bucket_pairs(hashes: LSHHashes) -> tuple[Pairs, ...]:
    """Per round, every pair in one bucket (self excluded): what bucketing alone would
    allow before chunking cuts big buckets; ``round_pairs`` is a subset. Builds an
    N x N map, so for N up to a few thousand."""
    n = hashes.order.shape[1]
    off_diagonal = ~np.eye(n, dtype=bool)
    return tuple(Pairs.from_mask((b[:, None] == b[None, :]) & off_diagonal) for b in hashes.buckets)


def lsh_attention_flops(n: int, d: int, n_buckets: int, n_rounds: int, chunk_size: int) -> int:
    """Closed form: n_r * (N D b + 4 N kv D), kv = 2m, or m when there is one chunk."""
    kv = chunk_size if chunk_size == n else 2 * chunk_size
    return n_rounds * (n * d * n_buckets + 4 * n * kv * d)


def lsh_attention_peak_bytes(n: int, d: int, n_rounds: int, chunk_size: int) -> int:
    """Per-round outputs and log-sum-exps + one round's gathered q, k, v, scores, counts, weights."""
    kv = chunk_size if chunk_size == n else 2 * chunk_size
    return FLOAT_BYTES * (n_rounds * n * (d + 1) + n * d * (1 + 2 * kv // chunk_size) + 3 * n * kv)


def lsh_attention(q, v, *, n_buckets: int, n_rounds: int = 1, chunk_size: int, seed: int = 0) -> ApproxResult:
    """Multi-round shared-QK LSH attention. q, v: (N, D); the keys are derived from q.

    ``pairs`` lists the pairs that take part: same bucket and within the chunk window in
    at least one round, the token itself excluded (it is scored, but with SELF_SCORE).
    FLOPs count every score of every chunk, including the cross-bucket ones the mask
    then throws away: that is what the chunked loop computes.
    """
    q = as_matrix(q, "q")
    n, d = q.shape
    v = as_matrix(v, "v", n, d)
    hashes = lsh_hash(q, n_buckets=n_buckets, n_rounds=n_rounds, chunk_size=chunk_size, seed=seed)
    k = shared_keys(q)  # (N, D)
    scale = default_scale(d)
    m = hashes.chunk_size
    chunk_of = hashes.chunk_of  # (n_r, N)
    n_chunks = n // m

    outs = np.zeros((n_rounds, n, d))  # (n_r, N, D) each round's normalised output
    lse = np.zeros((n_rounds, n))  # (n_r, N) each round's log-sum-exp z_r
    flops = n_rounds * 2 * n * d * (n_buckets // 2)  # the hashing rotations
    for r in range(n_rounds):
        qpos, kpos, same, is_self = _round_window(hashes, r)
        s = np.einsum("cmd,ckd->cmk", q[qpos], k[kpos]) * scale  # (n_chunks, m, kv)
        flops += 2 * s.size * d
        # N_ij: the rounds in which j is in i's bucket and in i's chunk window.
        count = np.zeros(s.shape)  # (n_chunks, m, kv)
        for r2 in range(n_rounds):
            ci, cj = chunk_of[r2][qpos][:, :, None], chunk_of[r2][kpos][:, None, :]
            near = (cj == ci) | (cj == (ci - 1) % n_chunks)
            count += (hashes.buckets[r2][qpos][:, :, None] == hashes.buckets[r2][kpos][:, None, :]) & near
        s = np.where(is_self, SELF_SCORE, s)
        s = np.where(same, s - np.log(np.maximum(count, 1.0)), -np.inf)  # count >= 1 wherever same
        z = np.max(s, axis=2, keepdims=True)  # finite: the token itself is always in its bucket
        p = np.exp(s - z)  # (n_chunks, m, kv)
        l_r = p.sum(axis=2, keepdims=True)
        outs[r][qpos] = np.einsum("cmk,ckd->cmd", p / l_r, v[kpos])
        flops += 2 * p.size * d
        lse[r][qpos] = (z + np.log(l_r))[:, :, 0]

    z_all = np.logaddexp.reduce(lse, axis=0)  # (N,) log-sum-exp over every round
    out = np.einsum("rn,rnd->nd", np.exp(lse - z_all), outs)  # (N, D)
    pairs = union_pairs(round_pairs(hashes))
    peak = lsh_attention_peak_bytes(n, d, n_rounds, m)
    return ApproxResult("reformer", out, pairs, flops, peak, Baseline.SHARED_QK, Coverage.SUBSET)


def shared_qk_attention(q, v) -> np.ndarray:
    """The exact attention LSH approximates: every key, k_j = q_j / ||q_j||, self at SELF_SCORE."""
    q = as_matrix(q, "q")
    v = as_matrix(v, "v", *q.shape)
    s = shared_qk_scores(q)  # (N, N)
    p = np.exp(s - s.max(axis=1, keepdims=True))
    return (p / p.sum(axis=1, keepdims=True)) @ v  # (N, D)


def shared_qk_scores(q) -> np.ndarray:
    """(N, N) the scores exact shared-QK attention uses: q_i . k_j / sqrt(D), self at SELF_SCORE."""
    q = as_matrix(q, "q")
    s = q @ shared_keys(q).T * default_scale(q.shape[1])  # (N, N)
    np.fill_diagonal(s, SELF_SCORE)
    return s


def union_pairs(rounds) -> Pairs:
    """The pairs scored in at least one round (all rounds over the same N)."""
    first = rounds[0]
    rows = [np.repeat(np.arange(p.n_q), p.row_lengths) for p in rounds]
    return Pairs.from_coo(first.n_q, first.n_k, np.concatenate(rows), np.concatenate([p.indices for p in rounds]))
