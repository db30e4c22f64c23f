"""One registered cluster at run time: its API client, health, and the watches that feed everything.

Three watches per cluster (nodes, pods, events), whatever the number of pods: capacity comes from
the nodes and pods watches, pod tracking from the same pods watch, warning events from the events
watch. Nothing here polls a pod. Health is probed with /version and changes state only after
consecutive results (hysteresis), so one slow answer does not taint a cluster.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from gateway import domain
from gateway.clusters import shapes
from gateway.clusters.capacity import TERMINAL_PHASES, CapacityBook
from gateway.clusters.kubeapi import errors as kube
from gateway.clusters.kubeapi.client import ClusterClient
from gateway.clusters.kubeapi.decode import EventType, Narrow, WatchEvent
from gateway.clusters.kubeapi.request import EVENTS, NODES, PODS, Resource
from gateway.clusters.kubeapi.watching import WatchTarget, watch_forever_batches
from gateway.clusters.replay import REPLAY_PAGE_SIZE, EventReplay
from gateway.clusters.tracking import SAFETY_WAKE_SECONDS, PodTrack, kept, wake_forever
from gateway.credentials.base import CredentialError, CredentialProvider
from gateway.observability import logging as logcontext
from gateway.observability.descriptors import is_exhaustion

log = logging.getLogger(__name__)

PodKey = tuple[str, str]


def pod_key(obj: Mapping[str, Any]) -> PodKey:
    meta = obj.get("metadata") or {}
    return meta.get("namespace", ""), meta.get("name", "")


def owned_by(pod: Mapping[str, Any], gateway_id: str) -> bool:
    return ((pod.get("metadata") or {}).get("labels") or {}).get(domain.MANAGED_BY_LABEL) == gateway_id


def involved_pod(obj: Mapping[str, Any]) -> PodKey | None:
    """The pod an Event is about; None when it is about another kind of object."""
    involved = obj.get("involvedObject") or {}
    return (involved.get("namespace", ""), involved.get("name", "")) if involved.get("kind") == "Pod" else None


def event_key(obj: Mapping[str, Any]) -> tuple[str, int]:
    """An Event seen again with the same count is the same event (a repeat comes back with a higher count)."""
    return (obj.get("metadata") or {}).get("uid", ""), int(obj.get("count") or 1)


def kube_event(obj: Mapping[str, Any]) -> domain.KubernetesEvent:
    stamp = obj.get("lastTimestamp") or obj.get("eventTime") or obj.get("firstTimestamp")
    try:
        when = datetime.fromisoformat(str(stamp).replace("Z", "+00:00")) if stamp else datetime.now(UTC)
    except ValueError:
        when = datetime.now(UTC)
    return domain.KubernetesEvent(
        time=when,
        type=str(obj.get("type", "Normal")),
        reason=str(obj.get("reason", "")),
        message=str(obj.get("message", "")),
        count=int(obj.get("count") or 1),
    )


class HealthTracker:
    """Consecutive-result hysteresis: flips to unreachable after `down` failures, back after `up` successes.

    A failure is evidence only about attempts made after the last one seen: the calls that shared one connection
    attempt (a burst waiting for one HTTP/2 connection, or HTTP/1.1 connects made together) fail together and count
    once, so one slow handshake never marks a cluster down; a failed attempt begun after it does
    (docs/decisions/0044-cluster-down-on-consecutive-attempts.md)."""

    def __init__(self, *, down: int = 2, up: int = 2) -> None:
        self.state = domain.ClusterHealth.UNKNOWN
        self.message = "not probed yet"
        self.last_probe: datetime | None = None
        self._down, self._up = down, up
        self._failures = self._successes = 0
        self._failed_at = 0.0  # monotonic time of the last failure counted

    def observe(self, error: kube.KubeError | None, *, started: float | None = None, now: float | None = None) -> bool:
        """Records one probe or call; True when the state changed. The gateway's own exhaustion is no verdict. A
        failure of an attempt `started` (monotonic seconds) before the last failure counted was under way when
        that one was seen: the same evidence, not counted again (None: an attempt of its own)."""
        if isinstance(error, kube.GatewayExhausted):
            return False
        now = time.monotonic() if now is None else now
        if error is not None and self._failures and started is not None and started < self._failed_at:
            return False
        before = self.state
        self.last_probe = datetime.now(UTC)
        if error is None:
            self._failures, self._successes = 0, self._successes + 1
            if self.state is not domain.ClusterHealth.HEALTHY and (
                self._successes >= self._up or self.state is domain.ClusterHealth.UNKNOWN
            ):
                self.state, self.message = domain.ClusterHealth.HEALTHY, ""
        else:
            self._successes, self._failures, self._failed_at = 0, self._failures + 1, now
            bad = (
                domain.ClusterHealth.UNAUTHORIZED
                if isinstance(error, kube.Unauthorized | kube.Forbidden)
                else domain.ClusterHealth.UNREACHABLE
            )
            if self._failures >= self._down or self.state is domain.ClusterHealth.UNKNOWN:
                self.state = bad
            self.message = str(error)
        return self.state is not before


class ClusterRuntime:
    def __init__(
        self,
        spec: domain.ClusterSpec,
        client: ClusterClient,
        *,
        provider: CredentialProvider,
        gateway_id: str,
        on_change: Callable[[], None],
        probe_interval: float,
    ) -> None:
        self.spec = spec
        self.client = client
        self.provider = provider  # for the endpoint of issued kubeconfigs; the client owns token use
        self.gateway_id = gateway_id
        self.health = HealthTracker()
        client.reachability = self
        self.cordoned = False
        self.cordon_reason = ""
        self._on_change = on_change
        self._probe_interval = probe_interval
        self._book = CapacityBook()
        self._ours: dict[PodKey, dict[str, Any]] = {}
        self._running: set[PodKey] = set()  # keys of _ours not yet Succeeded/Failed, kept per event
        self._tracks: dict[PodKey, PodTrack] = {}
        self._pods_synced = asyncio.Event()
        self._nodes_synced = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._replay = EventReplay(self._list_events, self._replayed)

    @property
    def name(self) -> str:
        return self.spec.name

    async def start(self) -> None:
        self._tasks = [
            logcontext.background(self._probe_forever(), name=f"probe:{self.name}", cluster=self.name),
            logcontext.background(
                self._watch(NODES, shapes.NODES, self._on_node), name=f"nodes:{self.name}", cluster=self.name
            ),
            logcontext.background(
                self._watch(PODS, shapes.PODS, self._on_pod), name=f"pods:{self.name}", cluster=self.name
            ),
            logcontext.background(
                self._watch(EVENTS, shapes.EVENTS, self._on_event), name=f"events:{self.name}", cluster=self.name
            ),
            logcontext.background(
                wake_forever(self._tracks, SAFETY_WAKE_SECONDS), name=f"wake:{self.name}", cluster=self.name
            ),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self._replay.close()
        for track in self._tracks.values():
            track.poke()  # followers notice at once that this runtime no longer serves the cluster
        await self.client.close()
        await self.provider.close()  # e.g. azure-identity's HTTP session

    async def wait_synced(self) -> None:
        """Until nodes and pods have been listed once: before that, capacity reads as empty."""
        await self._nodes_synced.wait()
        await self._pods_synced.wait()

    def snapshot(self) -> domain.ClusterSnapshot:
        running = len(self._running)
        return domain.ClusterSnapshot(
            spec=self.spec,
            health=self.health.state,
            cordoned=self.cordoned,
            cordon_reason=self.cordon_reason,
            nodes=self._book.nodes(),
            running_pods=running,
        )

    def owned_pods(self) -> list[dict[str, Any]]:
        """Gateway pods as last seen by the watch (for the garbage collector)."""
        return list(self._ours.values())

    def track(self, namespace: str, name: str) -> PodTrack:
        track = self._tracks.get((namespace, name))
        if track is None:
            track = self._tracks[(namespace, name)] = PodTrack(self._pods_synced)
            track.update(self._ours.get((namespace, name)))
        return track

    def untrack(self, namespace: str, name: str) -> None:
        self._tracks.pop((namespace, name), None)

    async def replay_events(self, namespace: str, name: str) -> None:
        """Gives a tracked pod's track the events the cluster holds for it now, as the events watch's list
        gives them to the tracks of its time. For a pod tracked again (a restart, a takeover, a replaced
        runtime): its runner may have held events unwritten (gateway/pods/journal.py `hold`) that this
        watch listed before the pod was tracked here. The pods of a namespace that ask at about the same time
        share a LIST, and few LISTs run at once (gateway/clusters/replay.py): a restart with thousands of pods
        in flight is no burst at the API server."""
        await self._replay.replay(namespace, name)

    async def _list_events(self, namespace: str, field_selector: str) -> tuple[dict[str, Any], ...]:
        listed = await self.client.list_all(EVENTS, namespace, field_selector=field_selector, page_size=REPLAY_PAGE_SIZE)
        return listed.items

    def _replayed(self, events: Sequence[dict[str, Any]]) -> None:
        self._on_event(WatchEvent(type=EventType.RELISTED, objects=tuple(events)))

    # --- watches --------------------------------------------------------------------------

    async def _watch(self, resource: Resource, narrow: Narrow, handle: Callable[[WatchEvent], None]) -> None:
        """Each watched object is decoded into what `handle` reads (gateway/clusters/shapes.py), not whole; the
        events of a chunk come in one step, each handed on by a call (no generator hop an event)."""
        async for events in watch_forever_batches(self.client, WatchTarget(resource=resource, narrow=narrow)):
            for event in events:
                handle(event)

    def _on_node(self, event: WatchEvent) -> None:
        if event.type is EventType.RELISTED:
            self._book.reset(nodes=event.objects)
            self._nodes_synced.set()
        elif event.type is EventType.DELETED:
            self._book.remove_node((event.object.get("metadata") or {}).get("name", ""))
        elif event.type in (EventType.ADDED, EventType.MODIFIED):
            self._book.set_node(event.object)
        self._on_change()

    def _on_pod(self, event: WatchEvent) -> None:
        if event.type is EventType.RELISTED:
            self._book.reset(pods=event.objects)
            self._ours, self._running = {}, set()
            for p in event.objects:
                if owned_by(p, self.gateway_id):
                    self._keep(pod_key(p), p)
            for key, track in self._tracks.items():
                track.update(self._ours.get(key))
            self._pods_synced.set()
        elif event.type in (EventType.ADDED, EventType.MODIFIED, EventType.DELETED):
            obj, key, running = event.object, pod_key(event.object), len(self._running)
            if event.type is EventType.DELETED:
                usage_changed, news = self._book.remove_pod(obj), True
                self._forget(key)
            else:
                usage_changed = self._book.set_pod(obj)
                news = not owned_by(obj, self.gateway_id) or self._keep(key, obj)
            if news and key in self._tracks:  # its follower wakes only when what it reads changed
                self._tracks[key].update(self._ours.get(key))
            if not usage_changed and len(self._running) == running:
                return  # nothing a snapshot shows changed: placements waiting for capacity sleep on
        self._on_change()

    def _keep(self, key: PodKey, pod: Mapping[str, Any]) -> bool:
        """Records a gateway pod's latest state, keeping the running count without a recount. False when what
        the gateway keeps of it is as it was (a change of fields nobody reads): the object held stays, so
        its follower, which compares by identity, has nothing new to look at."""
        state = kept(pod)
        if state == self._ours.get(key):
            return False
        self._ours[key] = state
        if (pod.get("status") or {}).get("phase") in TERMINAL_PHASES:
            self._running.discard(key)
        else:
            self._running.add(key)
        return True

    def _forget(self, key: PodKey) -> None:
        self._ours.pop(key, None)
        self._running.discard(key)

    def _on_event(self, event: WatchEvent) -> None:
        objects = event.objects if event.type is EventType.RELISTED else (event.object,)
        if event.type not in (EventType.RELISTED, EventType.ADDED, EventType.MODIFIED):
            return
        for obj in objects:
            key = involved_pod(obj)
            track = self._tracks.get(key) if key is not None else None
            if track is not None:
                track.add_event(event_key(obj), kube_event(obj))

    # --- health ---------------------------------------------------------------------------

    async def _probe_forever(self) -> None:
        while True:
            error: kube.KubeError | None = None
            started = time.monotonic()  # a connect failure the client reported already is not counted twice
            try:
                async with asyncio.timeout(max(self._probe_interval, 2.0)):  # not wait_for: see PodTrack.wait
                    await self.client.get_version()
            except kube.KubeError as e:
                error = e
            except TimeoutError:
                error = kube.ApiUnreachable(
                    f"cluster {self.name!r}: /version did not answer in time", cluster=self.name
                )
            except CredentialError as e:  # e.g. a kubeconfig file gone: unhealthy, and the probe goes on
                said = str(e).removeprefix(f"cluster {self.name!r}: ")  # say the cluster's name once
                unhealthy = kube.GatewayExhausted if is_exhaustion(e) else kube.ApiUnreachable
                error = unhealthy(f"cluster {self.name!r}: credentials: {said}", cluster=self.name)
            self.report(error, started=started)
            await asyncio.sleep(self._probe_interval)

    @property
    def down(self) -> bool:
        return self.health.state is domain.ClusterHealth.UNREACHABLE

    def report(self, error: kube.KubeError | None, *, started: float | None = None) -> None:
        """A probe's or any call's outcome (the client's Reachability): placement hears of a change at once."""
        if self.health.observe(error, started=started):
            log.log(
                logging.INFO if self.health.state is domain.ClusterHealth.HEALTHY else logging.WARNING,
                "cluster %s is now %s%s",
                self.name,
                self.health.state,
                f": {self.health.message}" if self.health.message else "",
            )
            self._on_change()
