"""The process's file-descriptor budget: raised to the hard limit at start, and watched so the gateway
sheds load before it runs out rather than failing every call at once.

Each followed pod holds a log connection and each client a socket, so the soft limit (often 1,024)
caps how many pods one gateway follows. Running out surfaces as EMFILE/ENFILE on whatever opens a
socket or file next; `is_exhaustion` recognises it in an error's chain so callers answer
RESOURCE_EXHAUSTED and never take it for a cluster being unreachable.
"""

from __future__ import annotations

import errno
import math
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass

EXHAUSTION_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE})
UNLIMITED_CAP = 1 << 20  # a hard limit of "unlimited" is taken as the kernel's usual nr_open
FAR_FACTOR = 10  # below half the limit, descriptors are counted this many times less often


def is_exhaustion(exc: BaseException | None) -> bool:
    """Whether `exc`, or an error it was raised from, is this process (or host) out of descriptors."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        wrapped = getattr(exc, "os_error", None)  # aiohttp's connector errors keep the OSError there
        for candidate in (exc, wrapped):
            if isinstance(candidate, OSError) and candidate.errno in EXHAUSTION_ERRNOS:
                return True
        exc = exc.__cause__ or exc.__context__
    return False


@dataclass(frozen=True)
class Limit:
    before: int
    soft: int
    hard: int

    @property
    def reserve(self) -> int:
        """Descriptors kept for the store, probes and answering refusals once new work is shed."""
        return max(32, self.soft // 16)

    def describe(self) -> str:
        raised = f"raised from {self.before} to {self.soft}" if self.soft != self.before else f"{self.soft}"
        hard = "the hard limit" if self.soft == self.hard else f"hard limit {self.hard}"
        return (
            f"file descriptors: soft limit {raised} ({hard}): about {self.soft - self.reserve} followed pods "
            f"and clients at once (one connection each); new work is refused with RESOURCE_EXHAUSTED "
            f"within {self.reserve} of the limit"
        )


def raise_limit() -> Limit:
    """Raises the soft RLIMIT_NOFILE to the hard limit (an unprivileged process may), and says what it gave."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_CAP if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            target = soft
    else:
        target = soft
    return Limit(before=soft, soft=target, hard=hard)


def open_descriptors() -> int | None:
    """How many descriptors the process holds (Linux); None when unknown. Listing needs one itself: at
    exhaustion that fails, which is answered as "all of them"."""
    try:
        return len(os.listdir("/proc/self/fd")) - 1
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno in EXHAUSTION_ERRNOS:
            return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        return None


class Gauge:
    """Whether new work should be refused: the descriptors open now, or those the pods already admitted
    will hold once they all follow their logs (a burst of admissions comes before their connections),
    within the reserve of the soft limit. Counted at most every `every` seconds while more than half the
    limit is open, and ten times less often below that (listing /proc/self/fd costs about a microsecond per
    descriptor, and the gateway asks at every submission: thousands of followed pods made it a few per cent
    of the gateway's CPU; far from the limit, the pods admitted meanwhile are counted by `live_pods`)."""

    PER_POD = 2  # a followed pod's log connection, and slack for its reconnects and XCom exec
    # Logs on shared HTTP/2 connections: a pod's share of one (1/100) and slack for its XCom exec (an HTTP/1.1
    # WebSocket held for a moment at its end); a resumed log reuses the connection.
    PER_POD_HTTP2 = 0.1

    def __init__(self, *, every: float = 0.1, clock: Callable[[], float] = time.monotonic) -> None:
        self._every = every
        self._clock = clock
        self._at = float("-inf")
        self.open: int | None = None
        self.baseline = open_descriptors() or 0  # what the gateway holds before it follows any pod

    def short(self, live_pods: int = 0, *, http2: bool = False) -> tuple[int, int] | None:
        """(descriptors open or promised, soft limit) when new work should be refused; None otherwise.
        `http2`: the pods' logs share HTTP/2 connections, so a pod promises a tenth of a descriptor, not 2."""
        now = self._clock()
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        near = self.open is None or soft == resource.RLIM_INFINITY or 2 * self.open >= soft
        if now - self._at >= (self._every if near else FAR_FACTOR * self._every):
            self._at, self.open = now, open_descriptors()
        if self.open is None or soft == resource.RLIM_INFINITY:
            return None
        held = max(self.open, self.baseline + math.ceil((self.PER_POD_HTTP2 if http2 else self.PER_POD) * live_pods))
        reserve = Limit(before=soft, soft=soft, hard=soft).reserve
        return (held, soft) if held >= soft - reserve else None
