"""One gateway per state directory: an exclusive flock on `<state_dir>/podgate.lock`.

Two gateways on one SQLite file would both resume the same unfinished requests and follow, fail over and
finish the same pods; two embedded simulators would overwrite each other's kubeconfigs. The second one
refuses to start, naming the first from what it wrote in the lock file (pid, host, listen address).
The kernel drops an flock when its holder dies, however it dies, so a lock is never stale: the file's
contents only describe the holder, they never decide anything. (flock on NFS is emulated with byte-range
locks since Linux 2.6.12 and holds across hosts; a state directory is local anyway.)
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

from gateway.errors import FailedPrecondition

LOCK_FILE = "podgate.lock"
READ_ATTEMPTS = 20  # the holder may be between truncating the file and writing itself into it


@dataclass(frozen=True, kw_only=True)
class Holder:
    """Who holds a state directory, as its lock file says."""

    pid: int
    host: str
    listen: str
    since: str

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host}, listening on {self.listen} (since {self.since})"

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        try:
            data = json.loads(text)
            return cls(
                pid=int(data["pid"]), host=str(data["host"]), listen=str(data["listen"]), since=str(data["since"])
            )
        except (ValueError, TypeError, KeyError):
            return None


class StateDirInUse(FailedPrecondition):
    """Another live gateway holds the state directory."""


class StateLock:
    """Held from `acquire()` until `release()` or the process's end; `update()` rewrites the description."""

    def __init__(self, path: Path, fd: int, holder: Holder) -> None:
        self.path = path
        self.holder = holder
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, state_dir: Path, *, listen: str) -> Self:
        """Takes the lock or raises StateDirInUse naming the holder. Blocking file I/O: call it in a thread."""
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            raise StateDirInUse(_in_use(state_dir, path)) from None
        holder = Holder(pid=os.getpid(), host=socket.gethostname(), listen=listen, since=_now())
        lock = cls(path, fd, holder)
        lock._write(holder)
        return lock

    def update(self, *, listen: str) -> None:
        """Once the port is bound (a configured port 0 becomes the real one)."""
        self.holder = Holder(pid=self.holder.pid, host=self.holder.host, listen=listen, since=self.holder.since)
        self._write(self.holder)

    def release(self) -> None:
        """Closing the descriptor drops the flock; the file stays (removing it would race a new holder)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _write(self, holder: Holder) -> None:
        assert self._fd is not None
        data = json.dumps(asdict(holder)).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)


def _in_use(state_dir: Path, path: Path) -> str:
    holder = None
    for _ in range(READ_ATTEMPTS):
        holder = Holder.parse(path.read_text(encoding="utf-8", errors="replace"))
        if holder is not None:
            break
        time.sleep(0.01)
    who = holder.describe() if holder is not None else "a process that has not yet written who it is"
    return (
        f"state directory {state_dir} is in use by another gateway: {who}; "
        "stop it, or give this one another --state-dir"
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
