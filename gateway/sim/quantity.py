"""Kubernetes resource quantities ("500m", "2Gi", "1e3", "0.5") as exact numbers (pure; no I/O).

Kubernetes compares quantities exactly, so they are parsed to `Fraction`, never to float: "0.1" CPU
three times must equal "300m".
"""

from __future__ import annotations

import functools
import math
import re
from fractions import Fraction

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}
_PATTERN = re.compile(
    r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?:([eE][+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?$"
)


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity; the message says what the format is."""


@functools.lru_cache(maxsize=4096)
def parse_quantity(value: str | int | float) -> Fraction:
    """The exact value of a quantity: "500m" -> 1/2, "2Gi" -> 2147483648 (memoised: the same few strings
    come back for every pod and node)."""
    if isinstance(value, bool):
        raise QuantityError(f"quantity {value!r} is a boolean; use a number or a string such as '500m' or '2Gi'")
    if isinstance(value, int | float):
        return Fraction(str(value))
    match = _PATTERN.match(value.strip())
    if match is None:
        raise QuantityError(
            f"quantity {value!r} does not match the Kubernetes format: a number optionally followed by a "
            "suffix (n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei) or an exponent (e.g. 1e3)"
        )
    number, exponent, suffix = match.groups()
    base = Fraction(number)
    if exponent:
        return base * Fraction(10) ** int(exponent[1:])
    if suffix in _BINARY:
        return base * _BINARY[suffix]
    return base * _DECIMAL[suffix or ""]


def to_millis(value: str | int | float) -> int:
    """CPU as millicores, rounded up like the scheduler does ("0.1" -> 100, "1m" -> 1)."""
    return math.ceil(parse_quantity(value) * 1000)


def to_int(value: str | int | float) -> int:
    """Memory, GPUs and counts as whole units, rounded up ("1.5Ki" -> 1536)."""
    return math.ceil(parse_quantity(value))
