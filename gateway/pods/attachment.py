"""Who holds a request's disconnect policy, and its deadline, durable across restarts.

Only the client that ran the pod (RunPod) and a client that reattached in its place (WatchPod with
`reattach`) hold it; a plain watcher never does, so watching a pod can never cancel it. When the last
holder leaves before its stream delivered the result, the deadline (now plus the reattach grace; now for
CANCEL) is stored, and the pod is cancelled then unless a holder comes back first. A restarted gateway
re-arms the stored deadlines, so a policy outlives the gateway that started its clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

from gateway import domain
from gateway.observability import logging as logcontext
from gateway.store.base import Store

log = logging.getLogger(__name__)

Cancel = Callable[[str, str], Awaitable[None]]


def grace_of(request: domain.PodRequest) -> float:
    """Seconds a pod waits for its holder to come back."""
    if request.on_disconnect is domain.DisconnectPolicy.CANCEL:
        return 0.0
    return request.reattach_grace_seconds


def reason_of(request: domain.PodRequest) -> str:
    grace = grace_of(request)
    return "the client disconnected" if not grace else f"no client reattached within {grace:.0f}s"


class Attachment:
    """One holder's stay; `completed()` once its stream delivered the result (leaving then is no disconnect)."""

    def __init__(self) -> None:
        self.complete = False

    def completed(self) -> None:
        self.complete = True


class Attachments:
    def __init__(self, store: Store, *, cancel: Cancel, running: Callable[[str], bool]) -> None:
        self._store = store
        self._cancel = cancel
        self._running = running
        self._holders: dict[str, int] = {}
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._stored: set[str] = set()  # requests whose deadline is in the store
        self._closing = False

    def resume(self, record: domain.PodRecord) -> None:
        """After a restart: a deadline stored before it is applied as if the gateway had never stopped."""
        if record.reattach_deadline is not None:
            self._stored.add(record.request.request_id)
            self._arm(record.request, record.reattach_deadline, store=False)

    @contextlib.asynccontextmanager
    async def held(self, request: domain.PodRequest) -> AsyncIterator[Attachment]:
        """While a holder is attached; when the last one leaves early, the policy's clock starts."""
        request_id = request.request_id
        self._holders[request_id] = self._holders.get(request_id, 0) + 1
        self._disarm(request_id)
        if request_id in self._stored:
            self._stored.discard(request_id)
            await self._store.set_reattach_deadline(request_id, None)
        attachment = Attachment()
        try:
            yield attachment
        finally:
            self._holders[request_id] -= 1
            if not self._holders[request_id]:
                del self._holders[request_id]
                if not attachment.complete and self._running(request_id) and not self._closing:
                    deadline = datetime.now(UTC) + timedelta(seconds=grace_of(request))
                    self._arm(request, deadline, store=True)

    def forget(self, request_id: str) -> None:
        """The request ended: nothing left to cancel."""
        self._disarm(request_id)
        self._stored.discard(request_id)

    def drain(self) -> None:
        """The gateway is going down: clients leaving now will reattach to its successor."""
        self._closing = True

    async def close(self) -> None:
        self._closing = True
        timers = list(self._timers.values())
        self._timers.clear()
        for timer in timers:
            timer.cancel()
        await asyncio.gather(*timers, return_exceptions=True)

    def _arm(self, request: domain.PodRequest, deadline: datetime, *, store: bool) -> None:
        request_id = request.request_id
        self._timers[request_id] = logcontext.background(
            self._expire(request, deadline, store=store), name=f"reattach:{request_id}", request_id=request_id
        )

    def _disarm(self, request_id: str) -> None:
        timer = self._timers.pop(request_id, None)
        if timer is not None:
            timer.cancel()

    async def _expire(self, request: domain.PodRequest, deadline: datetime, *, store: bool) -> None:
        request_id = request.request_id
        if store:
            self._stored.add(request_id)
            await self._store.set_reattach_deadline(request_id, deadline)
        await asyncio.sleep(max(0.0, (deadline - datetime.now(UTC)).total_seconds()))
        self._timers.pop(request_id, None)
        if request_id in self._holders or not self._running(request_id):
            return  # a holder came back, or the pod finished meanwhile
        why = reason_of(request)
        log.info("cancelling %s: %s", request_id, why)
        await self._cancel(request_id, why)
