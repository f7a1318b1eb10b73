"""Approximate attention of the 2019-2021 era, and the exact chunked attention that ended it.

One module per family; every method takes single-head ``q, k, v`` of shape ``(N, D)``
and returns an :class:`ApproxResult`: its output, the (query, key) pairs it actually
scored (``coverage`` says whether that is a listed subset, all of them, or none: the
low-rank and kernel methods score no pair), and the FLOPs its loops performed. ``measure`` compares them with exact attention.

* ``sparse``          Sparse Transformer strided / fixed, Longformer, BigBird (fixed patterns)
* ``lsh``             Reformer LSH attention (content-based buckets)
* ``lowrank``         Linformer (projections along the sequence)
* ``kernel_features`` Performer FAVOR+, linear attention (elu + 1), the naive ReLU Performer
* ``chunked``         Rabe & Staats chunked exact attention
* ``measure``         error, memory, the retrieval task, the N^2 memory table
"""

from kernels.approx.result import ApproxResult, Baseline, Coverage, Pairs

__all__ = ["ApproxResult", "Baseline", "Coverage", "Pairs"]
