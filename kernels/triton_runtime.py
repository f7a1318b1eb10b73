"""Decide, once per process, whether Triton kernels compile for a GPU or run interpreted.

Triton reads ``TRITON_INTERPRET`` as kernels are defined (``@triton.jit``
picks the interpreter or the compiler), so every kernel module imports this
one *before* ``import triton``::

    from kernels import triton_runtime  # noqa: F401  (must precede `import triton`)

    # isort: split
    import triton

Without a CUDA GPU the kernels run under the Triton interpreter, which executes
each program with NumPy on the CPU. An explicit ``TRITON_INTERPRET`` (``0`` to
force the real compiler, e.g. to compile for a GPU target on a CPU-only
machine) is always respected.
"""

import os

import torch

if "TRITON_INTERPRET" not in os.environ and not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"


def interpreted() -> bool:
    """True when Triton kernels in this process run under the interpreter."""
    from triton import knobs  # imported late: Triton must see the variable set above

    return knobs.runtime.interpret
