"""Ring attention over gloo processes (arXiv:2310.01889) equals full attention, its step
records follow the rotation, failures are reported by rank, and no process survives."""

import math
import multiprocessing
import time

import numpy as np
import pytest
import torch

from kernels import gpu_specs, reference, ring

B, H, H_KV, N, D = 1, 4, 2, 24, 8  # GQA: two query heads per K/V head; N divisible by 2 and 4
TIMEOUT_S = 60.0  # generous: spawning P interpreters that import torch on a busy machine


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((B, H, N, D)), rng.standard_normal((B, H_KV, N, D)), rng.standard_normal((B, H_KV, N, D))


@pytest.fixture(scope="module", params=[(2, False), (2, True), (4, False), (4, True)], ids=lambda p: f"P{p[0]}-{'causal' if p[1] else 'full'}")
def run(request):
    world_size, causal = request.param
    q, k, v = inputs()
    return ring.ring_attention(q, k, v, world_size=world_size, causal=causal, timeout_s=TIMEOUT_S), (q, k, v)


def test_output_equals_full_attention(run):
    result, (q, k, v) = run
    exact = reference.attention(q, k, v, causal=result.causal)
    # Both in float64; the ring only reorders the sums, so the error stays at rounding level.
    assert np.max(np.abs(result.out - exact)) < 1e-12


def test_every_rank_sees_every_shard_once_in_ring_order(run):
    result, _ = run
    P = result.world_size
    assert len(result.steps) == P * P
    for record in result.steps:
        assert record.shard == (record.rank - record.step) % P
    for rank in range(P):
        assert sorted(r.shard for r in result.steps if r.rank == rank) == list(range(P))


def test_causal_ranks_skip_exactly_the_future_shards(run):
    result, _ = run
    computed = [sum(r.computed for r in result.steps if r.rank == rank) for rank in range(result.world_size)]
    expected = ring.causal_blocks_per_rank(result.world_size) if result.causal else [result.world_size] * result.world_size
    assert computed == expected
    assert all(r.computed == (not result.causal or r.shard <= r.rank) for r in result.steps)


def test_times_are_measured(run):
    result, _ = run
    assert all(r.compute_s > 0 and r.wait_s >= 0 for r in result.steps)
    assert all(t > 0 for t in result.transfer_s)
    assert result.shard_bytes == 2 * B * H_KV * (N // result.world_size) * D * 8  # K and V, float64


def test_merge_block_is_the_fa2_update():
    # Merging two halves of a row's scores equals the softmax over the whole row.
    rng = np.random.default_rng(1)
    s, v = torch.tensor(rng.standard_normal((3, 10))), torch.tensor(rng.standard_normal((10, 4)))
    state = (torch.full((3,), -math.inf, dtype=torch.float64), torch.zeros(3, dtype=torch.float64), torch.zeros(3, 4, dtype=torch.float64))
    for cols in (slice(0, 6), slice(6, 10)):
        state = ring.merge_block(*state, s[:, cols], v[cols])
    m_i, l_i, acc = state
    assert np.allclose((acc / l_i[:, None]).numpy(), reference.softmax(s.numpy()) @ v.numpy(), atol=1e-14)
    assert np.allclose(m_i.numpy(), s.numpy().max(axis=1))


def test_a_failing_rank_is_named_and_nothing_is_left_running():
    q, k, v = inputs()
    start = time.monotonic()
    with pytest.raises(ring.RingError, match=r"rank 1 failed: RuntimeError: injected failure at step 1"):
        ring.ring_attention(q, k, v, world_size=2, timeout_s=TIMEOUT_S, _fault=("raise", 1, 1))
    assert time.monotonic() - start < TIMEOUT_S
    assert multiprocessing.active_children() == []


def test_a_hanging_rank_hits_the_timeout_and_is_killed():
    q, k, v = inputs()
    timeout = 8.0
    start = time.monotonic()
    with pytest.raises(ring.RingError, match=r"did not finish within the timeout"):
        ring.ring_attention(q, k, v, world_size=2, timeout_s=timeout, _fault=("hang", 0, 0))
    assert time.monotonic() - start < timeout + 2 * ring.TERMINATE_GRACE_S + 1
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize("kwargs, message", [
    ({"world_size": 5}, "world_size 5 must divide the sequence length 24"),
    ({"world_size": 0}, "world_size must be a positive integer"),
    ({"world_size": 2, "timeout_s": 0}, "timeout_s must be positive"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ring.ring_attention(*inputs(), **kwargs)


MHA_FP16 = ring.LayerShape(heads=32, kv_heads=32, head_dim=128, bytes_per_element=2, dtype="fp16")


def test_comm_hides_exactly_above_flops_over_bandwidth():
    # MHA in 16 bits: 4 c^2 H d / F >= 4 c H d / W  <=>  c >= F / W.
    for gpu, link in ((gpu_specs.A100, gpu_specs.A100_NVLINK), (gpu_specs.H100, gpu_specs.NDR_INFINIBAND)):
        c_star = ring.min_hiding_tokens(MHA_FP16, gpu, link)
        assert c_star == pytest.approx(gpu.tensor_flops["fp16"] / link.bandwidth)
        at = ring.step_cost(round(c_star), MHA_FP16, gpu, link)
        assert at.compute_s == pytest.approx(at.comm_s, rel=1e-3)
        assert ring.step_cost(math.ceil(c_star * 1.01), MHA_FP16, gpu, link).hidden
        assert not ring.step_cost(math.floor(c_star * 0.99), MHA_FP16, gpu, link).hidden
    gqa = ring.LayerShape(heads=32, kv_heads=8, head_dim=128, bytes_per_element=2, dtype="fp16")
    assert ring.min_hiding_tokens(gqa, gpu_specs.H100, gpu_specs.H100_NVLINK) == pytest.approx(
        ring.min_hiding_tokens(MHA_FP16, gpu_specs.H100, gpu_specs.H100_NVLINK) / 4)


def test_ring_beats_allgather_and_equals_compute_when_hidden():
    P = 4
    for tokens in (512, 4096, 65536):
        cost = ring.step_cost(tokens, MHA_FP16, gpu_specs.H100, gpu_specs.H100_NVLINK)
        schedule = ring.ring_schedule(cost, P)
        total = schedule[-1]["end"]
        assert total == pytest.approx((P - 1) * max(cost.compute_s, cost.comm_s) + cost.compute_s)
        assert total < ring.allgather_time(cost, P)["total_s"]
        if cost.hidden:
            assert total == pytest.approx(P * cost.compute_s)  # zero communication overhead
    with pytest.raises(ValueError, match="tokens must be a positive integer"):
        ring.step_cost(0, MHA_FP16, gpu_specs.H100, gpu_specs.H100_NVLINK)
