"""The scheduling models: SM dispatch of FlashAttention / FlashAttention-2 launches, and
the warpgroup timelines of one SM (FlashAttention-2 sync vs FlashAttention-3)."""

import itertools
import math

import numpy as np
import pytest

from kernels import gpu_schedule as gs
from kernels.gpu_specs import A100, H100

# --------------------------------------------------------------------------- SM dispatch


@pytest.mark.parametrize("n_ctx, batch, heads, block_m", [(8192, 1, 16, 128), (1000, 3, 5, 64), (17, 2, 1, 16)])
def test_fa2_launch_has_one_program_per_q_block_and_head(n_ctx, batch, heads, block_m):
    work = gs.fa2_work(batch, heads, n_ctx, block_m, 64, causal=False)
    assert len(work) == math.ceil(n_ctx / block_m) * batch * heads
    assert gs.fa2_grid(n_ctx, batch, heads, block_m) == (math.ceil(n_ctx / block_m), batch * heads)


@pytest.mark.parametrize("causal", [False, True])
def test_model_visits_the_tiles_the_triton_kernel_visits(causal):
    """The work model against the real kernel's trace: same programs, same K/V steps each."""
    torch = pytest.importorskip("torch")
    from kernels import flash

    batch, heads, n_ctx, head_dim, block_m, block_n = 1, 2, 80, 4, 32, 16  # ragged last Q block on purpose
    q, k, v = (torch.randn(batch, heads, n_ctx, head_dim, generator=torch.Generator().manual_seed(i)) for i in range(3))
    _, ft = flash.attention(q, k, v, causal=causal, block_m=block_m, block_n=block_n, trace=True)
    steps = (ft.kv_block >= 0).sum(axis=1)  # (P,) K/V tiles each program folded in
    np.testing.assert_array_equal(steps, gs.fa2_work(batch, heads, n_ctx, block_m, block_n, causal))
    assert gs.fa1_work(batch, heads, n_ctx, block_m, block_n, causal).sum() == steps.sum()


def _intervals_by_sm(d):
    for sm in range(d.n_sms):
        mine = np.flatnonzero(d.sm == sm)
        yield d.start[mine[np.argsort(d.start[mine])]], d.end[mine[np.argsort(d.start[mine])]]


@pytest.mark.parametrize("batch", [1, 3, 8])
@pytest.mark.parametrize("causal", [False, True])
def test_dispatch_runs_one_program_per_sm_back_to_back(batch, causal):
    work = gs.fa2_work(batch, 16, 4096, 128, 64, causal)
    d = gs.dispatch(work, A100.sms)
    for start, end in _intervals_by_sm(d):
        assert (start[1:] >= end[:-1]).all(), "an SM ran two programs at once"
        assert (start[1:] == end[:-1]).all() and (len(start) == 0 or start[0] == 0), "an SM idled with work waiting"
    assert (np.diff(d.start) >= 0).all(), "programs must start in grid order"
    assert (d.end - d.start == work).all()
    assert d.sm_end().sum() == work.sum()  # total busy time equals total work


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("batch", [1, 2, 4, 8, 16, 32, 64])
def test_fa2_keeps_the_sms_at_least_as_busy_as_fa1(batch, causal):
    args = (batch, 16, 8192, 128, 64, causal)
    d1, d2 = gs.dispatch(gs.fa1_work(*args), A100.sms), gs.dispatch(gs.fa2_work(*args), A100.sms)
    assert d1.work.sum() == d2.work.sum()
    assert d2.utilisation >= d1.utilisation
    assert d2.makespan <= d1.makespan


@pytest.mark.parametrize("programs", [16, 108, 128, 216, 1000])
def test_equal_programs_fill_whole_waves(programs):
    """FA1's programs are equal, so utilisation is P / (n_sms * waves), 100 % at multiples of n_sms."""
    d = gs.dispatch(np.full(programs, 7), A100.sms)
    waves = math.ceil(programs / A100.sms)
    assert d.makespan == 7 * waves
    assert d.utilisation == pytest.approx(programs / (A100.sms * waves))


def test_fa1_is_fully_busy_when_batch_times_heads_is_a_multiple_of_the_sms():
    d = gs.dispatch(gs.fa1_work(4, 27, 8192, 128, 64, causal=False), A100.sms)  # 4 x 27 = 108 programs
    assert d.utilisation == 1.0


def test_causal_work_is_the_lower_triangle_of_tiles():
    per_q_block = gs.kv_tiles_visited(8192, 128, 64, causal=True)
    np.testing.assert_array_equal(per_q_block, 2 * np.arange(1, 65))  # BLOCK_M / BLOCK_N = 2 tiles per Q block
    assert gs.kv_tiles_visited(8192, 128, 64, causal=False).tolist() == [128] * 64


def test_tile_cost_is_two_matmuls_at_the_per_sm_tensor_peak():
    assert gs.tile_seconds(A100, 128, 64, 128) == pytest.approx(4 * 128 * 64 * 128 / (312e12 / 108))


@pytest.mark.parametrize("call", [
    lambda: gs.dispatch(np.array([1, 0, 2]), 108),
    lambda: gs.dispatch(np.array([], dtype=int), 108),
    lambda: gs.dispatch(np.array([1, 2]), 0),
    lambda: gs.fa2_work(0, 16, 8192, 128, 64, False),
    lambda: gs.kv_tiles_visited(8192, 128, 1.5, False),
])
def test_bad_input_is_a_value_error(call):
    with pytest.raises(ValueError):
        call()


# --------------------------------------------------------------------------- warpgroups

COSTS = gs.op_costs(H100, head_dim=128, block_n=128)
SHOWN = ["fa2", "pingpong", "pingpong_overlap"]


def test_op_costs_reproduce_the_fa3_papers_h100_numbers():
    """FlashAttention-3, Section 3.1 and footnote 5: 989 vs 3.9 TFLOPS, 512x the FLOPs, 256x the rate, 50 %."""
    assert COSTS.tensor_flops_per_clock == 4096
    assert f"{COSTS.exp_flops / 1e12:.1f}" == "3.9"
    assert COSTS.matmul_to_exp_flops == 512
    assert round(COSTS.exp_throughput_gap) == 256
    assert COSTS.softmax / (2 * COSTS.gemm) == pytest.approx(0.5)
    fp8 = gs.op_costs(H100, head_dim=128, block_n=128, dtype="fp8")
    assert fp8.softmax / (2 * fp8.gemm) == pytest.approx(1.0)  # "even worse with FP8"


@pytest.fixture(scope="module", params=SHOWN)
def schedule(request):
    return gs.warp_schedule(request.param, 6, COSTS)


def _find(s, kind, tile, row):
    hits = [i for i, op in enumerate(s.ops) if op.kind == kind and op.tile == tile and (row in op.rows or not op.rows)]
    assert len(hits) == 1, (kind, tile, row, hits)
    return hits[0]


def test_every_op_waits_for_its_dependencies(schedule):
    for i, op in enumerate(schedule.ops):
        for d in op.deps:
            assert schedule.start[i] >= schedule.end[d]


def test_one_op_at_a_time_per_unit(schedule):
    """At most one GEMM on the tensor cores, one softmax on the exp unit, one copy, at any time."""
    for unit in ("copy", "tensor", "exp"):
        mine = [i for i, op in enumerate(schedule.ops) if op.unit == unit]
        order = sorted(mine, key=lambda i: schedule.start[i])
        for a, b in itertools.pairwise(order):
            assert schedule.start[b] >= schedule.end[a], unit


def test_data_flows_load_gemm0_softmax_gemm1_for_every_row_and_tile(schedule):
    """Checked from the kinds, not from the deps the builder wrote: loads before use,
    softmax of tile j after its GEMM0, GEMM1 of tile j after its softmax."""
    s = schedule
    for row in (0, 1):
        for j in range(6):
            k, v = _find(s, "load K", j, row), _find(s, "load V", j, row)
            g0, sm, g1 = _find(s, "GEMM0", j, row), _find(s, "softmax", j, row), _find(s, "GEMM1", j, row)
            assert s.start[g0] >= s.end[k]
            assert s.start[sm] >= s.end[g0]
            assert s.start[g1] >= s.end[sm] and s.start[g1] >= s.end[v]
            if j:  # O accumulates in order
                assert s.start[g1] >= s.end[_find(s, "GEMM1", j - 1, row)]


def test_every_schedule_does_the_same_work(schedule):
    fa2 = gs.warp_schedule("fa2", 6, COSTS)
    for unit in ("tensor", "exp", "copy"):
        assert schedule.busy(unit) * schedule.makespan == pytest.approx(fa2.busy(unit) * fa2.makespan)


@pytest.mark.parametrize("n_tiles", [1, 2, 5, 8])
def test_makespans_match_their_closed_forms(n_tiles):
    """FA2: the first K load, then per tile GEMM0 + softmax + GEMM1 over both halves (its loads hide
    behind them). FA3: the first K load, then the tensor cores never idle."""
    g, e, load = COSTS.gemm, COSTS.softmax, COSTS.load
    assert gs.warp_schedule("fa2", n_tiles, COSTS).makespan == load + n_tiles * 2 * (2 * g + e)
    for name in ("pingpong", "pingpong_overlap"):
        assert gs.warp_schedule(name, n_tiles, COSTS).makespan == load + n_tiles * 4 * g


def test_fa3_finishes_no_later_than_fa2():
    spans = {name: gs.warp_schedule(name, 6, COSTS).makespan for name in SHOWN}
    assert spans["pingpong_overlap"] <= spans["pingpong"] < spans["fa2"]


def _overlaps(s, a, b):
    return min(s.end[a], s.end[b]) > max(s.start[a], s.start[b])


def test_fa2_never_overlaps_softmax_with_a_gemm():
    s = gs.warp_schedule("fa2", 6, COSTS)
    exps = [i for i, op in enumerate(s.ops) if op.unit == "exp"]
    gemms = [i for i, op in enumerate(s.ops) if op.unit == "tensor"]
    assert not any(_overlaps(s, a, b) for a in exps for b in gemms)


def test_ping_pong_runs_one_warpgroups_softmax_under_the_others_gemms():
    s = gs.warp_schedule("pingpong", 6, COSTS)
    for row, other in ((0, 1), (1, 0)):
        for j in range(6):
            sm = _find(s, "softmax", j, row)
            others = [i for i, op in enumerate(s.ops) if op.unit == "tensor" and op.rows == (other,)]
            assert any(_overlaps(s, sm, i) for i in others), (row, j)


def test_intra_warpgroup_overlap_runs_softmax_j_under_gemm1_j_minus_1():
    s = gs.warp_schedule("pingpong_overlap", 6, COSTS)
    for row in (0, 1):
        for j in range(1, 6):
            assert _overlaps(s, _find(s, "softmax", j, row), _find(s, "GEMM1", j - 1, row))


def test_producer_loads_in_order_and_refills_a_stage_only_once_it_is_read():
    s = gs.warp_schedule("pingpong_overlap", 6, COSTS, stages=2)
    loads = [i for i, op in enumerate(s.ops) if op.unit == "copy"]
    assert [(s.ops[i].kind, s.ops[i].tile) for i in sorted(loads, key=lambda i: s.start[i])] == \
        [(kind, j) for j in range(6) for kind in ("load K", "load V")]
    for j in range(2, 6):
        for row in (0, 1):
            assert s.start[_find(s, "load K", j, row)] >= s.end[_find(s, "GEMM0", j - 2, row)]
            assert s.start[_find(s, "load V", j, row)] >= s.end[_find(s, "GEMM1", j - 2, row)]


def test_list_schedule_rejects_a_cycle():
    ops = [gs.Op("GEMM0", 0, (0,), "tensor", 1.0, (1,)), gs.Op("softmax", 0, (0,), "exp", 1.0, (0,))]
    with pytest.raises(AssertionError):
        gs.list_schedule(ops)


@pytest.mark.parametrize("call", [
    lambda: gs.warp_schedule("fa4", 6, COSTS),
    lambda: gs.warp_schedule("fa2", 0, COSTS),
    lambda: gs.op_costs(H100, 128, 128, load_gemms=0),
])
def test_bad_schedule_arguments_are_value_errors(call):
    with pytest.raises(ValueError):
        call()
