"""Kubernetes resource quantities ("500m", "1.5Gi", "2e3") as exact fractions, rounded up like the scheduler."""

from __future__ import annotations

import math
import re
from fractions import Fraction

_QUANTITY = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))(?:([KMGTPE]i|[numkMGTPE])|[eE]([+-]?\d+))?")
_SUFFIX = {
    "": Fraction(1),
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
}


def parse_quantity(raw: str | int | float) -> Fraction:
    """The exact value of a quantity; ValueError naming the accepted forms when it is not one."""
    if isinstance(raw, bool):
        raise ValueError(f"{raw!r} is not a quantity")
    if isinstance(raw, int | float):
        if not math.isfinite(raw):
            raise ValueError(f"{raw!r} is not a quantity")
        return Fraction(raw)
    match = _QUANTITY.fullmatch(raw.strip()) if isinstance(raw, str) else None
    if match is None:
        raise ValueError(f"{raw!r} is not a quantity (e.g. 500m, 2, 1.5Gi, 128Mi, 1e3)")
    number, suffix, exponent = match.groups()
    value = Fraction(number)
    if exponent is not None:
        return value * Fraction(10) ** int(exponent)
    return value * _SUFFIX[suffix or ""]


def to_millis(value: Fraction) -> int:
    """CPU in millicores, rounded up (0.0001 cpu asks for 1m, as Kubernetes rounds)."""
    return math.ceil(value * 1000)


def to_units(value: Fraction) -> int:
    """Bytes or device counts, rounded up."""
    return math.ceil(value)


def format_bytes(n: int) -> str:
    for unit, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if n >= size:
            return f"{round(n / size, 1):g}{unit}"
    return str(n)


def format_millis(m: int) -> str:
    return str(m // 1000) if m % 1000 == 0 else f"{m}m"
