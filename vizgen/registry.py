"""The registry of widgets: what exists, which part of the series it belongs to, and
where its trace function and template live.

Kept free of heavy imports: the MkDocs plugin reads it on every rebuild to decide
whether anything is stale, without importing torch or triton.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


class UnknownWidget(KeyError):
    def __str__(self) -> str:
        known = ", ".join(w.name for w in entries())
        return f"unknown widget {self.args[0]!r} (known: {known})"


@dataclass(frozen=True)
class Widget:
    name: str  # kebab-case, the plan's name without `.html`; also the URL
    part: int  # which post of the series (1-4) it belongs to
    title: str
    module: str  # dotted module defining `trace() -> dict`
    # Height / width of the stacked phone layout, so the embed reserves the right
    # space before the widget loads (no layout shift).
    phone_aspect: float = 1.6
    # True when it shows a model, simulation or emulation rather than measured
    # execution: it must then say so on the canvas (a .viz-model-note).
    model: bool = False
    # Data files (repository-relative) the trace reads: part of its cache key.
    inputs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"widget name {self.name!r} is not kebab-case")
        if self.part not in (1, 2, 3, 4):
            raise ValueError(f"widget {self.name}: part must be 1-4, got {self.part}")

    @property
    def template(self) -> str:
        return f"{self.name}.html"


WIDGETS: tuple[Widget, ...] = (
    Widget(
        name="online-softmax",
        part=3,
        title="Online softmax, streamed through the Triton kernel",
        module="vizgen.widgets.online_softmax",
        phone_aspect=2.3,
    ),
    # Part 3: FlashAttention, in reading order (online-softmax above opens it).
    Widget(
        name="gpu-memory-hierarchy",
        part=3,
        title="The GPU memory hierarchy, and what attention sends through it",
        module="vizgen.widgets.gpu_memory_hierarchy",
        phone_aspect=3.5,
        model=True,
    ),
    Widget(
        name="flash-attention-tiling",
        part=3,
        title="FlashAttention tile by tile: the Triton kernel's grid, replayed",
        module="vizgen.widgets.flash_attention_tiling",
        phone_aspect=2.8,
    ),
    Widget(
        name="fa1-vs-fa2-parallelism",
        part=3,
        title="FlashAttention vs FlashAttention-2: who keeps the SMs busy",
        module="vizgen.widgets.fa1_vs_fa2_parallelism",
        phone_aspect=3.1,
        model=True,
    ),
    Widget(
        name="fa3-warp-specialization",
        part=3,
        title="FlashAttention-3: warp specialization and ping-pong inside one SM",
        module="vizgen.widgets.fa3_warp_specialization",
        phone_aspect=2.8,
        model=True,
    ),
    Widget(
        name="fp8-incoherent-processing",
        part=3,
        title="FP8 in attention: what the bits hold, and why FlashAttention-3 rotates Q and K",
        module="vizgen.widgets.fp8_incoherent_processing",
        phone_aspect=3.4,
        model=True,
    ),
    # Part 1: from alignment to attention (issue 5), in reading order.
    Widget(
        name="attention-bahdanau-alignment",
        part=1,
        title="Bahdanau attention, one decoder step at a time: the trained model's alignment",
        module="vizgen.widgets.attention_bahdanau_alignment",
        phone_aspect=3.5,
        inputs=("docs/data/seq2seq/additive.pt",),
    ),
    Widget(
        name="attention-scoring-functions",
        part=1,
        title="Additive, dot and scaled dot scores: why divide by √d_k",
        module="vizgen.widgets.attention_scoring_functions",
        phone_aspect=3.7,
    ),
    Widget(
        name="attention-multihead-self",
        part=1,
        title="Four real heads of a pretrained transformer, and a test of the “coreference” one",
        module="vizgen.widgets.attention_multihead_self",
        phone_aspect=3.2,
        inputs=("docs/data/minilm_attention.json",),
    ),
    # Part 2: the approximation era (issue 6), in reading order.
    Widget(
        name="attention-pattern-zoo",
        part=2,
        title="Six attention patterns at the same N: what each method actually computes",
        module="vizgen.widgets.attention_pattern_zoo",
        phone_aspect=4.1,
    ),
    Widget(
        name="lsh-attention-bucketing",
        part=2,
        title="Reformer's LSH attention: random rotations, buckets, and the keys they find",
        module="vizgen.widgets.lsh_attention_bucketing",
        phone_aspect=3.1,
    ),
    Widget(
        name="attention-complexity-scaling",
        part=2,
        title="Memory and FLOPs of attention against N, up to a million tokens",
        module="vizgen.widgets.attention_complexity_scaling",
        phone_aspect=2.7,
        model=True,
        inputs=("docs/data/approx_cpu_times.json",),
    ),
    # Part 4: inference (issue 4), in reading order.
    Widget(
        name="kv-cache-evolution",
        part=4,
        title="The KV cache of one token, from MHA to MLA",
        module="vizgen.widgets.kv_cache_evolution",
        phone_aspect=3.2,
    ),
    Widget(
        name="paged-attention-blocks",
        part=4,
        title="Paged KV blocks vs contiguous reservations: one scenario, both allocators",
        module="vizgen.widgets.paged_attention_blocks",
        phone_aspect=2.9,
        model=True,
    ),
    Widget(
        name="sliding-window-receptive-field",
        part=4,
        title="Sliding-window attention: how far L layers can see",
        module="vizgen.widgets.sliding_window_receptive_field",
        phone_aspect=2.4,
    ),
    Widget(
        name="ring-attention-rotation",
        part=4,
        title="Ring attention: K,V shards rotate while each device keeps its queries",
        module="vizgen.widgets.ring_attention_rotation",
        phone_aspect=3.3,
        model=True,
        inputs=("docs/data/ring_cpu_run.json",),
    ),
)


@dataclass(frozen=True)
class Sheet:
    """Numbers and tables for the prose that no widget owns (hardware specs, benchmark
    tables): traced and cached like a widget, but rendered into posts, not a page.
    Its module defines `trace() -> {"facts": {...}, "tables": {name: markdown}}`."""

    name: str
    module: str
    # Data files (repository-relative) the trace reads: part of its cache key.
    inputs: tuple[str, ...] = ()
    template = None  # nothing to render

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"sheet name {self.name!r} is not kebab-case")


SHEETS: tuple[Sheet, ...] = (
    Sheet(name="hardware", module="vizgen.sheets.hardware"),
    Sheet(name="attention-benchmark", module="vizgen.sheets.attention_benchmark",
          inputs=("docs/data/attention_benchmark.json",)),
    Sheet(name="io", module="vizgen.sheets.io"),
    Sheet(name="loop-orders", module="vizgen.sheets.loop_orders"),
    Sheet(name="kv-preview", module="vizgen.sheets.kv_preview"),
    Sheet(name="serving", module="vizgen.sheets.serving"),
    Sheet(name="part1", module="vizgen.sheets.part1"),
    Sheet(name="part2", module="vizgen.sheets.part2", inputs=("docs/data/performer_benchmark.json",)),
    Sheet(name="seq2seq", module="vizgen.sheets.seq2seq_results",
          inputs=tuple(f"docs/data/seq2seq/{kind}.pt" for kind in ("additive", "dot", "general", "none"))),
)


def get(name: str) -> Widget:
    for widget in WIDGETS:
        if widget.name == name:
            return widget
    raise UnknownWidget(name)


def entries() -> tuple[Widget | Sheet, ...]:
    """Everything `vizgen build` makes: widgets, then sheets."""
    return WIDGETS + SHEETS


def get_entry(name: str) -> Widget | Sheet:
    for entry in entries():
        if entry.name == name:
            return entry
    raise UnknownWidget(name)
