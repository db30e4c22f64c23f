"""One request's life, coordinated: create (creation.py), follow (following.py), finish (finishing.py).

The phases share nothing but the `RunState` handed from one to the next. Order of effects is what
makes it safe to crash anywhere: the placement is stored before the pod is created, the result before
the pod is deleted; a restarted gateway resumes from the stored record.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from gateway import domain
from gateway.clusters.registry import Registry
from gateway.observability import logging as logcontext
from gateway.pods.cluster import RegistryClusters
from gateway.pods.creation import Creator, NotCreated
from gateway.pods.explanations import Explanations
from gateway.pods.finishing import Finisher, must_delete
from gateway.pods.following import Follower
from gateway.pods.journal import Journal
from gateway.pods.runstate import Ending, RunState
from gateway.settings.live import LiveSettings
from gateway.store.base import LeaseLost, Store

__all__ = ["Phases", "PodRunner", "must_delete"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Phases:
    """What drives each request through its phases: stateless (each run's state is its `RunState`), so one set
    serves every runner of the gateway instead of five objects per followed pod."""

    clusters: RegistryClusters
    creator: Creator
    follower: Follower
    finisher: Finisher

    @classmethod
    def over(
        cls,
        registry: Registry,
        store: Store,
        journal: Journal,
        settings: LiveSettings,
        explanations: Explanations | None = None,
    ) -> Phases:
        """`explanations` keeps what each placement was decided from, for GetPod's table."""
        clusters = RegistryClusters(registry)
        return cls(
            clusters=clusters,
            creator=Creator(clusters, store, journal, settings, explanations),
            follower=Follower(clusters, store, journal, settings),
            finisher=Finisher(store, journal, clusters),
        )


class PodRunner:
    """Drives one request to its result. Cancel with `cancel()`; `run()` returns when the request is finished."""

    __slots__ = ("_phases", "state")  # one per unfinished request: thousands at once

    def __init__(self, *, record: domain.PodRecord, phases: Phases, fresh: bool = False) -> None:
        """`fresh`: the request was accepted by this process just now (see `RunState.fresh`)."""
        self.state = RunState(record, fresh=fresh)
        self._phases = phases

    @property
    def record(self) -> domain.PodRecord:
        """The request's record as last stored."""
        return self.state.record

    def cancel(self, reason: str) -> None:
        self.state.cancel(reason)

    async def run(self) -> None:
        """Returns quietly when another replica took the request over (its pod is theirs to follow now).

        One frame from the task down to the follower's (no helper coroutines in between): a run is awaited
        for its pod's whole life, and thousands are held at once."""
        state, phases = self.state, self._phases
        record = state.record
        logcontext.bind(
            request_id=state.request_id, tenant=state.request.tenant, cluster=record.cluster, pod=record.name
        )
        try:
            if record.result is not None:  # resumed after a restart with only the finish action left
                await phases.finisher.close(state, record.result, phases.clusters.find(record.cluster))
                return
            try:
                ending = await self._create(state) or await phases.follower.follow(state)
                await phases.finisher.finish(state, ending.result, ending.cluster)
            except (asyncio.CancelledError, LeaseLost):
                raise
            except Exception as e:
                if state.record.result is not None:  # stored already: never rewritten; the next start closes it
                    log.exception("request %s: its finish action failed in the gateway", state.request_id)
                    return
                log.exception("request %s failed in the gateway", state.request_id)
                message = f"{type(e).__name__}: the gateway log has details"
                failed = domain.PodResult(phase=domain.PodPhase.FAILED, reason="GatewayError", message=message)
                await phases.finisher.finish(state, failed, None)
            finally:
                self._untrack()
        except LeaseLost as e:
            log.warning("%s", e)

    async def _create(self, state: RunState) -> Ending | None:
        """Places the request and creates its pod unless that is done; the run's ending if it cannot be. Over
        before following starts: its frame is not held while the pod runs."""
        if state.record.cluster and state.record.phase is not domain.PodPhase.QUEUED:
            return None
        try:
            await self._phases.creator.place_and_create(state)
        except NotCreated as e:
            return Ending(e.result())
        return None

    def _untrack(self) -> None:
        """Stops following the pod (tracked from before its create, so even a create that never settled)."""
        record = self.state.record
        cluster = self._phases.clusters.find(record.cluster) if record.name else None
        if cluster is not None:
            cluster.untrack(record.namespace, record.name)
