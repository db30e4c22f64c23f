"""How many requests of a kind one cluster's client has in flight at once.

A burst of one kind that nobody waits on must not take an API server's request slots from the requests somebody
does wait on. When 60 pods end together their runners delete them within a few milliseconds; an API server that
admits ten short requests at a time (kube-apiserver's max-in-flight filter, or a small priority level of API
Priority and Fairness) answered 39-55 of their 99-114 attempts 429, and the last pod went 3 s after the first
ended; with 8 deletes in flight at most, 60 attempts, no 429, 0.4-0.7 s (bench/finish_burst.py, bench/README.md
helper faults6). client-go bounds a client's rate for every request (a token bucket, 5 a second and bursts of 10 by
default); the gateway's creates and reads are latency-bound and paced by their callers, so only the kinds that
come in bursts of their own get a bound here, per cluster and per attempt (a request waiting out a Retry-After
holds no slot).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from gateway.clusters.kubeapi.request import Request

DELETES_IN_FLIGHT = 8  # see bench/README.md (helper faults6): 60 deletes at once against 10 slots


@dataclass(frozen=True, kw_only=True)
class Pacing:
    deletes: int = DELETES_IN_FLIGHT  # DELETE requests in flight at once to one cluster

    def __post_init__(self) -> None:
        if self.deletes < 1:
            raise ValueError(f"deletes in flight must be at least 1, got {self.deletes}")


DEFAULT_PACING = Pacing()
_FREE: contextlib.AbstractAsyncContextManager[None] = contextlib.nullcontext()


class Lanes:
    """The slots of one cluster's client: `slot(request)` is entered around each attempt of the request."""

    def __init__(self, pacing: Pacing = DEFAULT_PACING) -> None:
        self._deletes = asyncio.Semaphore(pacing.deletes)

    def slot(self, request: Request) -> contextlib.AbstractAsyncContextManager[object]:
        return self._deletes if request.method == "DELETE" else _FREE
