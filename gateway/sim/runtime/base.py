"""What the kubelet asks of a container runtime, and what it gets back (types only, no I/O)."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

SIGKILL_EXIT = 137


@dataclass(frozen=True)
class Mount:
    """A host path (a volume's directory, the termination-message file) shown at `target` in the container."""

    source: str
    target: str
    read_only: bool = False


@dataclass(frozen=True, kw_only=True)
class ContainerSpec:
    """One container to run, resolved by the kubelet: the command, its environment and its mounts."""

    namespace: str
    pod: str
    pod_uid: str
    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(repr=False)  # may hold secret values
    working_dir: str = ""
    mounts: tuple[Mount, ...] = ()
    memory_limit: int | None = None
    hostname: str = ""
    run_as_user: int | None = None
    run_as_group: int | None = None


@dataclass(frozen=True)
class ExitStatus:
    """How a container ended. `start_error` is set when its command could not even be started."""

    exit_code: int
    signal: int | None = None
    oom_killed: bool = False
    start_error: str | None = None


class ExecProcess(abc.ABC):
    """A command run inside a running container (`kubectl exec`); the API server pumps its streams.
    Subclasses set `_stdout` and `_stderr` once: each is one iterator for the exec's whole life."""

    _stdout: AsyncIterator[bytes]
    _stderr: AsyncIterator[bytes]

    @abc.abstractmethod
    async def write_stdin(self, data: bytes) -> None: ...

    @abc.abstractmethod
    def close_stdin(self) -> None: ...

    @property
    def stdout(self) -> AsyncIterator[bytes]:
        return self._stdout

    @property
    def stderr(self) -> AsyncIterator[bytes]:
        return self._stderr

    @abc.abstractmethod
    async def wait(self) -> int:
        """The exit code (128 + signal number when killed by a signal)."""

    @abc.abstractmethod
    def kill(self) -> None: ...

    def resize(self, columns: int, rows: int) -> None:  # noqa: B027 - optional for runtimes without a tty
        """Changes the terminal size of a tty exec; a no-op without a tty."""


class ExecError(Exception):
    """Exec could not start (no such container, container not running, command not found)."""


async def empty() -> AsyncIterator[bytes]:
    """An already finished byte stream."""
    nothing: tuple[bytes, ...] = ()
    for chunk in nothing:
        yield chunk
