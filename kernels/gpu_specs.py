"""Published specifications of the GPUs the series reasons about, each with its source.

Only figures NVIDIA publishes are typed here; everything derived from them (aggregate
shared-memory bandwidth, roofline ridge points, the time to move N bytes) is computed,
so the posts cannot disagree with the table.

Sources
- A100: NVIDIA A100 Tensor Core GPU datasheet (80GB SXM column) and the NVIDIA A100
  Tensor Core GPU Architecture whitepaper (GA100: 108 SMs, 192 KB combined L1/shared per
  SM of which up to 164 KB shared, 256 KB register file per SM, 40 MB L2, 1410 MHz boost).
- H100: NVIDIA H100 Tensor Core GPU datasheet (SXM column) and the NVIDIA H100 Tensor
  Core GPU Architecture whitepaper / "NVIDIA Hopper Architecture In-Depth" (132 SMs on
  SXM5, 256 KB combined L1/shared per SM of which up to 228 KB shared, 256 KB register
  file per SM, 50 MB L2). Dense (non-sparse) tensor throughput, at the 1830 MHz those
  peaks assume.
"""

from __future__ import annotations

from dataclasses import dataclass

KB = 1024
MB = 1024 * KB
GB_DECIMAL = 10**9  # memory sizes and bandwidths are quoted in decimal units by NVIDIA
TB_DECIMAL = 10**12

# Shared memory serves 32 banks x 4 bytes per clock per SM (CUDA C Programming Guide,
# "Shared Memory" for compute capability 8.x / 9.x).
SMEM_BYTES_PER_CLOCK_PER_SM = 32 * 4


@dataclass(frozen=True)
class GPU:
    name: str
    architecture: str
    sms: int
    boost_clock_hz: float  # the clock the published tensor peaks assume
    registers_per_sm: int  # bytes
    l1_smem_per_sm: int  # bytes, combined L1 / shared memory
    max_smem_per_sm: int  # bytes a kernel can use as shared memory
    l2_bytes: int
    hbm_bytes: int
    hbm_type: str
    hbm_bandwidth: float  # bytes / s
    host_link: str
    host_bandwidth: float  # bytes / s, one direction
    tensor_flops: dict  # dtype -> dense FLOP/s on tensor cores
    fp32_flops: float  # FLOP/s of plain FP32 arithmetic (CUDA cores): the non-matmul work
    source: str

    @property
    def smem_bandwidth(self) -> float:
        """Aggregate shared-memory bandwidth, bytes/s: banks x width x SMs x clock."""
        return SMEM_BYTES_PER_CLOCK_PER_SM * self.sms * self.boost_clock_hz

    @property
    def total_smem(self) -> int:
        return self.max_smem_per_sm * self.sms

    def matmul_advantage(self, dtype: str = "fp16") -> float:
        """How many times cheaper a tensor-core FLOP is than a plain FP32 one (FlashAttention-2, Section 3.1)."""
        return self.tensor_flops[dtype] / self.fp32_flops

    def ridge_point(self, dtype: str = "fp16") -> float:
        """Roofline ridge: FLOPs per HBM byte above which a kernel is compute-bound."""
        return self.tensor_flops[dtype] / self.hbm_bandwidth

    def seconds_to_move(self, n_bytes: float, level: str = "hbm") -> float:
        bandwidth = {"hbm": self.hbm_bandwidth, "smem": self.smem_bandwidth, "host": self.host_bandwidth}[level]
        return n_bytes / bandwidth


A100 = GPU(
    name="A100 80GB SXM",
    architecture="Ampere (sm_80)",
    sms=108,
    boost_clock_hz=1.41e9,
    registers_per_sm=256 * KB,
    l1_smem_per_sm=192 * KB,
    max_smem_per_sm=164 * KB,
    l2_bytes=40 * MB,
    hbm_bytes=80 * GB_DECIMAL,
    hbm_type="HBM2e",
    hbm_bandwidth=2.039 * TB_DECIMAL,
    host_link="PCIe Gen4 x16",
    host_bandwidth=32 * GB_DECIMAL,
    tensor_flops={"fp16": 312e12, "bf16": 312e12, "tf32": 156e12},
    fp32_flops=19.5e12,
    source="NVIDIA A100 datasheet (80GB SXM); NVIDIA A100 Tensor Core GPU Architecture whitepaper",
)

H100 = GPU(
    name="H100 SXM5 80GB",
    architecture="Hopper (sm_90)",
    sms=132,
    # The clock the dense tensor peaks assume: 989.4 TFLOPS = 132 SMs x 4096 FLOP/clock
    # x 1.83 GHz (FlashAttention-3, footnote 5). The maximum boost clock is 1.98 GHz.
    boost_clock_hz=1.83e9,
    registers_per_sm=256 * KB,
    l1_smem_per_sm=256 * KB,
    max_smem_per_sm=228 * KB,
    l2_bytes=50 * MB,
    hbm_bytes=80 * GB_DECIMAL,
    hbm_type="HBM3",
    hbm_bandwidth=3.35 * TB_DECIMAL,
    host_link="PCIe Gen5 x16",
    host_bandwidth=64 * GB_DECIMAL,
    tensor_flops={"fp16": 989.4e12, "bf16": 989.4e12, "tf32": 494.7e12, "fp8": 1978.9e12},
    fp32_flops=66.9e12,
    source="NVIDIA H100 datasheet (SXM); NVIDIA H100 Tensor Core GPU Architecture whitepaper",
)

GPUS = {"A100": A100, "H100": H100}


def get(name: str) -> GPU:
    try:
        return GPUS[name]
    except KeyError:
        raise ValueError(f"unknown GPU {name!r} (known: {', '.join(GPUS)})") from None


# --------------------------------------------------------------------------
# Interconnects: what a GPU can send to another GPU, one direction
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """A GPU-to-GPU link; NVIDIA quotes NVLink as the sum of both directions."""

    name: str
    bandwidth: float  # bytes / s, one direction
    source: str

    def seconds_to_send(self, n_bytes: float) -> float:
        return n_bytes / self.bandwidth


A100_NVLINK = Link(
    name="NVLink 3 (A100)",
    bandwidth=600 * GB_DECIMAL / 2,  # 600 GB/s is both directions together
    source="NVIDIA A100 datasheet: NVLink 600 GB/s (12 links x 50 GB/s, both directions)",
)
H100_NVLINK = Link(
    name="NVLink 4 (H100)",
    bandwidth=900 * GB_DECIMAL / 2,  # 900 GB/s is both directions together
    source="NVIDIA H100 datasheet (SXM): NVLink 900 GB/s (18 links x 50 GB/s, both directions)",
)
NDR_INFINIBAND = Link(
    name="InfiniBand NDR",
    bandwidth=400e9 / 8,  # 400 Gb/s per port, one direction
    source="NVIDIA ConnectX-7 / Quantum-2 NDR InfiniBand: 400 Gb/s per port",
)

LINKS = {"A100 NVLink": A100_NVLINK, "H100 NVLink": H100_NVLINK, "NDR InfiniBand": NDR_INFINIBAND}
