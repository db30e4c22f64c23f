"""Following a created pod to its end through its cluster's shared watch (`PodTrack`), never by polling.

The follower records phase changes, journals Kubernetes events and log lines, and returns how the run
ends (`Ending`): the pod's result, a cancel, a startup timeout, or the pod or its cluster gone. Storing
that result and the finish action are the coordinator's (see finishing.py). A pod is never re-created
here: creation is over once the record is past Queued.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass, field, replace

from gateway import domain
from gateway.clusters.kubeapi import errors as kube
from gateway.clusters.tracking import PodTrack
from gateway.observability import metrics
from gateway.pods import collecting, status
from gateway.pods.cluster import Clusters, PodCluster
from gateway.pods.journal import Journal
from gateway.pods.logs import LogPosition
from gateway.pods.logtasks import LogTasks
from gateway.pods.runstate import Ending, RunState
from gateway.settings.live import LiveSettings
from gateway.store.base import Store

log = logging.getLogger(__name__)

GONE_CHECK_SECONDS = 5.0
MAX_WARNINGS = 50  # warning events kept for a result
# A failed pod's warning events may trail its status (they come on another watch): wait for them this long.
EVENT_SETTLE_QUIET_SECONDS = 0.3
EVENT_SETTLE_MAX_SECONDS = 2.0


@dataclass(slots=True)
class Followed:
    """What following has gathered so far; kept when the pod is followed again through a new runtime."""

    started: float  # loop time following began: the startup timeout counts from here
    positions: dict[str, LogPosition] = field(default_factory=dict)
    journalled: frozenset[domain.KubernetesEvent] = frozenset()  # seen again after a restart: not re-sent
    warnings: list[domain.KubernetesEvent] = field(default_factory=list)
    gone_check_after: float = 0.0


@dataclass(frozen=True, slots=True)
class Follower:
    clusters: Clusters
    store: Store
    journal: Journal
    settings: LiveSettings  # log lines are clipped to the limits in force when they arrive

    async def follow(self, state: RunState) -> Ending:
        """Follows the pod through its cluster: again through the new runtime when the cluster's registration
        is updated (the old one stops watching), to a result when the cluster is deregistered."""
        positions, journalled = ({}, []) if state.fresh else await self.journal.resume_point(state.request_id)
        started = asyncio.get_running_loop().time()
        followed = Followed(
            started=started,
            positions=positions,
            journalled=frozenset(journalled),  # a fresh run's is the one shared empty frozenset
            warnings=[e for e in journalled if e.type == "Warning"][-MAX_WARNINGS:],
            # Created by this run a moment ago: the watch shows it shortly (or its deletion); asking the API
            # server at once, while the watch lags behind a busy cluster, would be a request per pod.
            gone_check_after=started + GONE_CHECK_SECONDS if state.fresh else 0.0,
        )
        record, tracked_from_create = state.record, state.fresh
        while True:
            cluster = self.clusters.find(record.cluster)
            if cluster is None:
                return Ending(deregistered(record, tuple(followed.warnings)))
            track = cluster.track(record.namespace, record.name)
            state.track = track
            try:
                if not tracked_from_create:
                    await self._replay_events(cluster, record)
                tracked_from_create = False  # a new runtime's watch listed before it tracks the pod
                ending = await self._follow_track(state, followed, cluster, track)
            finally:
                state.track = None
                cluster.untrack(record.namespace, record.name)
            if ending is not None:
                return ending

    async def _follow_track(
        self, state: RunState, followed: Followed, cluster: PodCluster, track: PodTrack
    ) -> Ending | None:
        """The run's ending; None when `cluster` no longer serves its name.

        Wakes only when the pod or its events change, when poked (cancel, cluster replaced, and the cluster's
        safety-net wake-up: tracking.SAFETY_WAKE_SECONDS), or at the startup deadline: a running pod's wait
        holds no timer of its own.
        """
        loop = asyncio.get_running_loop()
        logs = LogTasks(state.record, cluster, track, self.journal, self.settings, followed.positions)
        await track.synced()
        # Woken only when what a look acts on changed; events between looks are held as they come, lookless.
        track.attach(status.progress, functools.partial(self._take_events, state, followed, track))
        acted = False  # the last look acted on a pod past Pending: only its progress, a cancel or an event matter
        try:
            while True:
                if not self.clusters.serves(cluster):
                    return None
                events = self._new_events(followed, track)  # journalled with the phase they came with, if one
                if acted and not events and not state.is_cancelled and not track.moved():
                    # Woken with nothing new (the cluster's safety-net poke, every SAFETY_WAKE_SECONDS for each
                    # followed pod): the look below would act on the same progress again and do nothing.
                    await track.wait(None)
                    continue
                pod = track.look()  # what this look acts on (the watch may replace it while the phase is stored)
                if state.is_cancelled or pod is None:
                    self._hold_events(state, events)
                    events = []
                if state.is_cancelled:
                    cancelled = domain.PodResult(
                        phase=domain.PodPhase.CANCELLED, reason="Cancelled", message=state.cancel_reason
                    )
                    return Ending(cancelled, cluster)
                if pod is None:  # looked at after the write: the pod may have shown up meanwhile
                    if track.seen or await self._confirmed_gone(state.record, followed, cluster):
                        return Ending(deleted())
                    await track.wait(1.0)
                    continue
                view = status.interpret(pod)
                logs.start()  # the logs open while the phase is recorded; their lines are journalled after it
                await self._record_phase(state, view, events)
                logs.release()
                if view.finished or collecting.sidecar_ready_to_read(state.request, track, view):
                    return Ending(await self._collect(state, followed, cluster, track, view, logs), cluster)
                pending = state.record.phase is domain.PodPhase.PENDING
                left = state.request.startup_timeout_seconds - (loop.time() - followed.started)
                if pending and left < 0:
                    warnings = tuple(followed.warnings)
                    return Ending(collecting.startup_timeout_result(state.request, view, warnings), cluster)
                acted = not pending  # a pending pod's look also reads the clock
                await track.wait(max(left, 0.05) if pending else None)
        finally:
            track.detach()  # before any wait: an event from now on is no longer this follower's to hold
            await logs.stop()

    async def _record_phase(self, state: RunState, view: status.PodView, events: list[domain.KubernetesEvent]) -> None:
        """Stores and streams a new phase, with the Kubernetes events seen in the same look before it (one
        write, not two); the end is reported by the result instead."""
        if view.phase is state.record.phase or view.finished:
            self._hold_events(state, events)
            return
        state.record = await self.journal.record(
            state.request_id,
            lambda journalled: self.store.record_phase(state.request_id, view.phase, events=journalled),
            *events,
            domain.PhaseChange(phase=view.phase, reason=view.reason, message=view.message),
        )
        metrics.record_phase(state.record.cluster, view.phase, state.record.created_at)

    async def _collect(
        self,
        state: RunState,
        followed: Followed,
        cluster: PodCluster,
        track: PodTrack,
        view: status.PodView,
        logs: LogTasks,
    ) -> domain.PodResult:
        """The result of a pod whose main container has ended: its logs read to the end, its XCom, its warnings."""
        await logs.drain(logs.wanted()[:1] or None)
        code = status.exit_code(view, collecting.main_container(state.request))
        xcom_json, xcom_error = await collecting.read_xcom(cluster, state.record, view) if code == 0 else (None, "")
        if collecting.needs_sidecar_stop(state.request, view):
            await collecting.stop_sidecar(cluster, state.record)
        await logs.drain()
        result = collecting.ended_result(view, code, xcom_json, xcom_error)
        if result.phase is domain.PodPhase.FAILED:
            await track.settle_events(quiet=EVENT_SETTLE_QUIET_SECONDS, within=EVENT_SETTLE_MAX_SECONDS)
        self._hold_events(state, self._new_events(followed, track))
        return replace(result, warning_events=tuple(followed.warnings))

    @staticmethod
    def _new_events(followed: Followed, track: PodTrack) -> list[domain.KubernetesEvent]:
        """The events the track buffered since the last look (kept as warnings too), to be journalled together."""
        return _unjournalled(followed, track.drain_events())

    def _take_events(self, state: RunState, followed: Followed, track: PodTrack) -> None:
        """Events that came while no look was due (`PodTrack.attach`): held at once, as the next look would have
        held them, without that look."""
        self._hold_events(state, self._new_events(followed, track))

    def _hold_events(self, state: RunState, events: list[domain.KubernetesEvent]) -> None:
        """Held with the log lines, written with the request's next write (its Running, its result) or the
        lines' flush; at once when a watcher waits (journal.hold). A runner that resumes the request after
        they were lost lists the pod's events again (`_replay_events`)."""
        if events:
            self.journal.hold(state.request_id, *events)

    @staticmethod
    async def _replay_events(cluster: PodCluster, record: domain.PodRecord) -> None:
        """A pod not tracked from its create (resumed, taken over, through a new runtime) has its events listed
        again: those its previous runner held unwritten come back once (the journalled ones are skipped:
        `Followed.journalled`), whenever the cluster's events watch listed. Before the first look, so that
        a pod that has ended is not collected without them."""
        try:
            await cluster.replay_events(record.namespace, record.name)
        except kube.KubeError as e:  # after the client's retries; the watch brings only events that change now
            log.warning("could not list the events of pod %s/%s on %s (%s): events its previous runner held "
                        "unwritten may be missing", record.namespace, record.name, record.cluster, e)  # fmt: skip

    async def _confirmed_gone(self, record: domain.PodRecord, followed: Followed, cluster: PodCluster) -> bool:
        """The watch does not show the pod: asks the API server, at most every GONE_CHECK_SECONDS.

        The pod was created (the record is past Queued), so a pod missing from the synced watch was either
        just created (the watch lags) or deleted, e.g. while the gateway was down. Never re-created.
        """
        now = asyncio.get_running_loop().time()
        if now < followed.gone_check_after:
            return False
        followed.gone_check_after = now + GONE_CHECK_SECONDS
        try:
            await cluster.get_pod(record.namespace, record.name)
        except kube.NotFound:
            return True
        except kube.KubeError as e:
            log.info("cannot tell whether pod %s/%s exists yet: %s", record.namespace, record.name, e)
        return False


def _unjournalled(followed: Followed, events: list[domain.KubernetesEvent]) -> list[domain.KubernetesEvent]:
    """`events` less those journalled before a restart; their warnings kept for the result."""
    if not events:  # most looks, and every take after the first of a chunk's events: nothing to filter or keep
        return events
    new = [e for e in events if e not in followed.journalled] if followed.journalled else events
    followed.warnings.extend(e for e in new if e.type == "Warning")
    del followed.warnings[:-MAX_WARNINGS]
    return new


def deleted() -> domain.PodResult:
    return domain.PodResult(
        phase=domain.PodPhase.FAILED, reason="PodDeleted", message="the pod was deleted outside the gateway"
    )


def deregistered(record: domain.PodRecord, warnings: tuple[domain.KubernetesEvent, ...]) -> domain.PodResult:
    return domain.PodResult(
        phase=domain.PodPhase.FAILED,
        reason="ClusterDeregistered",
        message=f"cluster {record.cluster!r} was deregistered while the pod ran; the gateway "
        f"no longer follows pod {record.namespace}/{record.name}, which may still run there",
        warning_events=warnings,
    )
