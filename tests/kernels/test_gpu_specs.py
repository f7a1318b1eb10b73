import pytest

from kernels import gpu_specs


def test_ridge_points_follow_from_the_published_peaks():
    # FLOPs per byte: peak dense FP16 tensor FLOP/s over HBM bytes/s.
    assert gpu_specs.A100.ridge_point("fp16") == pytest.approx(312e12 / 2.039e12)
    assert gpu_specs.H100.ridge_point("fp16") == pytest.approx(989.4e12 / 3.35e12)
    assert gpu_specs.H100.ridge_point("fp16") > gpu_specs.A100.ridge_point("fp16")


def test_on_chip_memory_is_an_order_of_magnitude_faster_than_hbm():
    for gpu in gpu_specs.GPUS.values():
        assert gpu.smem_bandwidth / gpu.hbm_bandwidth > 5
        assert gpu.max_smem_per_sm <= gpu.l1_smem_per_sm
        assert gpu.seconds_to_move(gpu.hbm_bandwidth) == pytest.approx(1.0)


def test_unknown_gpu_is_named():
    with pytest.raises(ValueError, match="unknown GPU 'V100'"):
        gpu_specs.get("V100")


def test_links_are_one_direction_and_slower_off_the_board():
    # NVIDIA quotes NVLink summed over both directions: 600 and 900 GB/s.
    assert gpu_specs.A100_NVLINK.bandwidth == pytest.approx(300e9)
    assert gpu_specs.H100_NVLINK.bandwidth == pytest.approx(450e9)
    assert gpu_specs.NDR_INFINIBAND.bandwidth == pytest.approx(50e9)  # 400 Gb/s
    assert gpu_specs.NDR_INFINIBAND.bandwidth < gpu_specs.A100_NVLINK.bandwidth < gpu_specs.H100_NVLINK.bandwidth
    for link in gpu_specs.LINKS.values():
        assert link.source and link.seconds_to_send(link.bandwidth) == pytest.approx(1.0)
