"""The state of one request's run, handed from phase to phase (create, follow, finish).

Everything a later phase needs from an earlier one is here, in the open: the record as last stored
(creation fills in its cluster and pod name), the cancellation, and the track being followed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from gateway import domain
from gateway.clusters.tracking import PodTrack
from gateway.pods.cluster import PodCluster


@dataclass(slots=True)
class RunState:
    # Replaced by each store write (the store's answer is the truth), and once ahead of the store: the Pending
    # of a created pod, stored with the next write (creation.PENDING_STORED_WITHIN).
    record: domain.PodRecord
    cancel_reason: str = ""
    track: PodTrack | None = None  # set while the pod is followed, so a cancel wakes the follower
    # Accepted by this process just now (not resumed after a restart or taken over): its journal holds no
    # log line and no Kubernetes event yet, so following starts from nothing instead of reading it back.
    fresh: bool = False
    is_cancelled: bool = field(default=False, init=False)
    _cancelled: asyncio.Event | None = field(default=None, init=False, repr=False)

    @property
    def cancelled(self) -> asyncio.Event:
        """Set once cancelled. Made when first waited on: an Event is 0.74 KiB (its waiters' deque), kept for the
        pod's life, and only a run waiting for a cluster to come back waits on it (`is_cancelled` otherwise)."""
        if self._cancelled is None:
            self._cancelled = asyncio.Event()
            if self.is_cancelled:
                self._cancelled.set()
        return self._cancelled

    @property
    def request(self) -> domain.PodRequest:
        return self.record.request

    @property
    def request_id(self) -> str:
        return self.record.request.request_id

    def cancel(self, reason: str) -> None:
        self.cancel_reason = reason or "cancelled by the caller"
        self.is_cancelled = True
        if self._cancelled is not None:
            self._cancelled.set()
        if self.track is not None:
            self.track.poke()


@dataclass(frozen=True)
class Ending:
    """How a run ends: its result, and the cluster holding the pod when the finish action may delete it
    (None when there is no pod to act on, or no cluster left to act through)."""

    result: domain.PodResult
    cluster: PodCluster | None = None
