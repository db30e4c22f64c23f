"""Kubernetes resource quantities ("500m", "1.5Gi", "2e3") as exact fractions, as the API server reads them.

Grammar and rounding are apimachinery's `resource.ParseQuantity` (see docs/decisions/0012-quantities-and-mirrors.md):
ASCII digits only, a suffix (n u m "" k M G T P E, Ki..Ei) or an integer exponent (e/E), values rounded
up, away from zero, to 1n; magnitudes saturate at 2^63-1 (Kubernetes' documented cap), so a hostile
"1e10000000" costs no more than "1". Arithmetic is `decimal` with a bounded precision: linear in the input.
The simulator's `gateway/sim/quantity.py` is an independent implementation of the same rules; the
conformance table in tests/conformance/ holds both to them.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_UP, Context, Decimal
from fractions import Fraction

QUANTITY_MAX = 2**63 - 1  # apimachinery's maxAllowed: the largest magnitude a quantity represents
MAX_EXPONENT = 2**31 - 1  # apimachinery keeps exponents in an int32 (down to -2^31)
# What Go's strings.TrimSpace strips (unicode.IsSpace); Quantity.UnmarshalJSON trims it around JSON text.
GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"

# Possessive quantifiers: no backtracking, so matching is linear however long the digit runs are.
_QUANTITY = re.compile(r"([+-]?)([0-9]*+)(?:\.([0-9]*+))?(?:([KMGTPE]i|[numkMGTPE])|[eE]([+-]?[0-9]++))?")
_DECIMAL_EXPONENT = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_EXPONENT = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_NANO = Decimal("1e-9")
# 60 digits: every value below the cap keeps 40 digits under the nano point, so rounding up to 60 digits
# and then to 1n equals rounding up to 1n once (the 60-digit grid refines the nano grid).
_CONTEXT = Context(prec=60, rounding=ROUND_UP, Emin=-(10**17), Emax=10**17)
_SHOWN = 40


class QuantityError(ValueError):
    """Not a Kubernetes quantity; the message names the accepted forms and never echoes more than 40 chars."""


def _shown(raw: object) -> str:
    text = raw if isinstance(raw, str) else repr(raw)
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")


def _refuse(raw: object, why: str) -> QuantityError:
    return QuantityError(f"{_shown(raw)} is not a quantity: {why} (e.g. 500m, 2, 1.5Gi, 128Mi, 1e3)")


def _exponent(text: str, raw: object) -> int:
    negative = text.startswith("-")
    digits = text.lstrip("+-").lstrip("0")
    if len(digits) > 10 or int(digits or "0") > MAX_EXPONENT + negative:
        raise _refuse(raw, "the exponent must fit in 32 bits")
    return -int(digits or "0") if negative else int(digits or "0")


def _saturated(value: Decimal) -> Fraction:
    return Fraction(QUANTITY_MAX if value > 0 else -QUANTITY_MAX)


def _exact(mantissa: Decimal, exponent10: int, exponent2: int) -> Fraction:
    """mantissa * 10^exponent10 * 2^exponent2, rounded up (away from zero) to 1n, saturated at the cap."""
    if mantissa.is_zero():
        return Fraction(0)
    value = mantissa.scaleb(exponent10, _CONTEXT)
    if value.adjusted() >= 19:  # at least 10^19 > 2^63-1 before any binary factor
        return _saturated(value)
    value = _CONTEXT.multiply(value, Decimal(2**exponent2))
    nanos = value.quantize(_NANO, rounding=ROUND_UP, context=_CONTEXT)
    if abs(nanos) > QUANTITY_MAX:
        return _saturated(nanos)
    return Fraction(nanos)


# Values read, by their text: a pod's few quantities ("10m", "16Mi") are read at its submission, at each
# placement and for each of its watch events; parsing one costs ~10 us of Decimal work, a lookup ~0.1 us.
# Only short texts are kept (a hostile megabyte of digits is not held), and only values (a refusal is
# raised anew, its message naming the caller's own value). Fractions are immutable: sharing one is safe.
_READ: dict[str, Fraction] = {}
_READ_MAX = 4096
_READ_TEXT_MAX = 64


def _from_text(text: str, raw: object) -> Fraction:
    value = _READ.get(text)
    if value is None:
        value = _parse_text(text, raw)
        if len(text) <= _READ_TEXT_MAX:
            if len(_READ) >= _READ_MAX:
                _READ.clear()
            _READ[text] = value
    return value


def _parse_text(text: str, raw: object) -> Fraction:
    match = _QUANTITY.fullmatch(text.strip(GO_SPACE))
    if match is None:
        raise _refuse(raw, "a number (ASCII digits) then a suffix n, u, m, k, M, G, T, P, E, Ki..Ei or e<exponent>")
    sign, whole, fraction, suffix, exponent = match.groups()
    if not whole and not fraction:
        raise _refuse(raw, "the number has no digits")
    mantissa = Decimal(f"{sign}{whole or '0'}.{fraction or '0'}")
    if exponent is not None:
        return _exact(mantissa, _exponent(exponent, raw), 0)
    if suffix in _BINARY_EXPONENT:
        return _exact(mantissa, 0, _BINARY_EXPONENT[suffix])
    return _exact(mantissa, _DECIMAL_EXPONENT[suffix or ""], 0)


def parse_quantity(raw: str | int | Decimal | float) -> Fraction:
    """The value of a quantity as the API server stores it; QuantityError when it would refuse it.

    Strings are read as Quantity.UnmarshalJSON reads them (surrounding whitespace trimmed). JSON numbers
    arrive as `int` or `Decimal` (the manifest decoder keeps their decimal text); a Decimal is judged by
    str(Decimal), the text the Kubernetes client sends on, so an exponent it normalises past int32 is
    refused here rather than by the API server. A `float` (from YAML configuration) is read through its
    shortest round-trip text, so 0.1 is 100m, never 100.000...0055m.
    """
    if isinstance(raw, bool):
        raise _refuse(raw, "a boolean is not a number")
    if isinstance(raw, int):
        return Fraction(max(-QUANTITY_MAX, min(QUANTITY_MAX, raw)))
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise _refuse(raw, "not a finite number")
        raw = Decimal(repr(raw))
    if isinstance(raw, Decimal):  # read as the text the gateway sends on to Kubernetes (str, not the digits written)
        if not raw.is_finite():
            raise _refuse(raw, "not a finite number")
        return _from_text(str(raw), raw)
    if isinstance(raw, str):
        return _from_text(raw, raw)
    raise _refuse(raw, f"a {type(raw).__name__} is not a number or a string")


def to_millis(value: Fraction) -> int:
    """CPU in millicores, rounded up (0.0001 cpu asks for 1m, as Quantity.MilliValue rounds).

    `math.ceil(value * 1000)` in integers: a Fraction's product goes through its generic operator
    fallbacks (~1.2 us, twice a pod), floor division of the numerator ~0.1 us."""
    return -(-value.numerator * 1000 // value.denominator)


def to_units(value: Fraction) -> int:
    """Bytes or device counts, rounded up (as Quantity.Value rounds): `math.ceil(value)` in integers."""
    return -(-value.numerator // value.denominator)


def format_bytes(n: int) -> str:
    for unit, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if n >= size:
            return f"{round(n / size, 1):g}{unit}"
    return str(n)


def format_millis(m: int) -> str:
    return str(m // 1000) if m % 1000 == 0 else f"{m}m"
