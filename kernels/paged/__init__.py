"""Paged KV-cache memory management (vLLM, arXiv:2309.06180) and the contiguous scheme it
replaced, with a continuous-batching scheduler simulator that runs both on one workload.

- ``blocks``       Block, RefCounter, FreeBlockQueue, BlockPool
- ``block_table``  BlockTable, BlockManager (append, fork + copy-on-write, prefix sharing)
- ``contiguous``   ContiguousAllocator (first fit), Reservation policies of the paper's Orca baselines
- ``workload``     seeded Poisson workloads with ShareGPT / Alpaca length statistics
- ``simulator``    SimConfig, simulate, PagedMemory, ContiguousMemory, SimResult
"""
