"""Kubernetes resource quantities ("500m", "2Gi", "1e3", "0.5") as the API server reads them (pure; no I/O).

A scanner shaped like apimachinery's `parseQuantityString`, then exact integer arithmetic in nanos, written
independently of the gateway's `placement/quantity.py` so each checks the other (tests/conformance/).
Kubernetes' rules: ASCII digits; one suffix (n u m "" k M G T P E, Ki..Ei) or an integer exponent; values
rounded up, away from zero, to 1n; magnitudes capped at 2^63-1. Only the digits that can change the
rounded result are ever converted to integers, so "1e10000000" or a megabyte of digits costs a scan.
"""

from __future__ import annotations

import functools
import math
import re
from decimal import Decimal
from fractions import Fraction

MAX_ALLOWED = 2**63 - 1
_NANOS_PER_UNIT = 10**9
_MAX_NANOS = MAX_ALLOWED * _NANOS_PER_UNIT  # 28 digits
_MAX_EXPONENT = 2**31 - 1
_DIGIT_RUN = re.compile(r"[0-9]*")
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
# Go's unicode.IsSpace, which strings.TrimSpace uses in Quantity.UnmarshalJSON (Python's isspace differs).
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
_CACHED_LENGTH = 64


class QuantityError(ValueError):
    """A value that is not a Kubernetes quantity; the message says what the format is."""


def _error(value: object, why: str) -> QuantityError:
    text = value if isinstance(value, str) else repr(value)
    shown = text if len(text) <= 40 else text[:40] + "..."
    return QuantityError(
        f"quantity {shown!r} does not match the Kubernetes format ({why}): a number (ASCII digits) optionally followed by a suffix "
        "(n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei) or an exponent (e.g. 1e3)"
    )


def _digits_end(text: str, pos: int) -> int:
    """Where the run of ASCII digits from `pos` ends (a C-speed scan: inputs may be a megabyte long)."""
    match = _DIGIT_RUN.match(text, pos)
    return match.end() if match else pos


def _scan(text: str) -> tuple[bool, str, str, str]:
    """(negative, whole digits, fraction digits, suffix) like parseQuantityString; the suffix is unchecked."""
    pos = 1 if text[:1] in ("+", "-") else 0
    negative = text[:1] == "-"
    end = _digits_end(text, pos)
    whole, pos = text[pos:end], end
    fraction = ""
    if text[pos : pos + 1] == ".":
        end = _digits_end(text, pos + 1)
        fraction, pos = text[pos + 1 : end], end
    if not whole and not fraction:
        raise _error(text, "has no digits")
    return negative, whole, fraction, text[pos:]


def _exponent(text: str, suffix: str) -> int:
    """The e/E exponent: a signed ASCII integer within int32 (apimachinery stores it as one)."""
    body = suffix[1:]
    sign = -1 if body[:1] == "-" else 1
    digits = body[1:] if body[:1] in ("+", "-") else body
    if not digits or _digits_end(digits, 0) != len(digits):
        raise _error(text, f"has an unknown suffix {suffix[:12]!r}")
    significant = digits.lstrip("0")
    if len(significant) > 10 or int(significant or "0") > (_MAX_EXPONENT + 1 if sign < 0 else _MAX_EXPONENT):
        raise _error(text, "has an exponent beyond 32 bits")
    return sign * int(significant or "0")


def _scale(text: str, suffix: str) -> tuple[int, int]:
    """(power of ten, power of two) the suffix multiplies by."""
    if suffix in _DECIMAL:
        return _DECIMAL[suffix], 0
    if suffix in _BINARY:
        return 0, _BINARY[suffix]
    if suffix[:1] in ("e", "E") and len(suffix) > 1:
        return _exponent(text, suffix), 0
    raise _error(text, f"has an unknown suffix {suffix[:12]!r}")


def _nanos(coefficient: str, power10: int, power2: int) -> int:
    """ceil(int(coefficient) * 10^power10 * 2^power2 * 10^9), capped; coefficient has no leading or
    trailing zeros. Digits past the point where they can only decide "round up or not" are dropped
    (keeping the divisor's power of ten >= power2 makes that exact: no integer lies strictly between
    the truncated value and the next one)."""
    shift = power10 + 9
    if len(coefficient) + shift > 29:  # >= 10^28 nanos before any binary factor: over the cap
        return _MAX_NANOS
    if shift >= 0:
        factor: int = 10**shift
        return min(_MAX_NANOS, (int(coefficient) * factor) << power2)
    dropped = max(0, -shift - power2)
    kept = coefficient[: max(0, len(coefficient) - dropped)]
    divisor: int = 10 ** (-shift - dropped)
    numerator = int(kept or "0") << power2
    if dropped:  # the dropped digits are not all zero (no trailing zeros): round up past them
        return min(_MAX_NANOS, numerator // divisor + 1)
    return min(_MAX_NANOS, -(-numerator // divisor))


def _parse_text(text: str) -> Fraction:
    negative, whole, fraction, suffix = _scan(text)
    power10, power2 = _scale(text, suffix)
    digits = (whole + fraction).lstrip("0")
    trimmed = digits.rstrip("0")
    if not trimmed:
        return Fraction(0)
    power10 += len(digits) - len(trimmed) - len(fraction)
    nanos = _nanos(trimmed, power10, power2)
    return Fraction(-nanos if negative else nanos, _NANOS_PER_UNIT)


@functools.lru_cache(maxsize=4096)
def _parse_cached(text: str) -> Fraction:
    return _parse_text(text)


def parse_quantity(value: str | int | Decimal | float) -> Fraction:
    """The exact value of a quantity: "500m" -> 1/2, "2Gi" -> 2147483648; QuantityError when the API server
    would refuse it. A float is read through its shortest round-trip text (0.1 -> "0.1")."""
    if isinstance(value, bool):
        raise _error(value, "is a boolean")
    if isinstance(value, int):
        return Fraction(max(-MAX_ALLOWED, min(MAX_ALLOWED, value)))
    if isinstance(value, Decimal):  # its text, as the gateway sends it on (never through a float)
        if not value.is_finite():
            raise _error(value, "is not a finite number")
        value = str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _error(value, "is not a finite number")
        value = repr(value)
    if not isinstance(value, str):
        raise _error(value, f"is a {type(value).__name__}")
    text = value.strip(_GO_SPACE)
    if not text:
        raise _error(value, "is empty")
    return _parse_cached(text) if len(text) <= _CACHED_LENGTH else _parse_text(text)


def to_millis(value: str | int | Decimal | float) -> int:
    """CPU as millicores, rounded up like the scheduler does ("0.1" -> 100, "1m" -> 1)."""
    return math.ceil(parse_quantity(value) * 1000)


def to_int(value: str | int | Decimal | float) -> int:
    """Memory, GPUs and counts as whole units, rounded up ("1.5Ki" -> 1536)."""
    return math.ceil(parse_quantity(value))
