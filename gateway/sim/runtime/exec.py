"""A process started for `kubectl exec`: pipes, or a pseudo-terminal when a tty is asked for."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import struct
import termios
from collections.abc import AsyncIterator

from gateway.sim.runtime.base import ExecError, ExecProcess, empty

CHUNK = 65536


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


class ProcessExec(ExecProcess):
    def __init__(self, proc: asyncio.subprocess.Process, master: int | None) -> None:
        self._proc = proc
        self._master = master
        self._tty_output: asyncio.Queue[bytes] | None = None
        self._tty_closed = asyncio.Event()
        if master is not None:
            self._tty_output = asyncio.Queue()
            os.set_blocking(master, False)
            asyncio.get_running_loop().add_reader(master, self._on_tty_readable)
        self._stdout = self._drain_tty() if master is not None else _read(proc.stdout)
        self._stderr = empty() if master is not None else _read(proc.stderr)

    @classmethod
    async def start(
        cls, argv: list[str], env: dict[str, str], *, stdin: bool, tty: bool, cwd: str | None = None
    ) -> ProcessExec:
        master = slave = None
        if tty:
            master, slave = os.openpty()
        try:
            pipe = asyncio.subprocess.PIPE
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=slave if tty else (pipe if stdin else asyncio.subprocess.DEVNULL),
                stdout=slave if tty else pipe,
                stderr=slave if tty else pipe,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as e:
            if master is not None:
                os.close(master)
            raise ExecError(f'exec: "{argv[0]}": {e.strerror}') from e
        finally:
            if slave is not None:
                os.close(slave)
        return cls(proc, master)

    def _on_tty_readable(self) -> None:
        assert self._master is not None and self._tty_output is not None
        try:
            data = os.read(self._master, CHUNK)
        except BlockingIOError:
            return
        except OSError:  # EIO: every holder of the terminal's other side is gone
            data = b""
        self._tty_output.put_nowait(data)
        if not data:
            asyncio.get_running_loop().remove_reader(self._master)
            self._tty_closed.set()

    async def write_stdin(self, data: bytes) -> None:
        if self._master is not None:
            await asyncio.to_thread(os.write, self._master, data)
        elif self._proc.stdin is not None and not self._proc.stdin.is_closing():
            self._proc.stdin.write(data)
            with contextlib.suppress(ConnectionError):
                await self._proc.stdin.drain()

    def close_stdin(self) -> None:
        if self._master is not None:
            with contextlib.suppress(OSError):
                os.write(self._master, b"\x04")
        elif self._proc.stdin is not None:
            self._proc.stdin.close()

    async def _drain_tty(self) -> AsyncIterator[bytes]:
        assert self._tty_output is not None
        while data := await self._tty_output.get():
            yield data

    async def wait(self) -> int:
        code = await self._proc.wait()
        if self._master is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._tty_closed.wait(), 1.0)
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._master)
            with contextlib.suppress(OSError):
                os.close(self._master)
            self._master = None
            if self._tty_output is not None and not self._tty_closed.is_set():
                self._tty_output.put_nowait(b"")
        return 128 - code if code < 0 else code

    def kill(self) -> None:
        """Kills the command (and what nsenter forked into the container), not just its parent."""
        for pid in [*_children(self._proc.pid), self._proc.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def resize(self, columns: int, rows: int) -> None:
        if self._master is not None:
            fcntl.ioctl(self._master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


async def _read(stream: asyncio.StreamReader | None) -> AsyncIterator[bytes]:
    while stream is not None and (chunk := await stream.read(CHUNK)):
        yield chunk
