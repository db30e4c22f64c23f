"""py-spy on the gateway process during a bench part: collapsed stacks recorded, the top frames printed.

Sampling from outside costs the gateway nothing (unlike cProfile, which slows it several-fold and shifts
where the time goes), and `--native` shows the C frames (grpc, ssl, sqlite, uvloop) under the Python ones.

py-spy's idle detection does not work on this machine: threads blocked in a wait are sampled too. `top`
drops those samples (a thread pool's worker waiting for work, aiosqlite's and the metrics server's threads
waiting, the event loop or grpc's poller in epoll) and reports the busy ones only; without `--native` the
event loop's own C (uvloop's callbacks, its I/O) cannot be told from its wait in epoll and is counted busy.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

PY_SPY = Path(sys.executable).parent / "py-spy"
# A sample whose innermost Python frame is one of these (and that has no C frame doing work under it) waits.
WAIT_LINES = (
    "concurrent/futures/thread.py:81)",  # a pool worker waiting for work
    "aiosqlite/core.py:59)",  # aiosqlite's thread waiting for a call
    "selectors.py:415)",  # the metrics server's thread in poll
    "threading.py:982)",  # a thread in C only: grpc's poller (in epoll_wait, seen with --native)
)
# Native leaves that are blocked waits (libc's own unnamed frames under them are skipped first).
WAIT_CALLS = re.compile(
    r"^(epoll_wait|epoll_pwait|poll|select|pthread_cond_timedwait|pthread_cond_wait|PyThread_acquire_lock_timed|"
    r"sem_wait|sem_timedwait|nanosleep|clock_nanosleep|futex_wait|fdatasync|fsync) "
)  # fdatasync: SQLite's writer thread waiting for the disk at a COMMIT (synchronous=FULL): ~5 % CPU of its wall
_HEX = re.compile(r"^0x[0-9a-f]+ ")


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


def waiting(frames: list[str]) -> bool:
    """Whether a sample (its raw frames, outermost first) is a thread blocked in a wait, not work."""
    named = [f for f in frames if not _HEX.match(f)]
    if not named:
        return True
    leaf = named[-1]
    if WAIT_CALLS.match(leaf):
        return True
    python = [f for f in named if re.search(r"\.py:\d+\)$", f)]
    if not python or not python[-1].endswith(WAIT_LINES):
        return False
    return python[-1] == leaf or named.index(python[-1]) == len(named) - 1  # nothing native under the wait


def samples(path: Path) -> Iterator[tuple[list[str], int]]:
    """(raw frames outermost first, count) of each busy stack in a raw py-spy file."""
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            frames = stack.split(";")
            if not waiting(frames):
                yield frames, int(count)


def top(path: Path, *, count: int = 25) -> str:
    """The functions with the most busy samples on top of the stack (own) and anywhere in it (inclusive)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    every = sum(int(c) for line in path.read_text().splitlines() if (c := line.rpartition(" ")[2]).isdigit())
    for raw, n in samples(path):
        frames = [_frame(f) for f in raw if not _HEX.match(f)]
        total += n
        own[frames[-1] if frames else "?"] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not total:
        return f"no busy samples in {path}"
    rows = [f"py-spy: {total} busy samples of {every} ({path}; waiting threads left out)", f"  {'own %':>6}  function"]
    rows += [f"  {100 * n / total:6.1f}  {f}" for f, n in own.most_common(count)]
    rows += [f"  {'incl %':>6}  function"]
    rows += [f"  {100 * n / total:6.1f}  {f}" for f, n in inclusive.most_common(count)]
    return "\n".join(rows)


if __name__ == "__main__":  # .venv/bin/python bench/_pyspy.py FILE [COUNT]: the top frames of a recorded file
    print(top(Path(sys.argv[1]), count=int(sys.argv[2]) if len(sys.argv) > 2 else 25))
