import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from vizgen import tracejson


def test_non_finite_floats_travel_as_strings():
    assert tracejson.to_jsonable([-math.inf, math.inf, math.nan]) == ["-inf", "inf", "nan"]


def test_rounds_to_fixed_significant_digits_and_drops_negative_zero():
    assert tracejson.to_jsonable(np.float32(1 / 3)) == 0.3333333
    assert tracejson.to_jsonable(-0.0) == 0.0
    assert str(tracejson.to_jsonable(-1e-30 * 0)) == "0.0"


def test_converts_numpy_and_torch_containers():
    value = {"a": np.arange(3), "b": torch.tensor([[1.5, 2.0]]), "c": (np.int64(2), np.bool_(True))}
    assert tracejson.to_jsonable(value) == {"a": [0, 1, 2], "b": [[1.5, 2.0]], "c": [2, True]}


def test_rejects_what_json_cannot_carry():
    with pytest.raises(TypeError, match="set"):
        tracejson.to_jsonable({"bad": {1, 2}})


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), max_size=20))
def test_dumps_is_deterministic_and_valid(values):
    first = tracejson.dumps({"data": values, "facts": {}})
    assert first == tracejson.dumps({"facts": {}, "data": list(values)})  # key order does not matter
    assert first.endswith(b"\n")
