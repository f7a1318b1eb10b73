import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels.paged.contiguous import Reservation
from kernels.paged.simulator import ContiguousMemory, PagedMemory, SimConfig, simulate
from kernels.paged.workload import ALPACA, SHAREGPT, Request, poisson_workload

CONFIG = SimConfig(num_slots=4096, block_size=16, max_seq_len=1024, record_steps=True)


def run_all(workload, config=CONFIG):
    memories = [PagedMemory(config)] + [
        ContiguousMemory(config, p) for p in Reservation
    ]
    return {m.name: simulate(workload, m, config) for m in memories}


@pytest.fixture(scope="module")
def sharegpt():
    return run_all(poisson_workload(SHAREGPT, 150, rate=0.3, seed=0))


def test_every_request_finishes_or_is_rejected_alike_under_every_allocator(sharegpt):
    rejected = {r.rejected for r in sharegpt.values()}
    assert len(rejected) == 1
    for result in sharegpt.values():
        assert result.finished + result.rejected == 150
        last = result.trace[-1]
        assert (
            last["running"] == last["waiting"] == 0 and last["free"] == CONFIG.num_slots
        )


def test_paged_wastes_at_most_one_partial_block_per_request_and_nothing_else(sharegpt):
    for step in sharegpt["paged"].trace:
        assert step["reserved"] == step["external"] == 0
        for req in step["requests"]:
            assert 0 <= req["internal"] < CONFIG.block_size
            assert len(req["blocks"]) * CONFIG.block_size == req["held"]


def test_paged_holds_token_states_in_a_larger_share_of_memory_than_any_contiguous_policy(
    sharegpt,
):
    paged = sharegpt["paged"]
    assert paged.token_fraction_of_held > 0.9
    for name, result in sharegpt.items():
        if name != "paged":
            assert result.token_fraction_of_held < paged.token_fraction_of_held
            assert result.mean_batch < paged.mean_batch
            assert (
                result.preemptions == 0
            )  # reserved up front: never runs out mid-request
    oracle = sharegpt["contiguous-oracle"]
    assert oracle.slot_steps["internal"] == 0 and oracle.slot_steps["external"] > 0


def test_contiguous_accounting_splits_each_region_exactly(sharegpt):
    for step in sharegpt["contiguous-pow2"].trace:
        for req in step["requests"]:
            assert req["stored"] + req["reserved"] + req["internal"] == req["region"][1]
        assert (
            step["stored"] + step["reserved"] + step["internal"] + step["free"]
            == CONFIG.num_slots
        )


def test_a_tight_paged_pool_preempts_and_recomputes_yet_finishes_everything():
    config = SimConfig(num_slots=256, block_size=16, max_seq_len=256)
    workload = [Request(i, 0, 40, 80) for i in range(4)]  # 4 x 120 tokens > 256 slots
    result = simulate(workload, PagedMemory(config), config)
    assert result.preemptions > 0 and result.finished == 4


def test_requests_longer_than_the_model_or_pool_are_rejected_on_arrival():
    config = SimConfig(num_slots=128, block_size=16, max_seq_len=64)
    workload = [Request(0, 0, 50, 50), Request(1, 0, 20, 20), Request(2, 0, 10, 10)]
    for result in run_all(workload, config).values():
        assert (result.rejected, result.finished) == (1, 2)
    config = SimConfig(
        num_slots=64, block_size=16, max_seq_len=128
    )  # pool < one max request
    result = simulate(workload, PagedMemory(config), config)
    assert (result.rejected, result.finished) == (1, 2)  # 100 tokens > 64 slots
    result = simulate(workload, ContiguousMemory(config, Reservation.MAX), config)
    assert (result.rejected, result.finished) == (3, 0)  # every reservation is 128 > 64


def test_trace_is_plain_deterministic_data():
    workload = poisson_workload(ALPACA, 40, rate=1.0, seed=1)
    first = [json.dumps(r.trace) for r in run_all(workload).values()]
    assert first == [json.dumps(r.trace) for r in run_all(workload).values()]


def test_pool_must_hold_whole_blocks():
    with pytest.raises(
        ValueError, match="num_slots=100 is not a multiple of block_size=16"
    ):
        SimConfig(num_slots=100)


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(
        st.tuples(st.integers(0, 5), st.integers(1, 60), st.integers(1, 60)),
        max_size=12,
    ),
    policy=st.sampled_from(list(Reservation)),
)
def test_random_workloads_conserve_slots_and_drain(lengths, policy):
    config = SimConfig(num_slots=128, block_size=8, max_seq_len=96, record_steps=True)
    workload = [Request(i, t, p, o) for i, (t, p, o) in enumerate(lengths)]
    for memory in (PagedMemory(config), ContiguousMemory(config, policy)):
        result = simulate(workload, memory, config)
        assert result.finished + result.rejected == len(workload)
        assert result.rejected == sum(p + o > 96 for _, p, o in lengths)
        for step in result.trace:
            held = sum(r["held"] for r in step["requests"])
            assert held + step["free"] == config.num_slots
            assert 0 <= step["external"] <= step["free"]
            assert all(
                0 <= r["internal"] and 0 <= r["reserved"] for r in step["requests"]
            )
