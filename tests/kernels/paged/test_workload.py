import numpy as np
import pytest

from kernels.paged.workload import ALPACA, SHAREGPT, lognormal_lengths, poisson_workload


def test_the_published_ratios_follow_from_the_published_means():
    # arXiv:2309.06180 §6.1: ShareGPT has 8.4x longer inputs and 5.8x longer outputs.
    assert SHAREGPT.mean_input / ALPACA.mean_input == pytest.approx(8.4, abs=0.05)
    assert SHAREGPT.mean_output / ALPACA.mean_output == pytest.approx(5.8, abs=0.05)


@pytest.mark.parametrize("mean", [19.31, 58.45, 161.31, 337.99])
def test_sampled_lengths_match_the_target_mean(mean):
    lengths = lognormal_lengths(np.random.default_rng(0), mean, 1.0, 200_000)
    assert lengths.min() >= 1
    assert lengths.mean() == pytest.approx(mean, rel=0.02)


def test_workload_is_seeded_ordered_and_poisson():
    w = poisson_workload(SHAREGPT, 20_000, rate=0.5, seed=3)
    assert w == poisson_workload(SHAREGPT, 20_000, rate=0.5, seed=3)
    assert w != poisson_workload(SHAREGPT, 20_000, rate=0.5, seed=4)
    steps = [r.arrival_step for r in w]
    assert steps == sorted(steps)
    assert len(w) / steps[-1] == pytest.approx(0.5, rel=0.05)  # arrivals per step
    with pytest.raises(ValueError, match="rate > 0"):
        poisson_workload(ALPACA, 10, rate=0.0, seed=0)
