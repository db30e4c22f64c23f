"""Follows one container's log across cut streams, losing and repeating no line.

Kubernetes resumes a log only by `sinceTime` (second precision), so after a cut the stream is reopened
from the second of the last line seen, and lines up to that line are skipped by (timestamp, count).

A stream silent past the client's log read deadline (`Timeouts.log_inactivity`, raising StreamSilent) is
reopened at once: the connection may have been dropped without FIN or RST, and a silent container costs
one cheap request per deadline. Other failures wait a jittered backoff, so followers cut together by an
API-server blip come back spread out.

A stream that ends cleanly is read once more after the container has ended, unless the container had ended
before it opened: an API server ends its answer normally when its connection to the kubelet breaks, so a
clean end is no proof that the log was read to its end (docs/decisions/0033-log-completeness-check.md). That
read waits for the pod's watch to show the end (at most END_UNSEEN_SECONDS), which may come after the stream's.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from gateway import domain
from gateway.clusters.kubeapi.errors import StreamSilent
from gateway.clusters.kubeapi.retry import Draw, backoff_delay

log = logging.getLogger(__name__)

RECONNECT_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)
CRI_PARTIAL_BYTES = 16 * 1024  # container runtimes split longer lines into partial records of this size
_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d) ")
GIVE_UP_AFTER_DONE = 3  # failed reopenings once the container has ended (e.g. the pod is gone)
# A stream that ended cleanly before the watch showed its container's end is reopened once the watch shows it, or
# after this long: a running container's stream cut cleanly (the API server's kubelet connection broken) resumes
# this late; an ended container's, whose end the watch shows late, is not read once more for nothing.
END_UNSEEN_SECONDS = 5.0


class LogSource(Protocol):
    def stream_logs(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        follow: bool,
        timestamps: bool,
        since_time: datetime | None,
    ) -> AsyncIterator[str]: ...


def parse_timestamp(text: str) -> datetime:
    """RFC 3339 with up to nanoseconds (the kubelet's format); sub-microsecond digits are dropped."""
    head, _, frac = text.rstrip("Z").partition(".")
    micros = int((frac + "000000")[:6]) if frac else 0
    if _CANONICAL.fullmatch(head):  # every line's stamp: read by slicing, as strptime reads it (~1 us, not ~9)
        return datetime(
            int(head[:4]), int(head[5:7]), int(head[8:10]), int(head[11:13]), int(head[14:16]), int(head[17:19]),
            micros, tzinfo=UTC,
        )  # fmt: skip
    base = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return base.replace(microsecond=micros)


_CANONICAL = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}")


def _utf8_index(text: str, size: int) -> int:
    """The index in `text` where its UTF-8 encoding reaches `size` bytes, or -1 (past the end or inside a character)."""
    total = 0
    for index, char in enumerate(text):
        if total == size:
            return index
        total += len(char.encode())
    return -1


def join_partials(text: str) -> str:
    """One logical line from the CRI's pieces: the runtime writes a line longer than 16 KiB as partial records,
    and the kubelet prefixes each with its own timestamp when asked for timestamps, inside the line."""
    if len(text) <= CRI_PARTIAL_BYTES // 4:  # too short to hold 16 KiB of UTF-8
        return text
    pieces = []
    while (cut := _utf8_index(text, CRI_PARTIAL_BYTES)) >= 0 and (stamp := _STAMP.match(text, cut)) is not None:
        pieces.append(text[:cut])
        text = text[stamp.end() :]
    return "".join(pieces) + text


def parse_line(raw: str, container: str) -> domain.LogLine:
    """Splits "TIMESTAMP text" as the API server sends it with timestamps=true."""
    stamp, _, text = raw.rstrip("\n").partition(" ")
    try:
        when = parse_timestamp(stamp)
    except ValueError:
        return domain.LogLine(container=container, time=datetime.now(UTC), text=raw.rstrip("\n"))
    return domain.LogLine(container=container, time=when, text=join_partials(text))


@dataclass(slots=True)
class LogPosition:
    """Where a follower is: the last line's time and how many lines carried exactly that time."""

    last_time: datetime | None = None
    seen_at_last: int = 0

    def since(self) -> datetime | None:
        return None if self.last_time is None else self.last_time.replace(microsecond=0)

    def advance(self, line: domain.LogLine) -> None:
        if line.time == self.last_time:
            self.seen_at_last += 1
        else:
            self.last_time, self.seen_at_last = line.time, 1


@dataclass(slots=True)
class ResumedStream:
    """Filters one reopened stream: drops what precedes the position, then passes everything."""

    position: LogPosition
    caught_up: bool = False
    skipped_at_last: int = 0

    def accept(self, line: domain.LogLine) -> bool:
        last = self.position.last_time
        if not self.caught_up and last is not None:
            if line.time < last:
                return False
            if line.time == last and self.skipped_at_last < self.position.seen_at_last:
                self.skipped_at_last += 1
                return False
        self.caught_up = True
        self.position.advance(line)
        return True


@dataclass(slots=True)
class LogFollower:
    """One container's log as an async iterator of new lines; ends once the container has ended and all is read."""

    source: LogSource
    namespace: str
    pod: str
    container: str
    container_done: Callable[[], bool]
    wait_change: Callable[[float], Awaitable[None]]  # the pod's next change, left to its follower (PodTrack.wait_next)
    position: LogPosition = field(default_factory=LogPosition)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    draw: Draw = random.random
    clock: Callable[[], float] = time.monotonic

    async def lines(self) -> AsyncIterator[domain.LogLine]:
        """One generator for the follower's whole life, reading each stream inline (a nested generator per
        stream would be another frame, and another entry in the loop's set of generators, per followed log)."""
        attempt = 0
        while True:
            done_before = self.container_done()
            resumed = ResumedStream(self.position)
            try:
                stream = self.source.stream_logs(
                    self.namespace, self.pod, self.container, follow=True, timestamps=True,
                    since_time=self.position.since(),
                )  # fmt: skip
                async for raw in stream:
                    line = parse_line(raw, self.container)
                    if resumed.accept(line):
                        attempt = 0
                        yield line
                    del raw, line  # else held by this frame while the container is silent (a line can be 16 KiB+)
            except StreamSilent:
                log.debug("log stream %s/%s[%s] silent; reopening", self.namespace, self.pod, self.container)
                continue
            except Exception as e:
                if self.container_done() and attempt >= GIVE_UP_AFTER_DONE:
                    log.warning(
                        "log of %s/%s[%s] unreadable after the container ended (%s); stopping",
                        self.namespace,
                        self.pod,
                        self.container,
                        e,
                    )
                    return
                attempt += 1
                delay = backoff_delay(RECONNECT_DELAYS, attempt, self.draw())
                log.info(
                    "log stream %s/%s[%s] cut (%s); resuming in %.1fs",
                    self.namespace,
                    self.pod,
                    self.container,
                    type(e).__name__,
                    delay,
                )
                await self.sleep(delay)
                continue
            if done_before:
                return
            await self._wait_for_end()

    async def _wait_for_end(self) -> None:
        """After a stream that ended cleanly: until the watch shows the container ended (at once if it does), at
        most END_UNSEEN_SECONDS. Reopening sooner, while the watch lags behind the kubelet (a busy API server or
        gateway; a kubelet's status sync), costs a stream that ends at once and then the check after the end
        anyway: three reads a log instead of two. Changes of the pod that are not its container's end (its
        events, another container) are waited through."""
        deadline: float | None = None
        while not self.container_done():
            now = self.clock()
            if deadline is None:
                deadline = now + END_UNSEEN_SECONDS
            elif now >= deadline:
                return
            await self.wait_change(deadline - now)
