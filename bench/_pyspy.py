"""py-spy on the gateway process during a bench part: collapsed stacks recorded, the top frames printed.

Sampling from outside costs the gateway nothing (unlike cProfile, which slows it several-fold and shifts
where the time goes), and `--native` shows the C frames (grpc, ssl, sqlite) under the Python ones.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

PY_SPY = Path(sys.executable).parent / "py-spy"


@contextlib.contextmanager
def recording(pid: int, out: Path, *, native: bool = False, rate: int = 100) -> Iterator[None]:
    """Samples `pid` into `out` (collapsed stacks, one `frame;frame;... count` a line) while the block runs."""
    binary = str(PY_SPY) if PY_SPY.exists() else shutil.which("py-spy")
    if binary is None:
        raise SystemExit("--py-spy needs py-spy: .venv/bin/pip install py-spy (it is in the dev extra)")
    args = [binary, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "--output", str(out)]
    spy = subprocess.Popen([*args, *(["--native"] if native else [])], stdout=subprocess.DEVNULL)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        try:
            spy.wait(timeout=60)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()


def _frame(raw: str) -> str:
    """`func (path/to/module.py:LINE)` -> `func (module.py)`: lines apart, one function is one row."""
    name, _, where = raw.partition(" (")
    file = where.rsplit(":", 1)[0].rsplit("/", 1)[-1].rstrip(")")
    return f"{name} ({file})" if file else name


def top(path: Path, *, count: int = 25) -> str:
    """The functions with the most samples on top of the stack (own) and anywhere in it (inclusive)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack or not samples.isdigit():
            continue
        n = int(samples)
        frames = [_frame(f) for f in stack.split(";")]
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not total:
        return f"no samples in {path}"
    rows = [f"py-spy: {total} samples ({path})", f"  {'own %':>6}  function"]
    rows += [f"  {100 * n / total:6.1f}  {f}" for f, n in own.most_common(count)]
    rows += [f"  {'incl %':>6}  function"]
    rows += [f"  {100 * n / total:6.1f}  {f}" for f, n in inclusive.most_common(count)]
    return "\n".join(rows)
