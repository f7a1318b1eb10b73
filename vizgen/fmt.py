"""Numbers as a reader writes them, shared by widgets and sheets."""

from __future__ import annotations

SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def sci(x: float, digits: int = 2) -> str:
    """6.5e-08 as '6.5 × 10⁻⁸' (`digits` significant digits)."""
    mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
    return f"{mantissa} × 10" + str(int(exponent)).translate(SUPERSCRIPT)


BINARY_UNITS = ((2**50, "PiB"), (2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"))
DECIMAL_FLOPS = ((1e18, "EFLOP"), (1e15, "PFLOP"), (1e12, "TFLOP"), (1e9, "GFLOP"), (1e6, "MFLOP"))


def significant(x: float, digits: int = 3) -> str:
    """x rounded to `digits` significant digits, never in exponent form: 100.2 -> '100'."""
    return f"{float(f'{x:.{digits}g}'):,g}"


def _scaled(x: float, units, digits: int, floor: str) -> str:
    for size, unit in units:
        if x >= size:
            return f"{significant(x / size, digits)} {unit}"
    return f"{significant(x, digits)} {floor}"


def binary_bytes(n_bytes: float, digits: int = 3) -> str:
    """Bytes in the largest binary unit that keeps the number >= 1: 3 * 2**30 -> '3 GiB'."""
    return _scaled(n_bytes, BINARY_UNITS, digits, "bytes")


def flops(x: float, digits: int = 3) -> str:
    """FLOPs in decimal SI units: 6.6e12 -> '6.6 TFLOP'."""
    return _scaled(x, DECIMAL_FLOPS, digits, "FLOP")


def seconds(x: float, digits: int = 2) -> str:
    """Wall time: 0.0123 -> '12 ms', 2.07 -> '2.1 s'."""
    return f"{significant(x, digits)} s" if x >= 1 else f"{significant(x * 1e3, digits)} ms"
