"""What every approximate-attention method returns: output, scored pairs, FLOPs.

Cost convention (the one the FlashAttention papers use, arXiv:2205.14135 Section 3.1):
FLOPs are those of the matrix products, 2 per multiply-add; the softmax's exp, max and
division are O(pairs) and left out. Each method counts its FLOPs in its own loops (so
the count is what ran) and states the closed form in its docstring; the tests check
that the two agree.

Memory convention: ``peak_bytes`` counts the float64 arrays alive at the method's
largest moment (scores, gathered keys and values, accumulators, the output), not the
inputs and not the integer index structures (the pairs themselves). Tests hold it
against tracemalloc's measured peak, which also sees NumPy's temporaries.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

# Above this many cells a dense (N_q, N_k) boolean map is refused: 4096 x 4096, 16 MiB.
MAX_DENSE_CELLS = 1 << 24


class Coverage(enum.Enum):
    """Which (query, key) pairs a method scores."""

    SUBSET = "subset"  # a chosen subset, listed in ApproxResult.pairs
    ALL = "all"  # every pair the baseline allows (exact methods); not listed, it would be N^2
    NONE = "none"  # no pair is ever scored: the attention matrix is only implied (low-rank, kernel)


class Baseline(enum.Enum):
    """Which exact attention a method approximates (and is measured against)."""

    FULL = "full"  # softmax(q k^T / sqrt(D)) v over every key
    CAUSAL = "causal"  # the same, keys j <= i only (autoregressive patterns)
    SHARED_QK = "shared_qk"  # Reformer: keys are the unit-normalised queries, self excluded


@dataclass(frozen=True)
class Pairs:
    """The (query, key) pairs a method scored, in compressed sparse rows (CSR).

    Query ``i`` scored keys ``indices[indptr[i]:indptr[i + 1]]``. Invariants: ``indptr``
    starts at 0, never decreases and ends at ``len(indices)``; each row's keys are
    strictly increasing (no duplicates) and lie in ``[0, n_k)``. CSR keeps N = 8192
    patterns small: one int per scored pair instead of N^2 booleans.
    """

    n_q: int  # number of queries (rows)
    n_k: int  # number of keys (columns)
    indptr: np.ndarray  # (n_q + 1,) int64: row i's keys start at indptr[i]
    indices: np.ndarray  # (nnz,) int64: the scored keys, row by row

    def __post_init__(self):
        assert self.indptr.shape == (self.n_q + 1,) and self.indptr[0] == 0
        assert self.indptr[-1] == self.indices.shape[0]
        assert np.all(np.diff(self.indptr) >= 0)

    @classmethod
    def from_mask(cls, mask) -> Pairs:
        """From a dense boolean ``(n_q, n_k)`` map; True marks a scored pair."""
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.ndim != 2:
            raise ValueError(f"mask must be a 2-D bool array, got {mask.dtype} {mask.shape}")
        rows, cols = np.nonzero(mask)  # row-major, so sorted by row then key
        indptr = np.zeros(mask.shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=mask.shape[0]), out=indptr[1:])
        return cls(mask.shape[0], mask.shape[1], indptr, cols.astype(np.int64))

    @classmethod
    def from_coo(cls, n_q: int, n_k: int, rows, cols) -> Pairs:
        """From parallel arrays of query and key indices; duplicates are merged."""
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        assert rows.shape == cols.shape and np.all((cols >= 0) & (cols < n_k))
        flat = np.sort(rows * n_k + cols)  # sorted by row, then key
        flat = flat[np.r_[True, flat[1:] != flat[:-1]]]  # duplicates gone (np.unique hashes: slower)
        rows, cols = flat // n_k, flat % n_k
        indptr = np.zeros(n_q + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n_q), out=indptr[1:])
        return cls(n_q, n_k, indptr, cols)

    @property
    def count(self) -> int:
        """Number of scored pairs (nnz)."""
        return int(self.indices.shape[0])

    @property
    def row_lengths(self) -> np.ndarray:
        """(n_q,) keys scored by each query."""
        return np.diff(self.indptr)

    @property
    def density(self) -> float:
        """Fraction of the n_q * n_k grid that was scored."""
        return self.count / (self.n_q * self.n_k)

    def row(self, i: int) -> np.ndarray:
        """The keys query ``i`` scored, increasing."""
        return self.indices[self.indptr[i] : self.indptr[i + 1]]

    def density_grid(self, cells: int) -> np.ndarray:
        """(cells, cells) fraction of each block of the grid that was scored: for drawing large N.

        Block (a, b) covers queries i with i * cells // n_q == a and keys j with
        j * cells // n_k == b; each entry is scored pairs / block area, in [0, 1].
        """
        if isinstance(cells, bool) or not isinstance(cells, int) or not 0 < cells <= min(self.n_q, self.n_k):
            raise ValueError(f"cells must be an int in [1, {min(self.n_q, self.n_k)}], got {cells!r}")
        rows = np.repeat(np.arange(self.n_q), self.row_lengths) * cells // self.n_q  # (nnz,) block row
        cols = self.indices * cells // self.n_k  # (nnz,) block column
        counts = np.bincount(rows * cells + cols, minlength=cells * cells).reshape(cells, cells)
        height = np.bincount(np.arange(self.n_q) * cells // self.n_q, minlength=cells)  # (cells,) rows per block
        width = np.bincount(np.arange(self.n_k) * cells // self.n_k, minlength=cells)  # (cells,) keys per block
        return counts / np.outer(height, width)

    def dense(self) -> np.ndarray:
        """The ``(n_q, n_k)`` boolean map, for drawing at small N."""
        if self.n_q * self.n_k > MAX_DENSE_CELLS:
            raise ValueError(f"dense map of {self.n_q}x{self.n_k} exceeds {MAX_DENSE_CELLS} cells")
        out = np.zeros((self.n_q, self.n_k), dtype=bool)
        out[np.repeat(np.arange(self.n_q), self.row_lengths), self.indices] = True
        return out


@dataclass(frozen=True)
class ApproxResult:
    """One run of one method on one head."""

    method: str  # e.g. "longformer"
    out: np.ndarray  # (N, D) float64 output
    pairs: Pairs | None  # the scored pairs when coverage is SUBSET, else None
    flops: int  # matrix-product FLOPs counted in the method's loops
    peak_bytes: int  # analytic bytes of the float working set at its largest, output included (formula per method)
    baseline: Baseline  # the exact attention this approximates
    coverage: Coverage  # SUBSET (see pairs), ALL (exact) or NONE (implicit)

    def __post_init__(self):
        assert (self.pairs is not None) == (self.coverage is Coverage.SUBSET)

    @property
    def implicit(self) -> bool:
        """True when the method never forms a score: its attention matrix is only implied."""
        return self.coverage is Coverage.NONE
