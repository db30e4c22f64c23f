"""`make bench`: every script under bench/ in a quick mode, one after the other, output as it comes.

Scripts with a `--quick` flag get it; the others get smaller sizes here. A script that fails is
reported and the others still run; the exit code is non-zero if any failed.

    .venv/bin/python bench/run_all.py [NAME ...]     # e.g. dispatch placement
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
QUICK_ARGS: dict[str, list[str]] = {
    "decode": ["--pods", "500"],
    "h2_streams": ["--streams", "300"],
    "dispatch": ["--quick"],
    "edge": ["--calls", "500", "--events", "200"],
    "kubeapi": ["--requests", "500", "--events", "300"],
    "memory_breakdown": ["--pods", "200", "--callers", "50"],
    "observability": ["--lines", "2000", "--clusters", "20"],
    "placement": ["--runs", "10"],
    "pod_schema": ["--rounds", "1"],
    "replicas": ["--pods", "100", "--callers", "50"],
    "sim_node": ["--pods", "1000"],
    "sim_pods": ["--pods", "1000"],
    "store": ["--lines", "10000"],
    "tls_streams": ["--streams", "300"],
}


def scripts() -> list[str]:
    return sorted(p.stem for p in BENCH.glob("*.py") if not p.stem.startswith("_") and p.stem != "run_all")


def main(names: list[str]) -> int:
    failed = []
    for name in names or scripts():
        command = [sys.executable, str(BENCH / f"{name}.py"), *QUICK_ARGS.get(name, [])]
        print(f"\n######## {name}: {' '.join(command[1:])}", flush=True)
        started = time.perf_counter()
        code = subprocess.call(command, cwd=BENCH.parent, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        print(
            f"######## {name}: {'ok' if code == 0 else f'FAILED (exit code {code})'} in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        if code:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
