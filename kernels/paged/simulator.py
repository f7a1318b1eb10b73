"""A continuous-batching scheduler run over the paged and the contiguous KV allocator.

Iteration-level scheduling as in Orca (Yu et al., OSDI 2022) and vLLM (Kwon et al.,
arXiv:2309.06180, §4.5): every step, each running request stores one new token; finished
requests leave and free their memory at once; waiting requests are admitted first come,
first served while their memory fits (no overtaking, so the head can block the queue).

What differs is only the memory:
- ``paged``: a request holds ceil(tokens / block_size) blocks and takes one more when its
  last block fills. When no block is free, the most recently admitted request is
  preempted (vLLM's recompute policy, §4.5): its blocks are freed and it re-enters the
  front of the queue, to re-store its prompt and the tokens generated so far.
- ``contiguous``: a request reserves one region up front (``Reservation``), so it never
  runs out later, but holds the whole region from admission to finish.

A request is rejected on arrival when its final length exceeds ``max_seq_len``, or when
even an empty pool could not hold it (its blocks, or its contiguous reservation: under
``Reservation.MAX`` every request reserves ``max_seq_len``).

Simplifications: a step is one decode iteration of fixed cost, whatever the batch, so a
prefill (or a preempted request's recompute) costs no extra time; there is no cap on the
batch but memory; steps when nothing runs still count toward the averages.

Each step can be recorded as plain data (lists, dicts, ints) for a widget to replay.
The memory accounting follows the paper's Fig. 2 categories, in KV slots (one slot = the
K and V of one token in every layer):
- ``stored``   slots holding token states;
- ``reserved`` slots held for tokens the request will still produce (contiguous only);
- ``internal`` slots held that the request will never fill (the unused tail of a paged
  request's last block counts here, as in the paper);
- ``external`` free slots unusable by the request at the head of the queue (holes
  smaller than its reservation; always 0 for paged, where any free block serves anyone;
  0 when nobody waits).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from kernels.paged.block_table import BlockManager, blocks_needed
from kernels.paged.contiguous import ContiguousAllocator, Reservation, reservation_slots
from kernels.paged.workload import Request

CATEGORIES = ("stored", "reserved", "internal", "external", "free")


@dataclass(frozen=True)
class SimConfig:
    """The simulated server. Pool sizes are in KV slots, identical for both allocators."""

    # Room for 8 max-length requests: memory, not compute, bounds the batch.
    num_slots: int = 16_384
    block_size: int = 16  # vLLM's default block size (arXiv:2309.06180, §7.2)
    max_seq_len: int = 2048  # OPT's context (arXiv:2205.01068), the paper's models
    record_steps: bool = False  # keep a per-step trace (large for long runs)

    def __post_init__(self) -> None:
        if self.num_slots % self.block_size:
            raise ValueError(
                f"num_slots={self.num_slots} is not a multiple of block_size={self.block_size}"
            )


class PagedMemory:
    """Adapter: the simulator's view of a ``BlockManager`` with one-token appends."""

    name = "paged"

    def __init__(self, config: SimConfig) -> None:
        self.block_size = config.block_size
        self.max_seq_len = config.max_seq_len
        # Prompts in the workload are distinct, so prefix sharing would find nothing.
        self.manager = BlockManager(
            config.num_slots // config.block_size,
            config.block_size,
            prefix_sharing=False,
        )

    def _tokens(self, request: Request, start: int, stop: int) -> list[int]:
        """Distinct token ids per request, so each block's contents name its owner."""
        return [request.request_id * self.max_seq_len + p for p in range(start, stop)]

    def fits_ever(self, request: Request) -> bool:
        return (
            blocks_needed(request.final_len, self.block_size)
            <= self.manager.pool.num_blocks
        )

    def admit(self, request: Request, stored: int) -> bool:
        tokens = self._tokens(request, 0, stored)
        return self.manager.allocate(request.request_id, tokens) is not None

    def grow(self, request: Request, stored: int) -> bool:
        token = self._tokens(request, stored, stored + 1)
        return self.manager.append(request.request_id, token) is not None

    def release(self, request: Request) -> None:
        self.manager.free(request.request_id)

    def usage(self, request: Request, stored: int) -> dict:
        table = self.manager.tables[request.request_id]
        held = len(table.block_ids) * self.block_size
        return {
            "blocks": list(table.block_ids),
            "held": held,
            "stored": stored,
            "reserved": 0,
            "internal": held - stored,
        }

    def free_slots(self) -> int:
        return self.manager.num_free_blocks * self.block_size

    def external(self, head: Request | None) -> int:
        return 0


class ContiguousMemory:
    """Adapter: one contiguous region per request, sized by a ``Reservation`` policy."""

    def __init__(self, config: SimConfig, policy: Reservation) -> None:
        self.policy = policy
        self.name = f"contiguous-{policy.value}"
        self.max_seq_len = config.max_seq_len
        self.allocator = ContiguousAllocator(config.num_slots)

    def _reservation(self, request: Request) -> int:
        return reservation_slots(self.policy, request.final_len, self.max_seq_len)

    def fits_ever(self, request: Request) -> bool:
        return self._reservation(request) <= self.allocator.num_slots

    def admit(self, request: Request, stored: int) -> bool:
        return (
            self.allocator.allocate(request.request_id, self._reservation(request))
            is not None
        )

    def grow(self, request: Request, stored: int) -> bool:
        return True  # the region was sized for the final length up front

    def release(self, request: Request) -> None:
        self.allocator.free(request.request_id)

    def usage(self, request: Request, stored: int) -> dict:
        region = self.allocator.regions[request.request_id]
        return {
            "region": [region.start, region.length],
            "held": region.length,
            "stored": stored,
            "reserved": request.final_len - stored,
            "internal": region.length - request.final_len,
        }

    def free_slots(self) -> int:
        return self.allocator.num_free_slots

    def external(self, head: Request | None) -> int:
        return (
            0
            if head is None
            else self.allocator.unusable_free_slots(self._reservation(head))
        )


@dataclass
class SimResult:
    """Totals over the run, and the per-step trace when it was recorded."""

    allocator: str  # "paged" or "contiguous-<policy>"
    num_slots: int  # pool size, KV slots
    steps: int = 0  # scheduler iterations until the last request left
    finished: int = 0
    rejected: int = 0
    preemptions: int = 0  # paged only: requests evicted and later recomputed
    # Slot-steps per memory category, summed over the run.
    slot_steps: dict = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))
    running_steps: int = (
        0  # requests running, summed over steps: mean batch = this / steps
    )
    trace: list = field(default_factory=list)  # one dict per step when recorded

    @property
    def token_fraction_of_pool(self) -> float:
        """Share of all KV slot-steps that held a token state (paper's Fig. 2 measure)."""
        return self.slot_steps["stored"] / (self.num_slots * self.steps)

    @property
    def token_fraction_of_held(self) -> float:
        """Share of the slot-steps held by requests that held a token state."""
        held = sum(self.slot_steps[k] for k in ("stored", "reserved", "internal"))
        return self.slot_steps["stored"] / held

    @property
    def mean_batch(self) -> float:
        return self.running_steps / self.steps

    def summary(self) -> dict:
        total = self.num_slots * self.steps
        return {
            "allocator": self.allocator,
            "steps": self.steps,
            "finished": self.finished,
            "rejected": self.rejected,
            "preemptions": self.preemptions,
            "mean_batch": self.mean_batch,
            "token_fraction_of_pool": self.token_fraction_of_pool,
            "token_fraction_of_held": self.token_fraction_of_held,
            **{f"{k}_fraction": v / total for k, v in self.slot_steps.items()},
        }


def simulate(
    workload: list[Request], memory: PagedMemory | ContiguousMemory, config: SimConfig
) -> SimResult:
    """Run the scheduler until every request has finished or been rejected."""
    result = SimResult(memory.name, config.num_slots)
    pending = deque(sorted(workload, key=lambda r: (r.arrival_step, r.request_id)))
    waiting: deque[Request] = deque()
    running: list[Request] = []  # admission order; the last is preempted first
    # Request id -> tokens stored so far; kept on preemption, to be re-stored (recompute).
    stored: dict[int, int] = {}
    step = 0
    while pending or waiting or running:
        while pending and pending[0].arrival_step <= step:
            request = pending.popleft()
            if request.final_len > config.max_seq_len or not memory.fits_ever(request):
                result.rejected += 1
            else:
                waiting.append(request)
                stored[request.request_id] = request.prompt_len
        # Decode: every running request stores one token; preempt the newest on a shortfall.
        grown = 0
        while grown < len(running):
            request = running[grown]
            if memory.grow(request, stored[request.request_id]):
                stored[request.request_id] += 1
                grown += 1
                continue
            victim = running.pop()
            assert victim is not request or grown == len(running), "oldest first"
            memory.release(victim)
            waiting.appendleft(victim)
            result.preemptions += 1
        for request in [r for r in running if stored[r.request_id] == r.final_len]:
            running.remove(request)
            memory.release(request)
            result.finished += 1
        # Admit first come, first served; a request that does not fit blocks the queue.
        while waiting and memory.admit(waiting[0], stored[waiting[0].request_id]):
            running.append(waiting.popleft())
        _account(result, memory, running, waiting, stored, step, config.record_steps)
        step += 1
    result.steps = step
    return result


def _account(result: SimResult, memory, running, waiting, stored, step, record) -> None:
    usages = [memory.usage(r, stored[r.request_id]) for r in running]
    external = memory.external(waiting[0] if waiting else None)
    free = memory.free_slots()
    totals = {k: sum(u[k] for u in usages) for k in ("stored", "reserved", "internal")}
    assert sum(u["held"] for u in usages) + free == result.num_slots, "slots leaked"
    for key, value in totals.items():
        result.slot_steps[key] += value
    result.slot_steps["external"] += external
    result.slot_steps["free"] += free - external
    result.running_steps += len(running)
    if record:
        result.trace.append(
            {
                "step": step,
                "running": len(running),
                "waiting": len(waiting),
                "rejected": result.rejected,
                "finished": result.finished,
                "preemptions": result.preemptions,
                "free": free,
                "external": external,
                **totals,
                "requests": [
                    {"id": r.request_id, **u} for r, u in zip(running, usages)
                ],
            }
        )
