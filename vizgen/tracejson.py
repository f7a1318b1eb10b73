"""Canonical JSON for traces: the same trace always gives the same bytes."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

SIGNIFICANT_DIGITS = 7  # float32 carries ~7; more would be noise, fewer would lose the story


def _float(x: float) -> float | str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"  # JSON has no infinities; the runtime parses these
    rounded = float(f"{x:.{SIGNIFICANT_DIGITS}g}")
    return 0.0 if rounded == 0 else rounded  # no "-0.0"


def to_jsonable(obj: Any) -> Any:
    """Plain data from numpy/torch values, with floats rounded to a fixed precision."""
    if isinstance(obj, dict):
        return {str(key): to_jsonable(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(value) for value in obj]
    if hasattr(obj, "detach"):  # a torch tensor, without importing torch here
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _float(float(obj))
    if obj is None or isinstance(obj, str):
        return obj
    raise TypeError(f"cannot put a {type(obj).__name__} into a trace")


def dumps(trace: dict) -> bytes:
    return (json.dumps(to_jsonable(trace), sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n").encode()
