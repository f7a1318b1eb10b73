"""Tests for kernels/receptive_field.py: composing real sliding-window masks layer by layer."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernels import receptive_field as rf
from kernels.reference import attention_mask


@given(st.integers(1, 40), st.integers(1, 12), st.integers(1, 6))
def test_composition_equals_the_closed_form(n, window, n_layers):
    field = rf.receptive_field(n, window, n_layers)
    expected = [rf.receptive_field_closed_form(i, window, n_layers) for i in range(n)]
    np.testing.assert_array_equal(field, expected)


@given(st.integers(1, 40), st.integers(1, 12), st.integers(1, 6))
def test_reach_is_the_contiguous_band_ending_at_each_position(n, window, n_layers):
    reach = rf.reachability(n, window, n_layers)
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    for layer in range(n_layers + 1):
        np.testing.assert_array_equal(reach[layer], (j <= i) & (i - j <= layer * (window - 1)))


def test_one_layer_is_the_mask_itself():
    mask = attention_mask(16, 16, causal=True, window=4)[0, 0]
    np.testing.assert_array_equal(rf.reachability(16, 4, 1)[1], mask)


def test_capped_at_the_sequence_start():
    # w = 4, L = 3: position 20 sees 3 x 3 + 1 = 10 tokens, position 5 only the 6 that exist.
    field = rf.receptive_field(24, 4, 3)
    assert field[20] == 10 and field[5] == 6 and field[0] == 1
    assert rf.span(4, 3) == 10


def test_window_one_never_spreads():
    np.testing.assert_array_equal(rf.receptive_field(10, 1, 5), np.ones(10, dtype=int))


def test_influence_of_the_first_token_moves_w_minus_1_per_layer():
    # The widget's view: token 0 has reached positions 0 .. l (w - 1) after layer l.
    spread = rf.influence(20, 4, 5, source=0)
    assert [int(row.sum()) for row in spread] == [1, 4, 7, 10, 13, 16]
    assert spread[2, 6] and not spread[2, 7]


def test_mistral_span_is_131_041_under_our_mask_convention():
    # arXiv:2310.06825: 32 layers x W = 4096 ~ "131K"; with i - w < j <= i it is 32 x 4095 + 1.
    assert rf.span(4096, 32) == 131_041
    assert 32 * 4096 - rf.span(4096, 32) == 31


def test_bad_arguments():
    with pytest.raises(ValueError, match="window must be a positive int, got 0"):
        rf.receptive_field(8, 0, 2)
    with pytest.raises(ValueError, match="n_layers must be a positive int, got 0"):
        rf.span(4, 0)
    with pytest.raises(ValueError, match=r"source must be in \[0, 8\), got 8"):
        rf.influence(8, 2, 2, source=8)
    with pytest.raises(ValueError, match="position must be >= 0, got -1"):
        rf.receptive_field_closed_form(-1, 4, 2)
