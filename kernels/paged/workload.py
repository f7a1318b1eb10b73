"""Seeded request workloads: Poisson arrivals, prompt and output lengths like the paper's.

vLLM's evaluation (Kwon et al., arXiv:2309.06180, §6.1, Fig. 11) synthesises requests from
two datasets, with Poisson arrival times. It publishes their length histograms and means:

    ShareGPT  mean input 161.31 tokens, mean output 337.99 tokens
    Alpaca    mean input  19.31 tokens, mean output  58.45 tokens

(the text: ShareGPT has 8.4x longer prompts and 5.8x longer outputs than Alpaca;
161.31 / 19.31 = 8.35 and 337.99 / 58.45 = 5.78 agree). Only the means are published, so
the distribution *family* is our choice: a log-normal per length, matched to the
published mean, with shape ``sigma`` (the histograms are right-skewed with long tails).
Lengths are rounded and at least 1 token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LengthStats:
    """A dataset's published mean lengths and the log-normal shape we give them."""

    name: str
    mean_input: float  # tokens, Fig. 11 of arXiv:2309.06180
    mean_output: float  # tokens, Fig. 11 of arXiv:2309.06180
    sigma: float = 1.0  # log-normal shape; our choice, the paper publishes no spread


SHAREGPT = LengthStats("ShareGPT", mean_input=161.31, mean_output=337.99)
ALPACA = LengthStats("Alpaca", mean_input=19.31, mean_output=58.45)
DATASETS = {s.name: s for s in (SHAREGPT, ALPACA)}


@dataclass(frozen=True)
class Request:
    """One request of the workload."""

    request_id: int  # arrival order, from 0
    arrival_step: int  # first scheduler step at which the request is visible
    prompt_len: int  # tokens stored at prefill
    output_len: int  # tokens generated, one per decode step

    @property
    def final_len(self) -> int:
        return self.prompt_len + self.output_len


def lognormal_lengths(
    rng: np.random.Generator, mean: float, sigma: float, n: int
) -> np.ndarray:
    """``n`` integer lengths >= 1 from a log-normal with the given mean (before rounding).

    E[exp(X)] = exp(mu + sigma^2/2) for X ~ N(mu, sigma^2), so mu = ln(mean) - sigma^2/2.
    """
    mu = math.log(mean) - sigma**2 / 2
    return np.maximum(1, np.rint(rng.lognormal(mu, sigma, n))).astype(np.int64)


def poisson_workload(
    stats: LengthStats, num_requests: int, rate: float, seed: int
) -> list[Request]:
    """``num_requests`` requests arriving as a Poisson process of ``rate`` requests per step."""
    if num_requests < 0 or rate <= 0:
        raise ValueError(
            f"need num_requests >= 0 and rate > 0, got {num_requests}, {rate}"
        )
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(
        rng.exponential(1 / rate, num_requests)
    )  # Poisson: exponential gaps
    prompts = lognormal_lengths(rng, stats.mean_input, stats.sigma, num_requests)
    outputs = lognormal_lengths(rng, stats.mean_output, stats.sigma, num_requests)
    return [
        Request(i, int(t), int(p), int(o))
        for i, (t, p, o) in enumerate(zip(arrivals, prompts, outputs))
    ]
