"""The paged-attention-blocks widget replays what the allocators and the Triton kernel did, and it is right."""

import numpy as np
import pytest
import torch

from kernels.paged_attention import paged_decode
from vizgen import tracejson
from vizgen.widgets import paged_attention_blocks as pab


@pytest.fixture(scope="module")
def trace():
    return pab.trace()


@pytest.fixture(scope="module")
def steps(trace):
    return trace["data"]["steps"]


def first(steps, event, seq=None):
    return next(i for i, s in enumerate(steps) if s["event"] == event and seq in (None, s["seq"]))


def table(step, seq):
    return next(t["blocks"] for t in step["paged"]["tables"] if t["seq"] == seq)


def test_trace_is_plain_deterministic_data(trace):
    assert tracejson.dumps(trace) == tracejson.dumps(pab.trace())


def test_every_slot_is_accounted_for_in_both_pools(steps):
    for step in steps:
        c, p = step["contiguous"], step["paged"]
        assert c["stored"] + c["reserved_empty"] + c["free"] == pab.POOL_SLOTS
        assert p["stored"] + p["unfilled"] + p["free"] == pab.POOL_SLOTS
        for t in p["tables"]:  # a table holds ceil(tokens / BLOCK_SIZE) blocks
            assert len(t["blocks"]) == -(-t["tokens"] // pab.BLOCK_SIZE)
        # Every reference is one table entry (BlockManager's invariant, seen from the drawing).
        refs = np.zeros(pab.NUM_BLOCKS, dtype=int)
        for t in p["tables"]:
            np.add.at(refs, t["blocks"], 1)
        assert refs.tolist() == [b["ref"] for b in p["blocks"]]


def test_paged_holds_tokens_in_more_of_its_held_memory_at_every_step(steps):
    for step in steps:
        if step["paged"]["running"]:
            assert step["paged"]["util_held"] > 2 * step["contiguous"]["util_held"]
            assert step["paged"]["unfilled"] < pab.BLOCK_SIZE * step["paged"]["running"]


def test_fork_shares_blocks_then_copy_on_write_splits_the_partly_filled_one(steps):
    fork = first(steps, "fork")
    shared = table(steps[fork], "A")
    assert table(steps[fork], "A′") == shared
    assert all(steps[fork]["paged"]["blocks"][b]["ref"] == 2 for b in shared)
    assert steps[fork]["paged"]["stored"] == steps[fork - 1]["paged"]["stored"]  # nothing copied
    assert steps[fork]["contiguous"]["stored"] > steps[fork - 1]["contiguous"]["stored"]  # prompt copied

    after = steps[fork + 1]
    assert after["event"] == "decode"
    a, a2 = table(after, "A"), table(after, "A′")
    assert a[0] == a2[0] == shared[0] and after["paged"]["blocks"][shared[0]]["ref"] == 2  # full block: still shared
    assert a2[-1] == shared[-1] and a[-1] not in shared  # the writer got the copy
    assert after["paged"]["blocks"][shared[-1]]["ref"] == 1
    assert "copy-on-write" in after["caption"]


def test_late_arrival_is_turned_away_by_contiguous_and_placed_by_paged(steps):
    late = first(steps, "arrive", "C")
    step, before = steps[late], steps[late - 1]
    assert step["turned_away"] == before["turned_away"] + 1
    assert "C" not in [r["seq"] for r in step["contiguous"]["regions"]]
    assert 0 < step["contiguous"]["free"] < pab.MAX_SEQ_LEN  # free slots exist, but no run long enough
    assert len(table(step, "C")) == -(-10 // pab.BLOCK_SIZE)

    retry = steps[first(steps, "retry", "C")]
    b_region = next(r for r in before["contiguous"]["regions"] if r["seq"] == "B")
    c_region = next(r for r in retry["contiguous"]["regions"] if r["seq"] == "C")
    assert c_region["start"] == b_region["start"]  # the hole B left


def test_drawn_tables_are_the_ones_the_kernel_read_and_its_output_was_right(steps):
    decodes = [s for s in steps if s["event"] == "decode"]
    assert decodes and all(s["kernel"] for s in decodes)
    for step in decodes:
        k = step["kernel"]
        assert k["seqs"] == [t["seq"] for t in step["paged"]["tables"]]
        assert k["read"] == [t["blocks"] for t in step["paged"]["tables"]]
        assert k["seq_lens"] == [t["tokens"] for t in step["paged"]["tables"]]
        assert k["max_abs_err"] < 1e-5


def test_kernel_over_a_forked_pool_matches_softmax_over_gathered_tokens():
    """Independent of the widget's own check: replay to the first fork and attend with plain NumPy."""
    sc = pab.Scenario()
    pab._arrive(sc, "A", 6)
    pab._arrive(sc, "B", 9)
    pab._fork(sc, "A′", "A")
    names = sc.paged_names()
    tables = [sc.manager.tables[sc.ids[n]] for n in names]
    block_tables = torch.tensor([t.block_ids + [-1] * (3 - len(t.block_ids)) for t in tables], dtype=torch.int32)
    seq_lens = torch.tensor([t.num_tokens for t in tables], dtype=torch.int32)
    q = torch.randn(len(names), pab.HEADS, pab.HEAD_DIM, generator=torch.Generator().manual_seed(1))
    q[names.index("A′")] = q[0]  # A′ reads A's blocks: with A's query it must give A's output
    k_cache, v_cache = pab._cache(sc.manager)
    out = paged_decode(q, k_cache, v_cache, block_tables, seq_lens).numpy()  # (B, H, D)
    for b, name in enumerate(names):
        tokens = sc.tokens[name]
        k, v = pab.K_OF_TOKEN[tokens][:, 0], pab.V_OF_TOKEN[tokens][:, 0]  # (N, D): the one KV head
        s = q[b].numpy().astype(np.float64) @ k.T / np.sqrt(pab.HEAD_DIM)  # (H, N)
        p = np.exp(s - s.max(axis=1, keepdims=True))
        np.testing.assert_allclose(out[b], (p / p.sum(axis=1, keepdims=True)) @ v, atol=1e-5)
    np.testing.assert_array_equal(out[0], out[names.index("A′")])


def test_simulation_ranks_the_allocators_as_the_paper_does(trace):
    held = {row["allocator"]: row["tokens_of_held"] for row in trace["data"]["sim"]}
    assert held["contiguous-max"] < held["contiguous-pow2"] < held["contiguous-oracle"] < held["paged"]
    assert held["paged"] > 0.95  # only the last block of each request is ever partly empty
    batch = {row["allocator"]: row["mean_batch"] for row in trace["data"]["sim"]}
    assert batch["paged"] > 2 * batch["contiguous-max"]


def test_facts_agree_with_the_data(trace):
    facts, data = trace["facts"], trace["data"]
    held = {row["allocator"]: row["tokens_of_held"] for row in data["sim"]}
    assert facts["sim_max"] == f"{100 * held['contiguous-max']:.1f}%"
    assert facts["sim_paged"] == f"{100 * held['paged']:.1f}%"
    assert facts["contiguous_turned_away"] == data["steps"][-1]["turned_away"] == 1
    assert facts["shared_blocks"] == 2
    assert facts["kernel_steps"] == sum(s["event"] == "decode" for s in data["steps"])
    assert facts["pool_slots"] == facts["num_blocks"] * facts["block_size"]
