"""Checks that simulator tests leave no process and no mount behind (used as module-scoped fixtures)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


def child_processes() -> list[str]:
    """Live (non-zombie) descendants of this test process, as "pid command" strings."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name_end = stat.rindex(")")
        fields = stat[name_end + 2 :].split()
        if fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
            names[int(entry.name)] = stat[stat.index("(") + 1 : name_end]
    mine = {os.getpid()}
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in mine and pid not in mine:
                mine.add(pid)
                changed = True
    mine.discard(os.getpid())
    return sorted(f"{pid} {names[pid]}" for pid in mine)


def sim_mounts() -> list[str]:
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if "podgate-sim" in line]


def sim_cgroups() -> list[str]:
    """Memory cgroups the process runtime made for this test process and did not remove."""
    found = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        base = Path("/sys/fs/cgroup", "memory" if "memory" in controllers.split(",") else "", path.lstrip("/"))
        if controllers in ("memory", "") and base.is_dir():
            found += [str(p) for p in base.glob(f"podgate-sim-{os.getpid()}-*")]
    return found


@pytest.fixture(autouse=True, scope="module")
def no_leaks() -> Iterator[None]:
    """After the module: no process of ours is left and no simulator mount is visible."""
    yield
    assert child_processes() == []
    assert sim_mounts() == []
    assert sim_cgroups() == []
