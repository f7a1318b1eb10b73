import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels.paged.contiguous import (
    ContiguousAllocator,
    Region,
    Reservation,
    reservation_slots,
)


def test_first_fit_takes_the_lowest_hole_and_scattered_holes_refuse_a_large_request():
    a = ContiguousAllocator(num_slots=10)
    for seq, length in enumerate([3, 2, 3, 2]):
        a.allocate(seq, length)
    a.free(0)  # hole [0, 3)
    a.free(2)  # hole [5, 8)
    assert a.holes() == [Region(0, 3), Region(5, 3)]
    assert a.allocate(9, 4) is None  # 6 slots free, but no 4 of them contiguous
    assert a.unusable_free_slots(4) == 6 and a.unusable_free_slots(3) == 0
    assert a.allocate(10, 2) == Region(0, 2)  # first fit, not best fit
    a.check()


def test_impossible_requests_raise_with_the_numbers():
    a = ContiguousAllocator(num_slots=8)
    with pytest.raises(ValueError, match="cannot reserve 9 slots in a pool of 8"):
        a.allocate(0, 9)
    with pytest.raises(ValueError, match="final length 3000 outside"):
        reservation_slots(Reservation.MAX, 3000, 2048)


@given(final_len=st.integers(1, 2048))
def test_reservations_bound_the_final_length_as_each_policy_promises(final_len):
    exact = reservation_slots(Reservation.ORACLE, final_len, 2048)
    pow2 = reservation_slots(Reservation.POW2, final_len, 2048)
    assert exact == final_len
    assert final_len <= pow2 < 2 * final_len and pow2 & (pow2 - 1) == 0
    assert reservation_slots(Reservation.MAX, final_len, 2048) == 2048


@settings(max_examples=200, deadline=None)
@given(ops=st.lists(st.tuples(st.booleans(), st.integers(1, 12)), max_size=40))
def test_regions_stay_disjoint_and_none_only_when_no_hole_fits(ops):
    a, live, next_id = ContiguousAllocator(num_slots=32), [], 0
    for is_alloc, length in ops:
        if is_alloc or not live:
            largest = max((h.length for h in a.holes()), default=0)
            region = a.allocate(next_id, length)
            assert (region is None) == (largest < length)
            if region is not None:
                live.append(next_id)
            next_id += 1
        else:
            a.free(live.pop(length % len(live)))
        a.check()
    for seq in live:
        a.free(seq)
    assert a.holes() == [Region(0, 32)]
