"""Container logs as the kubelet keeps them: timestamped lines per container run, the current run and the
previous one, kept after exit while the pod exists, bounded in memory (the oldest lines go first, like
log rotation), and readable with the `pods/log` options (follow, timestamps, sinceTime, sinceSeconds,
tailLines, limitBytes, previous).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

DEFAULT_MAX_BYTES = 10 * 1024 * 1024  # the kubelet's default containerLogMaxSize
MAX_LINE = 16 * 1024  # CRI splits longer lines
READ_CHUNK = 64 * 1024


def format_timestamp(ns: int) -> str:
    """RFC3339 with nine fractional digits, as `kubectl logs --timestamps` prints."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{fraction:09d}Z"


def parse_timestamp(text: str) -> int:
    """Nanoseconds since the epoch of an RFC3339 time (fractional digits beyond microseconds are kept)."""
    text = text.strip().replace("z", "Z")
    fraction_ns = 0
    if "." in text:
        head, rest = text.split(".", 1)
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits) :]
        fraction_ns = int((digits + "000000000")[:9])
        text = head + zone
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(moment.timestamp()) * 1_000_000_000 + fraction_ns


@dataclass(frozen=True)
class LogOptions:
    """The `pods/log` query, already parsed. Times are nanoseconds since the epoch."""

    follow: bool = False
    timestamps: bool = False
    since_ns: int | None = None
    tail_lines: int | None = None
    limit_bytes: int | None = None


class ContainerLog:
    """The output of one run of one container. Writers call `write` then `close`; readers `read`."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._lines: deque[tuple[int, bytes]] = deque()
        self._dropped = 0
        self._size = 0
        self._max = max_bytes
        self._partial: dict[str, bytes] = {}
        self._changed = asyncio.Event()
        self.closed = False

    def write(self, data: bytes, stream: str = "stdout", ns: int | None = None) -> None:
        """Appends output; complete lines become visible at once, a trailing partial line waits for more."""
        buffer = self._partial.pop(stream, b"") + data
        *complete, rest = buffer.split(b"\n")
        for line in complete:
            self._append(line + b"\n", ns)
        while len(rest) >= MAX_LINE:
            self._append(rest[:MAX_LINE], ns)
            rest = rest[MAX_LINE:]
        if rest:
            self._partial[stream] = rest

    def entries(self) -> list[tuple[int, bytes]]:
        """Every kept (timestamp ns, line) pair."""
        return list(self._lines)

    def tail(self, count: int) -> list[bytes]:
        """The last `count` complete lines (without timestamps)."""
        return [line for _, line in list(self._lines)[-count:]]

    def line(self, text: str, ns: int | None = None) -> None:
        self.write(text.encode() + b"\n", ns=ns)

    def close(self) -> None:
        """The run ended: flushes partial lines and wakes followers so they finish."""
        for rest in self._partial.values():
            self._append(rest, None)
        self._partial.clear()
        self.closed = True
        self._wake()

    def _append(self, line: bytes, ns: int | None) -> None:
        self._lines.append((ns if ns is not None else time.time_ns(), line))
        self._size += len(line)
        while self._size > self._max and len(self._lines) > 1:
            self._size -= len(self._lines.popleft()[1])
            self._dropped += 1
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _start_index(self, options: LogOptions) -> int:
        index = self._dropped
        if options.since_ns is not None:
            index += sum(1 for ts, _ in self._lines if ts < options.since_ns)
        if options.tail_lines is not None:
            index = max(index, self._dropped + len(self._lines) - options.tail_lines)
        return index

    async def read(self, options: LogOptions) -> AsyncIterator[bytes]:
        """Yields lines (prefixed with their timestamp when asked), those already kept joined in chunks of up
        to READ_CHUNK bytes (a replay is a few large writes, not one per line); with `follow`, until the run
        ends."""
        index = self._start_index(options)
        budget = options.limit_bytes
        while True:
            lines: list[bytes] = []
            size = 0
            while index < self._dropped + len(self._lines) and size < READ_CHUNK and budget != 0:
                ts, line = self._lines[max(index, self._dropped) - self._dropped]
                index = max(index, self._dropped) + 1
                chunk = (format_timestamp(ts).encode() + b" " + line) if options.timestamps else line
                if budget is not None:
                    chunk = chunk[:budget]
                    budget -= len(chunk)
                lines.append(chunk)
                size += len(chunk)
            if lines:
                yield b"".join(lines)
            elif budget == 0 or not options.follow or self.closed:
                return
            else:
                await self._changed.wait()


class LogStore:
    """Logs of every container on a kubelet: (namespace, pod, container) -> current and previous run."""

    def __init__(self, max_bytes_per_container: int = DEFAULT_MAX_BYTES) -> None:
        self._runs: dict[tuple[str, str, str], tuple[ContainerLog, ContainerLog | None]] = {}
        self._max = max_bytes_per_container

    def open(self, namespace: str, pod: str, container: str) -> ContainerLog:
        """A new run of a container; the run before it becomes `previous`."""
        key = (namespace, pod, container)
        before = self._runs.get(key)
        log = ContainerLog(self._max)
        self._runs[key] = (log, before[0] if before else None)
        return log

    def get(self, namespace: str, pod: str, container: str, previous: bool = False) -> ContainerLog | None:
        runs = self._runs.get((namespace, pod, container))
        if runs is None:
            return None
        return runs[1] if previous else runs[0]

    def drop_pod(self, namespace: str, pod: str) -> None:
        """Forgets a deleted pod's logs (closing them, so followers end)."""
        for key in [k for k in self._runs if k[:2] == (namespace, pod)]:
            for log in self._runs.pop(key):
                if log is not None and not log.closed:
                    log.close()
