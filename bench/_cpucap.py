"""A CPU cap per process for a bench run: each replica on a fixed share of a core, as on its own machine.

Two gateway replicas, PostgreSQL, the simulator and the callers share this machine's 2 cores, so whether a second
replica doubles throughput cannot be seen: whatever one replica leaves idle the others take. Capping each replica
at the same CFS quota (cgroup v1 `cpu` or v2 `cpu.max`) makes every replica a fixed-size machine: one replica's
throughput is what its quota buys, and two replicas scale by 2x less whatever they spend on each other (leases,
NOTIFY, reading each other's writes). The rest of the machine must stay under its share for the cap to be the
limit; the bench prints the cores busy so a reader can tell. Needs root and a mounted cpu controller.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

V1 = Path("/sys/fs/cgroup/cpu")
V2 = Path("/sys/fs/cgroup")
PERIOD_US = 100_000


def _root() -> tuple[Path, bool]:
    """The cpu hierarchy to make groups in, and whether it is cgroup v2."""
    if (V1 / "cpu.cfs_quota_us").exists():
        return V1, False
    controllers = V2 / "cgroup.controllers"
    if controllers.exists() and "cpu" in controllers.read_text().split():
        return V2, True
    raise SystemExit("--replica-cores needs a cgroup cpu controller (cgroup v1 cpu or v2 with cpu enabled)")


@contextlib.contextmanager
def capped(pids: Sequence[int], cores: float) -> Iterator[None]:
    """Each process in its own group with a quota of `cores` for the block; moved back and the groups removed after."""
    if cores <= 0:
        raise SystemExit("--replica-cores must be more than 0")
    root, v2 = _root()
    groups = []
    try:
        for pid in pids:
            group = root / f"podgate-bench-{os.getpid()}-{pid}"
            group.mkdir()
            groups.append(group)
            quota = int(cores * PERIOD_US)
            if v2:
                (group / "cpu.max").write_text(f"{quota} {PERIOD_US}")
            else:
                (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
                (group / "cpu.cfs_quota_us").write_text(str(quota))
            (group / "cgroup.procs").write_text(str(pid))  # every thread of the process, and those it starts later
        yield
    finally:
        for group in groups:
            with contextlib.suppress(OSError):
                for pid in (group / "cgroup.procs").read_text().split():
                    with contextlib.suppress(OSError):
                        (root / "cgroup.procs").write_text(pid)
            with contextlib.suppress(OSError):
                group.rmdir()


def throttled_seconds(pid: int) -> float:
    """Seconds `pid`'s group was held back by its quota so far (0 when not capped): the cap was the limit."""
    root, _ = _root()
    group = root / f"podgate-bench-{os.getpid()}-{pid}"
    with contextlib.suppress(OSError):
        for line in (group / "cpu.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "throttled_usec":
                return int(value) / 1e6
            if key == "throttled_time":  # cgroup v1, nanoseconds
                return int(value) / 1e9
    return 0.0
