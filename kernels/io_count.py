"""Counting the bytes a Triton kernel moves to and from memory, and the paper's model of them.

Exact counts. Under the Triton interpreter every ``tl.load`` / ``tl.store``
ends in the interpreter builder's ``create_masked_load`` /
``create_masked_store`` (unmasked ones too: they pass an all-true mask).
``count_io`` wraps those two methods for the duration of a ``with`` block and
logs, for each call, the bytes of the elements its mask lets through, which
named tensor holds their addresses, and which program issued it; an output
allocated inside the call is named afterwards with ``IOLog.attribute``. These are
the bytes a kernel requests from global memory (HBM on a GPU); a GPU's L2
cache may serve some repeated reads, which no count here can see. Atomics
(``tl.atomic_*``) take another path and are not counted; no kernel here uses them.

This is the only module that touches Triton's private API, and it is pinned
to the release it was written against (pyproject.toml pins it too).

The paper's model. ``paper_io_model`` gives the asymptotic HBM access counts
of Theorem 2 of Dao et al. 2022 (arXiv:2205.14135): standard attention
Theta(N d + N^2), FlashAttention Theta(N^2 d^2 / M) for SRAM size M with
d <= M <= N d. Orders of growth with the constants dropped, not counts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
import torch

from kernels import triton_runtime  # before `import triton`: it picks the interpreter or the GPU compiler

# isort: split
import triton

TRITON_VERSION = "3.8.0"
if triton.__version__ != TRITON_VERSION:
    raise ImportError(f"kernels.io_count hooks private interpreter API of triton=={TRITON_VERSION}; "
                      f"found triton=={triton.__version__}: check triton/runtime/interpreter.py and re-pin")

# isort: split
from triton.runtime import interpreter  # private: imported only after the version check

__all__ = ["Access", "IOLog", "count_io", "paper_io_model"]

UNNAMED = "?"  # the tensor name of an access no named tensor holds


@dataclass(frozen=True)
class Access:
    """The masked-in elements of one load or store that fell in one tensor."""

    program: tuple[int, int, int]  # (tl.program_id(0), tl.program_id(1), tl.program_id(2))
    tensor: str  # the name given in `tensors`, or "?" if no named tensor holds the address
    kind: str  # "load" or "store"
    bytes: int  # masked-in elements x element size
    elements: int


@dataclass
class IOLog:
    """Every access of a ``count_io`` block, in execution order (the interpreter runs programs one by one)."""

    accesses: list[Access] = field(default_factory=list)
    # index in `accesses` of each "?" access -> (its addresses, element size), for attribute()
    _unnamed: dict[int, tuple[np.ndarray, int]] = field(default_factory=dict, init=False, repr=False)

    def total(self, tensor=None, kind=None, program=None) -> int:
        """Bytes moved, optionally only for one tensor name, kind ("load"/"store") and program id."""
        return sum(a.bytes for a in self.accesses if (tensor is None or a.tensor == tensor) and
                   (kind is None or a.kind == kind) and (program is None or a.program == tuple(program)))

    def by_tensor(self) -> dict[str, dict[str, int]]:
        """Bytes per tensor name and kind: ``{"Q": {"load": n, "store": 0}, ...}``."""
        totals = defaultdict(lambda: {"load": 0, "store": 0})
        for a in self.accesses:
            totals[a.tensor][a.kind] += a.bytes
        return dict(totals)

    def by_program(self) -> dict[tuple[int, int, int], int]:
        """Bytes (loads and stores) per program id, in the order programs first moved data."""
        totals = defaultdict(int)
        for a in self.accesses:
            totals[a.program] += a.bytes
        return dict(totals)

    def attribute(self, name: str, tensor: torch.Tensor) -> None:
        """Name the "?" bytes that fell in ``tensor``: for a kernel's output, allocated inside the call.

        Valid while ``tensor`` held its memory through every access logged,
        as an output allocated before the kernel launch and returned does.
        """
        span = _span(name, tensor)
        accesses, unnamed = self.accesses, self._unnamed
        self.accesses, self._unnamed = [], {}
        for i, access in enumerate(accesses):
            if i not in unnamed:
                self.accesses.append(access)
                continue
            addresses, element_bytes = unnamed[i]
            inside = (addresses >= span.start) & (addresses < span.stop)
            self._append(access.program, name, access.kind, addresses[inside], element_bytes)
            self._append(access.program, UNNAMED, access.kind, addresses[~inside], element_bytes)

    def _append(self, program, tensor, kind, addresses, element_bytes):
        """Log the elements at `addresses` (if any) as one access; keep the addresses of unnamed ones."""
        if addresses.size == 0:
            return
        if tensor == UNNAMED:
            self._unnamed[len(self.accesses)] = (addresses, element_bytes)
        self.accesses.append(Access(program, tensor, kind, addresses.size * element_bytes, int(addresses.size)))


@dataclass(frozen=True)
class _Span:
    """The bytes [start, stop) a named tensor's elements occupy."""

    name: str
    start: int
    stop: int


def _span(name, t) -> _Span:
    """The address range of tensor `t`, a view with non-negative strides included."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"tensors[{name!r}] must be a torch.Tensor, got {type(t).__name__}")
    if t.device.type != "cpu":
        # The interpreter copies device tensors to the host, so their addresses never appear.
        raise ValueError(f"tensors[{name!r}] must be on the CPU under the interpreter, got {t.device}")
    last = sum((size - 1) * stride for size, stride in zip(t.shape, t.stride())) if t.numel() else -1
    return _Span(name, t.data_ptr(), t.data_ptr() + (last + 1) * t.element_size())


def _spans(tensors) -> list[_Span]:
    """The named tensors' address ranges, in the dict's order; ValueError if two overlap."""
    if not isinstance(tensors, dict):
        raise ValueError(f"tensors must be a dict of name -> torch.Tensor, got {type(tensors).__name__}")
    spans = [_span(name, t) for name, t in tensors.items()]
    by_address = sorted(spans, key=lambda s: s.start)
    for a, b in pairwise(by_address):
        if b.start < a.stop:  # an address in both would have two names
            raise ValueError(f"tensors {a.name!r} and {b.name!r} overlap in memory")
    return spans


def _record(log, spans, kind, ptrs, mask):
    """Append one Access per named tensor (and one for unnamed addresses) that this load/store touched."""
    addresses = ptrs.data[np.broadcast_to(mask.data, ptrs.data.shape)]  # (masked-in elements,) uint64
    element_bytes = (ptrs.get_element_ty().primitive_bitwidth + 7) // 8  # int1 is stored in a byte
    program = tuple(int(i) for i in interpreter.interpreter_builder.grid_idx)
    unnamed = np.ones(addresses.shape, dtype=bool)
    for span in spans:
        inside = (addresses >= span.start) & (addresses < span.stop)
        unnamed &= ~inside
        log._append(program, span.name, kind, addresses[inside], element_bytes)
    log._append(program, UNNAMED, kind, addresses[unnamed], element_bytes)


def _count_loads(previous, log, spans):
    """The builder's create_masked_load, logging the elements its mask lets through first."""

    def create_masked_load(ptrs, mask, *args, **kwargs):
        _record(log, spans, "load", ptrs, mask)
        return previous(ptrs, mask, *args, **kwargs)

    return create_masked_load


def _count_stores(previous, log, spans):
    """The builder's create_masked_store, logging the elements its mask lets through first."""

    def create_masked_store(ptrs, value, mask, *args, **kwargs):
        _record(log, spans, "store", ptrs, mask)
        return previous(ptrs, value, mask, *args, **kwargs)

    return create_masked_store


@contextmanager
def count_io(tensors: dict[str, torch.Tensor]) -> Iterator[IOLog]:
    """Log every load and store of Triton kernels run inside the block, attributed to ``tensors`` by name.

    Blocks may nest: each logs what runs inside it. The builder is restored
    on exit, error or not. Raises ValueError unless Triton runs interpreted
    or if two named tensors overlap in memory.
    """
    if not triton_runtime.interpreted():
        raise ValueError("count_io needs the Triton interpreter (TRITON_INTERPRET=1 before Triton is imported)")
    spans = _spans(tensors)
    builder = interpreter.interpreter_builder
    hooks = {"create_masked_load": _count_loads, "create_masked_store": _count_stores}
    saved = {name: builder.__dict__.get(name) for name in hooks}  # an enclosing block's hooks, if any
    log = IOLog()
    try:
        for name, hook in hooks.items():
            setattr(builder, name, hook(getattr(builder, name), log, spans))
        yield log
    finally:
        for name, hook in saved.items():
            if hook is None:
                delattr(builder, name)  # back to the class's own method
            else:
                setattr(builder, name, hook)


def paper_io_model(n, head_dim, sram_bytes, itemsize=2) -> dict:
    """Theorem 2 of arXiv:2205.14135: HBM accesses of standard attention and FlashAttention, asymptotically.

    Standard attention needs Theta(N d + N^2) accesses, FlashAttention
    Theta(N^2 d^2 / M), for sequence length N, head dim d and SRAM size M
    (in elements: ``sram_bytes // itemsize``), when d <= M <= N d. These are
    the paper's orders of growth with constants dropped, a model to quote,
    not a count of any kernel's bytes (count_io measures those).

    Returns:
        ``{"M": ..., "standard": N d + N^2, "flash": N^2 d^2 / M,
        "ratio": standard / flash, "in_range": d <= M <= N d}``.
    """
    for name, value in (("n", n), ("head_dim", head_dim), ("sram_bytes", sram_bytes), ("itemsize", itemsize)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive int")
    m = sram_bytes // itemsize
    if m < 1:
        raise ValueError(f"sram_bytes={sram_bytes} holds no element of {itemsize} bytes")
    standard = n * head_dim + n * n
    flash = n * n * head_dim * head_dim / m
    return {"M": m, "standard": standard, "flash": flash, "ratio": standard / flash,
            "in_range": head_dim <= m <= n * head_dim}
