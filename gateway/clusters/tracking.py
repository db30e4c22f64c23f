"""The gateway's view of one pod it follows: the latest object from the cluster's watch and new events.

Holds the latest state, not a queue of states, so a slow consumer costs nothing: it wakes up, reads
what the pod is now, and acts on that. A follower that `attach`es is woken only when what it acts on
changed (`progress`), and takes the events that come between its looks as they come (`take`), without a look.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable, Mapping
from typing import Any

from gateway import domain

log = logging.getLogger(__name__)

MAX_PENDING_EVENTS = 100
SAFETY_WAKE_SECONDS = 30.0  # the cluster's runtime pokes every track this often (`wait(None)` has no timer)
OWN_KEYS = "podgate.io/"  # the gateway's own labels and annotations (its request id, its managed-by)
KEPT_METADATA = ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp")
KEPT_STATUS = ("phase", "reason", "message")
KEPT_CONDITION = ("type", "status", "reason", "message")
KEPT_CONTAINER_STATUS = ("name", "state", "lastState")
SHARED_PARTS = 4096  # distinct conditions shared at most (a message can make each pod's its own)
WORD_CHARS = 64  # a longer string is no word of a small vocabulary: kept as it came
_shared_parts: dict[tuple[tuple[str, Any], ...], dict[str, Any]] = {}
_UNLOOKED = object()  # an attached follower's progress before its first look: any pod differs from it

Progress = Callable[[Mapping[str, Any]], object]  # what of a pod its follower acts on, compared by equality (status.py)


def kept(pod: Mapping[str, Any]) -> dict[str, Any]:
    """What the gateway keeps of one of its pods between watch events: its name and times, its own labels
    and annotations, its node and container names, and its status. Thousands of pods are followed at once;
    a whole pod (the spec, the caller's annotations, managed fields) is 10-20 KiB of dicts and strings, of
    which following, results and garbage collection read these few fields (pods/status.py, dispatcher)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    out_meta: dict[str, Any] = {key: meta[key] for key in KEPT_METADATA if key in meta}
    if "namespace" in out_meta:
        out_meta["namespace"] = _word(out_meta["namespace"])
    for field in ("labels", "annotations"):
        own = {_word(k): _word(v) if k == domain.MANAGED_BY_LABEL else v
               for k, v in (meta.get(field) or {}).items() if k.startswith(OWN_KEYS)}  # fmt: skip
        if own:
            out_meta[field] = own
    out_spec: dict[str, Any] = {
        field: [{"name": _word(c.get("name", ""))} for c in spec[field]]
        for field in ("initContainers", "containers")
        if spec.get(field)  # an empty list read as a missing one (status.py): not kept
    }
    if "nodeName" in spec:
        out_spec["nodeName"] = _word(spec["nodeName"])
    return {"metadata": out_meta, "spec": out_spec, "status": _kept_status(pod.get("status") or {})}


def _kept_status(status: Mapping[str, Any]) -> dict[str, Any]:
    """The status fields that pods/status.py and PodTrack read: its phase and reasons, its conditions without
    their times, and each container's name and states (not its image, ids, resources or readiness). A
    running pod's whole status decodes to ~7 KiB of dicts and strings, the kept part to ~1.5 KiB."""
    out: dict[str, Any] = {key: _word(status[key]) for key in KEPT_STATUS if key in status}
    if conditions := status.get("conditions"):
        out["conditions"] = [_shared({key: _word(c[key]) for key in KEPT_CONDITION if key in c}) for c in conditions]
    for field in ("initContainerStatuses", "containerStatuses"):
        if field in status:
            out[field] = [_kept_container(cs) for cs in status[field] or ()]
    return out


def _kept_container(cs: Mapping[str, Any]) -> dict[str, Any]:
    """A container's name and states (`{"running": {"startedAt": ...}}`), their keys one copy for all pods, an
    empty state (a `lastState` before any restart) one dict for all."""
    out = {key: _keyed(cs[key]) for key in KEPT_CONTAINER_STATUS if key in cs}
    if "name" in out:
        out["name"] = _word(out["name"])
    return out


def _keyed(value: Any) -> Any:
    """`value` with every dict's keys as words (recursively), an empty dict shared."""
    if not isinstance(value, Mapping):
        return value
    return {_word(k): _keyed(v) for k, v in value.items()} if value else _shared({})


def _word(value: Any) -> Any:
    """One copy for every pod of a string from a small vocabulary (a phase, a condition's type and status, a
    namespace, a container or node name): the watch decodes each pod's own copies, ~50 bytes each."""
    return sys.intern(value) if isinstance(value, str) and len(value) <= WORD_CHARS else value


def _shared(part: dict[str, Any]) -> dict[str, Any]:
    """One dict for every equal part of many pods (a running pod's four conditions are the same in every
    pod once their times are dropped): kept pods are read, never changed. Bounded: past SHARED_PARTS
    distinct parts a new one is kept as its own."""
    try:
        key = tuple(part.items())
        found = _shared_parts.get(key)
    except TypeError:  # an unhashable value in a malformed object: kept as it is
        return part
    if found is not None:
        return found
    if len(_shared_parts) < SHARED_PARTS:
        _shared_parts[key] = part
    return part


class PodTrack:
    """Thousands are held at once, one per followed pod: slots, and waiting on a bare future with a timer
    (`wait`) instead of an Event and an `asyncio.timeout` (1.5 KiB a pod while its follower waits)."""

    __slots__ = (
        "_changed", "_event_added", "_event_keys", "_events", "_looked", "_next", "_progress", "_synced", "_take",
        "_waiter", "pod", "seen",
    )  # fmt: skip

    def __init__(self, synced: asyncio.Event) -> None:
        self.pod: Mapping[str, Any] | None = None
        self.seen = False  # the pod has existed at some point while tracked
        self._synced = synced
        self._changed = False  # a change `wait` has not taken yet: the pod's follower is its one consumer
        self._waiter: asyncio.Future[None] | None = None  # what `wait` awaits, while it waits
        self._next: asyncio.Event | None = None  # made by wait_next only, dropped at the change that sets it
        self._event_added: asyncio.Event | None = None  # made by settle_events only (an Event is 0.74 KiB a pod)
        self._events: list[domain.KubernetesEvent] = []
        self._event_keys: set[tuple[str, int]] = set()
        self._progress: Progress | None = None  # set while a follower is attached
        self._take: Callable[[], None] | None = None  # the attached follower's: drains the events at once
        self._looked: object = _UNLOOKED  # the progress of the pod the attached follower last looked at

    def update(self, pod: Mapping[str, Any] | None) -> None:
        """The pod as the watch shows it now (None: gone). An attached follower is woken only when the pod's
        progress differs from what it last looked at: a bind, a condition or a message leaves it asleep."""
        self.pod = pod
        self.seen = self.seen or pod is not None
        if self._progress is None or self._progress_of(pod) != self._looked:
            self._signal()
        self._signal_next()

    def add_event(self, key: tuple[str, int], event: domain.KubernetesEvent) -> None:
        """Adds an event once (by uid and count: a repeated event comes back with a higher count). An attached
        follower takes it at once (`take`) unless a look is due: then that look takes it, with the phase it
        may record (one write for both)."""
        if key in self._event_keys:
            return
        self._event_keys.add(key)
        self._events.append(event)
        del self._events[:-MAX_PENDING_EVENTS]
        if not self._taken():
            self._signal()
        if self._event_added is not None:
            self._event_added.set()

    def _taken(self) -> bool:
        if self._take is None or self._changed:
            return False
        try:
            self._take()
        except Exception:  # the cluster's events watch calls this: one pod's failure must not end it
            log.exception("taking a followed pod's events failed; its follower takes them at its looks from now on")
            self._take = None
            return False
        return True

    def attach(self, progress: Progress, take: Callable[[], None]) -> None:
        """The pod's follower from now on, until `detach`: a change of the pod wakes it only when `progress`
        of the pod differs from what its last `look` saw, and events that come while no look is due are
        handed to `take` at once (which drains them), waking nobody. Its next look is its first."""
        self._progress, self._take, self._looked = progress, take, _UNLOOKED

    def detach(self) -> None:
        """Back to waking at every change and buffering every event (the follower no longer takes them)."""
        self._progress = self._take = None
        self._looked = _UNLOOKED

    def look(self) -> Mapping[str, Any] | None:
        """The pod now, as the attached follower is about to act on it: what woke it is taken, and from now on
        only a change of its progress (or a poke) wakes it."""
        self._changed = False
        self._looked = self._progress_of(self.pod)
        return self.pod

    def moved(self) -> bool:
        """The pod's progress differs from what the attached follower last looked at (always, unattached)."""
        return self._progress is None or self._progress_of(self.pod) != self._looked

    def _progress_of(self, pod: Mapping[str, Any] | None) -> object:
        if pod is None or self._progress is None:
            return pod
        try:
            return self._progress(pod)
        except Exception:  # a malformed object: a progress equal to nothing, so its follower looks (and fails there)
            return object()

    def poke(self) -> None:
        """Wakes the follower without a change of the pod (cancellation, its cluster going away)."""
        self._signal()
        self._signal_next()

    def _signal(self) -> None:
        """Wakes the pod's follower (`wait`): the pod or its events changed."""
        self._changed = True
        _wake(self._waiter)

    def _signal_next(self) -> None:
        """Wakes the log followers (`wait_next`), which wait for their container's end: not for events."""
        if self._next is not None:
            self._next.set()
            self._next = None

    def drain_events(self) -> list[domain.KubernetesEvent]:
        events, self._events = self._events, []
        return events

    async def synced(self) -> None:
        """Waits until the cluster's pod watch has listed once, so a missing pod really is missing."""
        await self._synced.wait()

    async def wait(self, within: float | None) -> None:
        """Returns when the pod or its events change (at once if they changed since the last `wait`), when
        poked, or after `within` seconds (None: no timer of its own; the cluster's runtime pokes every track
        each SAFETY_WAKE_SECONDS); a change already there is taken without arming a timer. A cancel that comes
        with a change is never lost: nothing here catches it
        (on Python 3.11 `asyncio.wait_for` swallows one, and a follower cancelled then would keep following)."""
        if not self._changed:
            loop = asyncio.get_running_loop()
            waiter = self._waiter = self._waiter or loop.create_future()
            timer = None if within is None else loop.call_later(within, _wake, waiter)
            try:
                await waiter
            finally:
                if timer is not None:
                    timer.cancel()
                if self._waiter is waiter:
                    self._waiter = None
        self._changed = False

    async def wait_next(self, within: float) -> None:
        """Returns at the next change of the pod, not of its events (or after `within` seconds), without taking
        it from `wait`. For the pod's
        log followers: had they waited with `wait`, one could clear a change (the pod's end) that came while the
        follower was busy storing a phase, and the follower would sleep out its idle wait (30 s late results,
        bench/replicas.py). A change before the call is not seen: check the state first."""
        changed = self._next = self._next or asyncio.Event()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await changed.wait()

    async def settle_events(self, *, quiet: float, within: float) -> None:
        """Waits until no new event came for `quiet` seconds (at most `within`).

        Events travel on their own watch and may trail the pod status that reported a failure; a result
        read at once would miss the warnings that explain it.
        """
        loop = asyncio.get_running_loop()
        end = loop.time() + within
        added = self._event_added = self._event_added or asyncio.Event()
        while (left := end - loop.time()) > 0:
            added.clear()
            try:
                async with asyncio.timeout(min(quiet, left)):
                    await added.wait()
            except TimeoutError:
                return

    def _state(self, container: str) -> Mapping[str, Any]:
        status = (self.pod or {}).get("status") or {}
        for cs in (*(status.get("initContainerStatuses") or ()), *(status.get("containerStatuses") or ())):
            if cs.get("name") == container:
                return cs.get("state") or {}
        return {}

    def container_started(self, container: str) -> bool:
        state = self._state(container)
        return "running" in state or "terminated" in state

    def container_done(self, container: str) -> bool:
        return "terminated" in self._state(container) or self.pod is None


async def wake_forever(tracks: Mapping[Any, PodTrack], every: float) -> None:
    """The followers' safety net, not a poll of the cluster: every `every` seconds each followed pod's follower
    looks at its pod again, as if it had changed, in case a change was missed. One timer for a cluster's
    tracks instead of one per followed pod (a uvloop timer and its future are ~0.6 KiB a pod)."""
    while True:
        await asyncio.sleep(every)
        for track in list(tracks.values()):
            track.poke()


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
