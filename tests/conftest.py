"""Decide interpreter or GPU compiler before any test imports torch's optional Triton
paths (an optimizer step imports torch._dynamo, which imports triton): kernels defined
after an early `import triton` would otherwise miss TRITON_INTERPRET."""

from kernels import triton_runtime  # noqa: F401  (must precede any `import triton`)
