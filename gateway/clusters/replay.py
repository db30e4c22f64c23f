"""The events of pods tracked again (a restart, a takeover, a replaced runtime) listed in rounds per namespace,
with a bound on the requests in flight per cluster (docs/decisions/0038, amended for a restart at fleet scale).

A gateway restarting with thousands of pods in flight tracks them all within a second; one events LIST per pod
is thousands of requests at the API server at once (429s under priority and fairness), each of which scans the
namespace's events there (the API server has no index on involvedObject.name). Here the pods that ask while their
namespace's round runs wait for its next round, which lists them together: one LIST of the namespace's pod events
when more than PER_POD_AT_MOST pods wait, each pod's own LIST otherwise (one pod followed again in a namespace of
a busy shared cluster does not page through everybody's events). At most `concurrency` LISTs run at once.

A pod joins only a round that starts after it asked. Its track exists before it asks, so the round's LIST holds
every event that the events watch gave out before the track existed (and dropped, as it tracked no such pod).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PER_POD_AT_MOST = 8  # a round of more pods lists its namespace's pod events once
RESUME_CONCURRENCY = 4  # events LISTs in flight per cluster at most
POD_EVENTS = "involvedObject.kind=Pod"
# A round of a big namespace pages through all its pod events (~700 bytes each): pages of 5,000 (~3.5 MB) make a
# tenth of the requests of client-go's 500, each of which an API server serving from etcd starts with a range read.
REPLAY_PAGE_SIZE = 5000

ListEvents = Callable[[str, str], Awaitable[Sequence[dict[str, Any]]]]  # (namespace, field selector) -> events
Deliver = Callable[[Sequence[dict[str, Any]]], None]  # listed events to the tracks of their pods


@dataclass(frozen=True, slots=True)
class Listing:
    """One LIST of a round: the events it asks for, and the pods whose events are taken from its answer."""

    namespace: str
    field_selector: str
    names: frozenset[str]


def plan(namespace: str, names: Collection[str], per_pod_at_most: int = PER_POD_AT_MOST) -> list[Listing]:
    """The LISTs of one round of `names` in `namespace`: each pod's own, or the namespace's pod events once."""
    if len(names) > per_pod_at_most:
        return [Listing(namespace, POD_EVENTS, frozenset(names))]
    return [Listing(namespace, f"involvedObject.name={name}", frozenset({name})) for name in sorted(names)]


def involved_name(obj: Mapping[str, Any]) -> str:
    """The pod an event is about; "" for an event whose involvedObject is missing or malformed (an API server's
    answer is input too: a string or a number there must not end the round and leave its pods' events unread)."""
    involved = obj.get("involvedObject")
    name = involved.get("name") if isinstance(involved, Mapping) else None
    return name if isinstance(name, str) else ""


@dataclass(slots=True)
class _Round:
    """The pods waiting for their namespace's next round, each with the outcome its waiters await."""

    waiters: dict[str, asyncio.Future[None]] = field(default_factory=dict)

    def waiter(self, name: str) -> asyncio.Future[None]:
        future = self.waiters.get(name)
        if future is None:
            future = self.waiters[name] = asyncio.get_running_loop().create_future()
            future.add_done_callback(_retrieved)  # all its waiters may be gone (runners dropped) when it fails
        return future


class EventReplay:
    """One cluster's rounds. `replay` returns once the pod's events are delivered, or raises the LIST's error
    (a KubeError, after the client's retries, which honour a 429's Retry-After)."""

    def __init__(
        self, list_events: ListEvents, deliver: Deliver, *, concurrency: int = RESUME_CONCURRENCY,
        per_pod_at_most: int = PER_POD_AT_MOST,
    ) -> None:  # fmt: skip
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self._list_events = list_events
        self._deliver = deliver
        self._per_pod_at_most = per_pod_at_most
        self._limit = asyncio.Semaphore(concurrency)
        self._waiting: dict[str, _Round] = {}  # namespace -> the round that has not started yet
        self._rounds: dict[str, asyncio.Task[None]] = {}  # namespace -> its task running rounds

    async def replay(self, namespace: str, name: str) -> None:
        waiting = self._waiting.get(namespace)
        if waiting is None:
            waiting = self._waiting[namespace] = _Round()
        future = waiting.waiter(name)
        if namespace not in self._rounds:
            self._rounds[namespace] = asyncio.create_task(self._run_rounds(namespace), name=f"replay:{namespace}")
        await asyncio.shield(future)  # a waiter cancelled (its runner dropped) leaves the round to the others

    async def close(self) -> None:
        """Stops the rounds; their waiters return (their follower then finds its runtime gone and follows again
        through the new one, which lists again)."""
        tasks = list(self._rounds.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for waiting in self._waiting.values():
            _settle(waiting.waiters.values(), None)
        self._waiting.clear()

    async def _run_rounds(self, namespace: str) -> None:
        try:
            while (current := self._waiting.pop(namespace, None)) is not None:
                try:
                    await asyncio.gather(*(self._list(listing, current) for listing in plan(
                        namespace, current.waiters, self._per_pod_at_most)))  # fmt: skip
                finally:
                    _settle(current.waiters.values(), None)  # cancelled (close): its waiters return
        finally:
            self._rounds.pop(namespace, None)

    async def _list(self, listing: Listing, current: _Round) -> None:
        waiters = [current.waiters[name] for name in listing.names]
        try:
            async with self._limit:
                listed = await self._list_events(listing.namespace, listing.field_selector)
        except Exception as e:  # each waiter's follower decides (it warns that held events may be missing)
            _settle(waiters, e)
            return
        self._deliver([obj for obj in listed if involved_name(obj) in listing.names])
        _settle(waiters, None)


def _settle(futures: Collection[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None) if error is None else future.set_exception(error)


def _retrieved(future: asyncio.Future[None]) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        future.exception()
