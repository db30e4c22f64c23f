"""Quantity parsing cost, both implementations (placement and the simulator), on ordinary and hostile input.

Kubernetes caps quantities at 2^63-1 and rounds them to 1n, so no input needs more than a scan and a few
dozen digits of arithmetic. Before 0012 (docs/decisions/) "1e10000000" built 10^10,000,000 (21 s).
Run: .venv/bin/python bench/quantities.py [--runs N]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from gateway.placement.quantity import parse_quantity as placement_parse
from gateway.sim.quantity import _parse_text as sim_parse_uncached

INPUTS: list[tuple[str, str]] = [
    ("500m", "500m"),
    ("1.5Gi", "1.5Gi"),
    ("1e10000000", "1e10000000"),
    ("1e-2147483648", "1e-2147483648"),
    ("1 MiB of digits", "1" * 2**20),
    ("1 MiB of fraction", "0." + "0" * (2**20 - 3) + "1"),
    ("1 MiB of fraction, Ei", "0." + "7" * (2**20 - 4) + "Ei"),
    ("1 MiB, refused at its end", "1" * 2**20 + "x"),
]


def per_call(parse: Callable[[str], Fraction], text: str, runs: int) -> tuple[float, Any]:
    start = time.perf_counter()
    for _ in range(runs):
        try:
            result: Any = parse(text)
        except ValueError:
            result = "refused"
    return (time.perf_counter() - start) / runs, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    print(f"{'input':<28} {'placement':>12} {'simulator':>12}  value")
    for name, text in INPUTS:
        placement, value = per_call(placement_parse, text, runs)
        sim, sim_value = per_call(sim_parse_uncached, text, runs)
        assert value == sim_value, (name, value, sim_value)
        shown = str(value if value == "refused" else float(value))
        print(f"{name:<28} {placement * 1e6:>10.1f}us {sim * 1e6:>10.1f}us  {shown}")


if __name__ == "__main__":
    main()
