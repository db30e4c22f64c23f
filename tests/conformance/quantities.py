"""Quantities: input -> the value Kubernetes stores, in nanounits (1 CPU = 10^9), or REFUSED.

Kubernetes' rules (k8s.io/apimachinery/pkg/api/resource, quantity.go and suffix.go):
- Grammar (parseQuantityString, the Quantity doc comment): [+-]? then <digits> | <digits>.<digits> |
  <digits>. | .<digits> (ASCII '0'-'9' only), then one suffix: decimal n u m "" k M G T P E, binary
  Ki Mi Gi Ti Pi Ei, or e/E followed by a signed integer. Anything else is ErrFormatWrong / ErrSuffix.
- Quantity.UnmarshalJSON strips surrounding whitespace with strings.TrimSpace (Go's unicode.IsSpace) and
  reads a JSON number from its text: 0.1 is "0.1", never a float.
- ParseQuantity rounds every non-zero value up, away from zero, to 1n (inf.RoundUp at Nano scale).
- Magnitudes above 2^63-1 are capped at 2^63-1 (maxAllowed; the doc comment states the cap for every form).

Where apimachinery's behaviour is an accident, we refuse and say so here:
- A number without any digit (".", "+", "m", "Ki") is outside the documented <number> grammar; the parser
  accepts some as 0 and refuses others (".Ei", "-Pi") depending on its fast path. We refuse them all.
- An exponent is parsed as int64 then truncated to int32 (a known truncation, TOB-K8S-015): 1e4294967297
  would read as 1e1. We refuse exponents outside int32.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

N: Final = 10**9  # nanounits per unit
CAP: Final = (2**63 - 1) * N
REFUSED: Final = "refused"

QuantityInput = str | int | float | Decimal

QUANTITIES: list[tuple[QuantityInput, int | str]] = [
    # plain numbers and decimal suffixes
    ("0", 0),
    ("1", N),
    ("100m", 10**8),
    ("0.1", 10**8),
    ("7.7", 77 * 10**8),
    ("1.", N),  # <digits>.
    (".5", 5 * 10**8),  # .<digits>
    ("+1", N),
    ("-1", -N),  # the grammar allows a sign; refusing negative requests is validation's job
    ("007", 7 * N),
    ("1k", 1000 * N),
    ("1M", 10**6 * N),
    ("1G", 10**9 * N),
    ("1T", 10**12 * N),
    ("1P", 10**15 * N),
    ("1E", 10**18 * N),  # E alone is the exa suffix, not an exponent
    ("5n", 5),
    ("5u", 5000),
    # binary suffixes
    ("1Ki", 1024 * N),
    ("1.5Gi", 3 * 2**29 * N),
    ("128Mi", 128 * 2**20 * N),
    ("1Ti", 2**40 * N),
    ("1Pi", 2**50 * N),
    ("7Ei", 7 * 2**60 * N),
    ("0.1Ei", 2**60 * 10**8),
    ("0.0000000001Ki", 103),  # 102.4n rounds up
    # exponents: e or E, then a signed integer
    ("1e3", 1000 * N),
    ("1E3", 1000 * N),
    ("1e+3", 1000 * N),
    ("1e-3", 10**6),
    ("1.5e3", 1500 * N),
    ("1e0", N),
    ("1e-2147483648", 1),  # the int32 minimum
    ("1e2147483647", CAP),
    # rounding up, away from zero, to 1n
    ("0.1n", 1),
    ("1e-10", 1),
    ("-0.1n", -1),
    ("1.0000000001", N + 1),
    ("0." + "0" * 10_000 + "1", 1),  # long inputs cost a scan, not a big-number computation
    ("1e-10000000", 1),
    # the cap at 2^63-1
    ("9223372036854775807", CAP),
    ("9223372036854775808", CAP),
    ("12345678901234567890", CAP),
    ("8Ei", CAP),
    ("1e10000000", CAP),  # never builds 10^10,000,000
    ("1" + "0" * 10_000, CAP),
    ("-8Ei", -CAP),
    # strings.TrimSpace around JSON text (Go's unicode.IsSpace, not Python's str.isspace)
    (" 1 ", N),
    ("\t100m\n", 10**8),
    ("\u00a01\u3000", N),
    # JSON numbers: int, or Decimal from the manifest decoder; float (YAML) through its shortest text
    (0, 0),
    (5, 5 * N),
    (2**70, CAP),
    (Decimal("0.1"), 10**8),
    (Decimal("1E+3"), 1000 * N),
    (Decimal("7.7"), 77 * 10**8),
    (0.1, 10**8),
    (7.7, 77 * 10**8),
    (1e16, 10**16 * N),
    # refused: grammar
    ("", REFUSED),
    (" ", REFUSED),
    (".", REFUSED),
    ("+", REFUSED),
    ("-", REFUSED),
    ("m", REFUSED),
    ("Ki", REFUSED),
    ("e3", REFUSED),
    ("1e", REFUSED),  # lower-case e alone is no suffix
    ("1e+", REFUSED),
    ("1e3.5", REFUSED),
    ("1ee3", REFUSED),
    ("1kk", REFUSED),
    ("1K", REFUSED),  # decimal kilo is lower-case k
    ("1ki", REFUSED),
    ("1KB", REFUSED),
    ("1mi", REFUSED),
    ("1Ki5", REFUSED),
    ("1k+3", REFUSED),
    ("1 Gi", REFUSED),
    ("1.2.3", REFUSED),
    ("0x10", REFUSED),
    ("1_000", REFUSED),
    ("NaN", REFUSED),
    ("Infinity", REFUSED),
    # refused: non-ASCII digits (Go compares bytes with '0'..'9')
    ("\u0661\u0662", REFUSED),  # Arabic-Indic 12
    ("\uff11", REFUSED),  # fullwidth 1
    ("1e\u0663", REFUSED),
    # refused: whitespace Go does not trim (Python's isspace would)
    ("1\x1c", REFUSED),
    # refused: exponents beyond int32
    ("1e2147483648", REFUSED),
    ("1e-2147483649", REFUSED),
    ("1e99999999999999999999", REFUSED),
    # refused: not numbers
    (True, REFUSED),
    (float("nan"), REFUSED),
    (float("inf"), REFUSED),
    (Decimal("NaN"), REFUSED),
    # a Decimal is judged by str(Decimal), the text the gateway sends on: its normalised exponent counts
    (Decimal("1E+2147483647"), CAP),
    (Decimal("1E+2147483648"), REFUSED),
    (Decimal("1E-999999999999"), REFUSED),
    (Decimal("12345E+2147483640"), CAP),  # str() writes 1.2345E+2147483644, within int32
    (Decimal("12345E+2147483644"), REFUSED),  # str() writes 1.2345E+2147483648
]
