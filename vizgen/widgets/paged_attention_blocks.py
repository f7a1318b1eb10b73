"""paged-attention-blocks: one scripted scenario, run through both KV allocators of `kernels.paged`.

Kwon et al. 2023, "Efficient Memory Management for Large Language Model Serving with
PagedAttention" (arXiv:2309.06180). Every state the widget draws comes from running code:

- top: `ContiguousAllocator` with the Orca (Max) reservation (§3, §6.1): each request
  reserves `MAX_SEQ_LEN` contiguous slots on admission, and a parallel sample copies its
  parent's prompt into its own region;
- bottom: `BlockManager` over the same slots cut into blocks of `BLOCK_SIZE`: block tables,
  reference counts, `fork` for parallel sampling and copy-on-write (§4.2-4.4);
- at every decode step, the Triton kernel `kernels.paged_attention.paged_decode` runs over
  the block manager's pool (under the interpreter on a CPU), and the widget draws the block
  tables from the kernel's own `PagedTrace`; its output is checked against
  `kernels.reference.attention` over each sequence's tokens gathered back in order;
- beside it, the totals of `kernels.paged.simulator.simulate` on a ShareGPT-like workload:
  the share of held KV memory that holds token states, per allocator (the paper's Fig. 2).

A token's K and V are a seeded random row per token id (a stand-in for a model's
projections): enough for the kernel check, which only needs each slot to hold its token.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from kernels import reference
from kernels.paged.block_table import BlockManager
from kernels.paged.contiguous import ContiguousAllocator, Reservation
from kernels.paged.simulator import ContiguousMemory, PagedMemory, SimConfig, simulate
from kernels.paged.workload import SHAREGPT, poisson_workload
from kernels.paged_attention import paged_decode
from vizgen.fmt import sci

# The scenario's pool: small enough to draw every slot at 375 px.
BLOCK_SIZE = 4  # tokens per block (vLLM's default is 16; 4 keeps the drawing readable)
NUM_BLOCKS = 26  # room for three max-length reservations plus a two-block leftover
POOL_SLOTS = NUM_BLOCKS * BLOCK_SIZE
MAX_SEQ_LEN = 32  # what Orca (Max) reserves per request: 8 blocks' worth
# The kernel's shapes: two query heads sharing one KV head (GQA), head dim 8.
HEADS, HEADS_KV, HEAD_DIM = 2, 1, 8
VOCAB = 2 * POOL_SLOTS  # token ids with a K/V row: the script stores fewer tokens than the pool holds
SEED = 0

# The full simulation (the paper's §6.2 setting, scaled down; see kernels/paged/simulator.py).
SIM_REQUESTS = 400
SIM_RATE = 0.2  # requests per step: enough that the queue is rarely empty and memory binds
SIM_CONFIG = SimConfig()  # 16,384 slots, blocks of 16, max_seq_len 2048 (OPT's context)
PAPER_FIG2 = "20.4%–38.2%"  # arXiv:2309.06180, §1 and Fig. 2: token states in existing systems

# (event, sequence, argument): the script. Prompt lengths leave A's last block partly
# filled, so the first write after the fork must copy it.
SCRIPT = (
    ("start", None, None),
    ("arrive", "A", 6),
    ("arrive", "B", 9),
    ("fork", "A′", "A"),  # parallel sampling: a second output for A's prompt
    ("decode", None, None),
    ("decode", None, None),
    ("arrive", "C", 10),  # the late arrival
    ("decode", None, None),
    ("decode", None, None),
    ("finish", "B", None),
    ("retry", "C", None),
    ("decode", None, None),
)


@dataclass
class Scenario:
    """Both allocators, driven by the same events; sequences are named A, B, A′, C."""

    manager: BlockManager = field(default_factory=lambda: BlockManager(NUM_BLOCKS, BLOCK_SIZE, prefix_sharing=False))
    contiguous: ContiguousAllocator = field(default_factory=lambda: ContiguousAllocator(POOL_SLOTS))
    ids: dict = field(default_factory=dict)  # name -> sequence id, in arrival order
    tokens: dict = field(default_factory=dict)  # name -> token ids of the paged sequence
    stored: dict = field(default_factory=dict)  # name -> tokens stored in its contiguous region
    prompt_len: dict = field(default_factory=dict)  # name -> prompt tokens
    waiting: list = field(default_factory=list)  # names the contiguous pool could not admit
    turned_away: int = 0  # contiguous admissions that failed
    finished: int = 0
    last_finished: str | None = None
    next_token: int = 0

    def new_tokens(self, n: int) -> list[int]:
        """Fresh token ids: every generated token differs, so a shared block names its sharers."""
        ids = list(range(self.next_token, self.next_token + n))
        self.next_token += n
        return ids

    def paged_names(self) -> list[str]:
        return [name for name, seq_id in self.ids.items() if seq_id in self.manager.tables]

    def contiguous_names(self) -> list[str]:
        return [name for name, seq_id in self.ids.items() if seq_id in self.contiguous.regions]


def _arrive(sc: Scenario, name: str, prompt_len: int) -> str:
    sc.ids[name] = len(sc.ids)
    sc.tokens[name] = sc.new_tokens(prompt_len)
    sc.prompt_len[name] = prompt_len
    table = sc.manager.allocate(sc.ids[name], sc.tokens[name])
    if table is None:
        raise RuntimeError(f"the scripted pool has no room for {name}'s prompt")
    placed = _admit_contiguous(sc, name, prompt_len)
    paged = (f"Paged: {len(table.block_ids)} blocks ({', '.join(map(str, table.block_ids))}), "
             f"taken from the free list wherever they are.")
    return f"A {prompt_len}-token prompt. {placed} {paged}"


def _admit_contiguous(sc: Scenario, name: str, stored: int, verb: str = "fills") -> str:
    """Reserve a max-length region for ``name`` holding ``stored`` tokens, or turn it away."""
    region = sc.contiguous.allocate(sc.ids[name], MAX_SEQ_LEN)
    if region is None:
        sc.turned_away += 1
        sc.waiting.append(name)
        largest = max((h.length for h in sc.contiguous.holes()), default=0)
        return (f"Contiguous: no hole of {MAX_SEQ_LEN} slots (largest free run: {largest}), "
                f"so {name} is turned away.")
    sc.stored[name] = stored
    return (f"Contiguous: reserves slots {region.start}–{region.start + region.length - 1} "
            f"({MAX_SEQ_LEN} = max length) and {verb} {stored}.")


def _fork(sc: Scenario, child: str, parent: str) -> str:
    sc.ids[child] = len(sc.ids)
    sc.tokens[child] = list(sc.tokens[parent])
    table = sc.manager.fork(sc.ids[parent], sc.ids[child])
    placed = _admit_contiguous(sc, child, sc.stored[parent], verb="copies")  # no sharing: a copy
    shared = ", ".join(map(str, table.block_ids))
    return (f"Parallel sampling: {parent}'s prompt gets a second output, {child}. {placed} "
            f"Paged: {child}'s table points at {parent}'s blocks ({shared}); each now has reference count 2, "
            f"nothing is copied.")


def _decode(sc: Scenario) -> tuple[str, dict]:
    """Every running sequence stores one token; copy-on-write fires when a shared block is written."""
    notes = []
    for name in sc.paged_names():
        table = sc.manager.tables[sc.ids[name]]
        last = table.block_ids[-1]
        writes_shared = table.num_tokens % BLOCK_SIZE and sc.manager.pool.ref_counter.get(last) > 1
        token = sc.new_tokens(1)
        if sc.manager.append(sc.ids[name], token) is None:
            raise RuntimeError(f"the scripted pool ran out of blocks decoding {name}")
        sc.tokens[name] += token
        if writes_shared:
            notes.append(f"{name} writes into block {last}, which another table still reads: "
                         f"copy-on-write gives {name} its own copy, block {table.block_ids[-1]}.")
        elif table.block_ids[-1] != last:
            notes.append(f"{name}'s block {last} is full: it takes block {table.block_ids[-1]}.")
    for name in sc.contiguous_names():
        sc.stored[name] += 1
    running = ", ".join(sc.paged_names())
    text = f"{running} each store one token; the Triton kernel then reads their block tables. "
    return (text + " ".join(notes)).strip(), _run_kernel(sc)


def _finish(sc: Scenario, name: str) -> str:
    seq_id = sc.ids[name]
    blocks = sc.manager.tables[seq_id].block_ids
    sc.manager.free(seq_id)
    freed = [b for b in blocks if sc.manager.pool.ref_counter.get(b) == 0]
    region = sc.contiguous.regions.get(seq_id)
    if region is not None:
        sc.contiguous.free(seq_id)
        del sc.stored[name]
    sc.finished += 1
    sc.last_finished = name
    kept = len(blocks) - len(freed)
    kept_text = f"; {kept} still read by another table stay" if kept else ""
    contiguous = f"its {region.length}-slot region" if region else "nothing (it never got a region)"
    return (f"Contiguous frees {contiguous}. Paged: blocks "
            f"{', '.join(map(str, freed))} return to the free list{kept_text}.")


def _retry(sc: Scenario, name: str) -> str:
    """The contiguous pool admits a waiting request with its prompt; paged placed it on arrival."""
    sc.waiting.remove(name)
    placed = _admit_contiguous(sc, name, sc.prompt_len[name])
    generated = len(sc.tokens[name]) - sc.prompt_len[name]
    return (f"The contiguous pool retries {name} in the hole {sc.last_finished} left. {placed} "
            f"Under paging, {name} has already generated {generated} tokens.")


# --------------------------------------------------------------------------
# The Triton kernel over the block manager's pool
# --------------------------------------------------------------------------


def _kv_table() -> tuple[np.ndarray, np.ndarray]:
    """(K, V) rows per token id, (VOCAB, H_kv, D) each: a seeded stand-in for a model's projections."""
    rng = np.random.default_rng(SEED)
    return tuple(rng.standard_normal((VOCAB, HEADS_KV, HEAD_DIM)).astype(np.float32) for _ in "kv")


K_OF_TOKEN, V_OF_TOKEN = _kv_table()


def _cache(manager: BlockManager) -> tuple[torch.Tensor, torch.Tensor]:
    """The pool as the kernel sees it: (NUM_BLOCKS, H_kv, BLOCK_SIZE, D); empty slots hold NaN."""
    k = np.full((NUM_BLOCKS, HEADS_KV, BLOCK_SIZE, HEAD_DIM), np.nan, dtype=np.float32)
    v = np.full_like(k, np.nan)
    for block in manager.pool.blocks:
        for slot, token in enumerate(block.token_ids):
            k[block.block_id, :, slot] = K_OF_TOKEN[token]
            v[block.block_id, :, slot] = V_OF_TOKEN[token]
    return torch.from_numpy(k), torch.from_numpy(v)


def _run_kernel(sc: Scenario) -> dict:
    """One decode step of the Triton kernel; return the tables it read and its error vs the reference."""
    names = sc.paged_names()
    tables = [sc.manager.tables[sc.ids[n]] for n in names]
    width = max(len(t.block_ids) for t in tables)
    block_tables = torch.full((len(names), width), -1, dtype=torch.int32)  # (B, max_blocks)
    for b, table in enumerate(tables):
        block_tables[b, : len(table.block_ids)] = torch.tensor(table.block_ids, dtype=torch.int32)
    seq_lens = torch.tensor([t.num_tokens for t in tables], dtype=torch.int32)  # (B,)
    gen = torch.Generator().manual_seed(SEED + sc.next_token)
    q = torch.randn(len(names), HEADS, HEAD_DIM, generator=gen)  # (B, H, D): this step's queries
    k_cache, v_cache = _cache(sc.manager)
    out, trace = paged_decode(q, k_cache, v_cache, block_tables, seq_lens, trace=True)

    errors = []
    for b, name in enumerate(names):
        token_ids = sc.manager.token_ids(sc.ids[name])  # read back through the block table
        k = K_OF_TOKEN[token_ids].transpose(1, 0, 2)[None]  # (1, H_kv, N, D)
        v = V_OF_TOKEN[token_ids].transpose(1, 0, 2)[None]
        expected = reference.attention(q[b].numpy()[None, :, None, :], k, v)[0, :, 0]  # (H, D)
        errors.append(float(np.abs(out[b].numpy() - expected).max()))
    read = [trace.blocks_read(p) for p in range(len(names) * HEADS_KV) if trace.programs[p, 1] == 0]
    return {"seqs": names, "read": read, "seq_lens": seq_lens.tolist(), "max_abs_err": max(errors)}


# --------------------------------------------------------------------------
# Snapshots: what the widget draws after each event
# --------------------------------------------------------------------------


def _snapshot(sc: Scenario) -> dict:
    regions = [{"seq": n, "start": sc.contiguous.regions[sc.ids[n]].start,
                "length": sc.contiguous.regions[sc.ids[n]].length, "stored": sc.stored[n]}
               for n in sc.contiguous_names()]
    owners: list[list[str]] = [[] for _ in range(NUM_BLOCKS)]
    tables = []
    for name in sc.paged_names():
        table = sc.manager.tables[sc.ids[name]]
        tables.append({"seq": name, "blocks": list(table.block_ids), "tokens": table.num_tokens})
        for block_id in table.block_ids:
            owners[block_id].append(name)
    pool = sc.manager.pool
    blocks = [{"fill": len(b.token_ids), "ref": pool.ref_counter.get(b.block_id), "owners": owners[b.block_id]}
              for b in pool.blocks]
    contiguous_stored = sum(r["stored"] for r in regions)
    contiguous_held = sum(r["length"] for r in regions)
    paged_stored = sum(b["fill"] for b in blocks)
    paged_held = sum(BLOCK_SIZE for b in blocks if b["ref"])
    return {
        "contiguous": {
            "regions": regions,
            "stored": contiguous_stored,
            "reserved_empty": contiguous_held - contiguous_stored,
            "free": sc.contiguous.num_free_slots,
            "util": contiguous_stored / POOL_SLOTS,
            "util_held": contiguous_stored / contiguous_held if contiguous_held else None,
            "running": len(regions),
        },
        "paged": {
            "tables": tables,
            "blocks": blocks,
            "stored": paged_stored,
            "unfilled": paged_held - paged_stored,
            "free": pool.num_free_blocks * BLOCK_SIZE,
            "util": paged_stored / POOL_SLOTS,
            "util_held": paged_stored / paged_held if paged_held else None,
            "running": len(tables),
        },
        "turned_away": sc.turned_away,
        "finished": sc.finished,
    }


TITLES = {"start": "Empty pool", "arrive": "{seq} arrives", "fork": "{seq} forks from {arg}",
          "decode": "Decode step", "finish": "{seq} finishes", "retry": "Contiguous retries {seq}"}


def _run_script() -> list[dict]:
    sc = Scenario()
    steps = []
    for event, seq, arg in SCRIPT:
        kernel = None
        if event == "start":
            caption = (f"The same {POOL_SLOTS} KV slots, managed two ways: contiguous regions of "
                       f"{MAX_SEQ_LEN} slots (the maximum length), or {NUM_BLOCKS} blocks of {BLOCK_SIZE} slots.")
        elif event == "arrive":
            caption = _arrive(sc, seq, arg)
        elif event == "fork":
            caption = _fork(sc, seq, arg)
        elif event == "decode":
            caption, kernel = _decode(sc)
        elif event == "finish":
            caption = _finish(sc, seq)
        else:
            caption = _retry(sc, seq)
        sc.manager.check()
        sc.contiguous.check()
        step = {"event": event, "seq": seq, "title": TITLES[event].format(seq=seq, arg=arg),
                "caption": caption, "kernel": kernel, **_snapshot(sc)}
        steps.append(step)
    return steps


# --------------------------------------------------------------------------
# The full simulation
# --------------------------------------------------------------------------


def _simulation() -> list[dict]:
    """Token states as a share of held KV memory, per allocator, on a ShareGPT-like workload."""
    workload = poisson_workload(SHAREGPT, SIM_REQUESTS, rate=SIM_RATE, seed=SEED)
    memories = [ContiguousMemory(SIM_CONFIG, p) for p in Reservation] + [PagedMemory(SIM_CONFIG)]
    # Our allocators with the reservation policies of the paper's Orca baselines, not Orca itself.
    labels = {"contiguous-max": "contiguous, max", "contiguous-pow2": "contiguous, pow2",
              "contiguous-oracle": "contiguous, oracle", "paged": "paged"}
    rows = []
    for memory in memories:
        result = simulate(workload, memory, SIM_CONFIG)
        rows.append({"allocator": memory.name, "label": labels[memory.name],
                     "tokens_of_held": result.token_fraction_of_held,
                     "mean_batch": result.mean_batch, "steps": result.steps})
    return rows


def trace() -> dict:
    steps = _run_script()
    sim = _simulation()
    data = {
        "block_size": BLOCK_SIZE, "num_blocks": NUM_BLOCKS, "pool_slots": POOL_SLOTS,
        "max_seq_len": MAX_SEQ_LEN, "heads": HEADS, "heads_kv": HEADS_KV, "head_dim": HEAD_DIM,
        "seqs": list(dict.fromkeys(seq for event, seq, _ in SCRIPT if event in ("arrive", "fork"))),
        "steps": steps,
        "sim": sim,
        "sim_params": {"requests": SIM_REQUESTS, "rate": SIM_RATE, "slots": SIM_CONFIG.num_slots,
                       "block_size": SIM_CONFIG.block_size, "max_seq_len": SIM_CONFIG.max_seq_len},
    }
    return {"data": data, "facts": _facts(steps, sim)}


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _facts(steps: list[dict], sim: list[dict]) -> dict:
    by = {row["allocator"]: row for row in sim}
    late = next(s for s in steps if s["event"] == "arrive" and s["turned_away"])
    fork = next(s for s in steps if s["event"] == "fork")
    kernel_steps = [s["kernel"] for s in steps if s["kernel"]]
    return {
        "block_size": BLOCK_SIZE, "num_blocks": NUM_BLOCKS, "pool_slots": POOL_SLOTS, "max_seq_len": MAX_SEQ_LEN,
        "shared_blocks": sum(1 for b in fork["paged"]["blocks"] if b["ref"] > 1),
        "contiguous_turned_away": steps[-1]["turned_away"],
        "late_seq": late["seq"],
        "late_contiguous_util": _pct(late["contiguous"]["util"]),
        "late_paged_util": _pct(late["paged"]["util"]),
        "late_contiguous_util_held": _pct(late["contiguous"]["util_held"]),
        "late_paged_util_held": _pct(late["paged"]["util_held"]),
        "late_paged_free": late["paged"]["free"],
        "late_contiguous_reserved_empty": late["contiguous"]["reserved_empty"],
        "late_contiguous_free": late["contiguous"]["free"],
        "kernel_steps": len(kernel_steps),
        "kernel_max_abs_err": sci(max(k["max_abs_err"] for k in kernel_steps)),
        "sim_requests": SIM_REQUESTS, "sim_rate": SIM_RATE, "sim_slots": f"{SIM_CONFIG.num_slots:,}",
        "sim_block_size": SIM_CONFIG.block_size, "sim_max_seq_len": f"{SIM_CONFIG.max_seq_len:,}",
        "sim_max": _pct(by["contiguous-max"]["tokens_of_held"]),
        "sim_pow2": _pct(by["contiguous-pow2"]["tokens_of_held"]),
        "sim_oracle": _pct(by["contiguous-oracle"]["tokens_of_held"]),
        "sim_paged": _pct(by["paged"]["tokens_of_held"]),
        "sim_batch_max": f"{by['contiguous-max']['mean_batch']:.1f}",
        "sim_batch_paged": f"{by['paged']['mean_batch']:.1f}",
        "sim_batch_ratio": f"{by['paged']['mean_batch'] / by['contiguous-max']['mean_batch']:.1f}",
        "paper_fig2": PAPER_FIG2,
    }
