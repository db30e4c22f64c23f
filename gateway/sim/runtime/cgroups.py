"""Memory limits through a memory cgroup per container, so the kernel OOM-kills like it does on a node.

Groups are made under this process's own memory cgroup (v1 `memory` controller or cgroup v2), which
keeps them inside whatever limits we already run under. Where neither is writable, `MemoryCgroups.
available` is False and the runtime falls back to RLIMIT_AS (and says so).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

_V1_ROOT = Path("/sys/fs/cgroup/memory")
_V2_ROOT = Path("/sys/fs/cgroup")


def _own_path(controller: str) -> str | None:
    """This process's cgroup path for a v1 controller (or "" for v2's unified line)."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controller in controllers.split(","):
                return path
    return None


class MemoryCgroups:
    def __init__(self, prefix: str) -> None:
        self.version, self._base = self._find(prefix)

    @staticmethod
    def _find(prefix: str) -> tuple[int, Path | None]:
        candidates = []
        own = _own_path("memory")
        if own is not None and (_V1_ROOT / "memory.limit_in_bytes").exists():
            candidates.append((1, _V1_ROOT / own.lstrip("/") / prefix))
        if (_V2_ROOT / "cgroup.controllers").exists():
            candidates.append((2, _V2_ROOT / (_own_path("") or "/").lstrip("/") / prefix))
        for version, base in candidates:
            try:
                base.mkdir(exist_ok=True)
            except OSError:
                continue
            return version, base
        return 0, None

    @property
    def available(self) -> bool:
        return self._base is not None

    def create(self, name: str, limit: int) -> str | None:
        """A new group limited to `limit` bytes (swap included), or None when cgroups are unavailable."""
        if self._base is None:
            return None
        path = self._base / name
        path.mkdir(exist_ok=True)
        if self.version == 1:
            (path / "memory.limit_in_bytes").write_text(str(limit))
            with contextlib.suppress(OSError):
                (path / "memory.memsw.limit_in_bytes").write_text(str(limit))
        else:
            (path / "memory.max").write_text(str(limit))
            with contextlib.suppress(OSError):
                (path / "memory.swap.max").write_text("0")
        return str(path)

    def oom_killed(self, path: str) -> bool:
        """Whether the kernel OOM-killed a process of this group."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        try:
            text = (Path(path) / name).read_text()
        except OSError:
            return False
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip() != "0":
                return True
        return False

    def remove(self, path: str) -> None:
        with contextlib.suppress(OSError):
            os.rmdir(path)

    def close(self) -> None:
        if self._base is not None:
            for child in self._base.iterdir():
                if child.is_dir():
                    self.remove(str(child))
            self.remove(str(self._base))
