"""Ending a request: its result stored, then streamed, then the finish action, then the record closed.

The result is stored before the pod is deleted, so a crash in between leaves a request that a restart
only closes (it never follows a pod with a result again).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway import domain
from gateway.clusters.kubeapi import errors as kube
from gateway.observability import metrics
from gateway.pods.cluster import PodCluster
from gateway.pods.journal import Journal
from gateway.pods.runstate import RunState
from gateway.store.base import Store

log = logging.getLogger(__name__)

STOPPED_REASONS = frozenset({"Cancelled", "StartupTimeout", "Unschedulable"})
DELETE_GRACE_SECONDS = 30


def must_delete(request: domain.PodRequest, result: domain.PodResult) -> bool:
    """A pod the gateway stopped (cancelled, never started) goes whatever on_finish says."""
    return result.reason in STOPPED_REASONS or should_delete(request.on_finish, result.phase)


def should_delete(action: domain.OnFinishAction, phase: domain.PodPhase) -> bool:
    if action is domain.OnFinishAction.KEEP_POD:
        return False
    if action is domain.OnFinishAction.DELETE_SUCCEEDED_POD:
        return phase is domain.PodPhase.SUCCEEDED
    return True


@dataclass(frozen=True)
class Finisher:
    store: Store
    journal: Journal

    async def finish(self, state: RunState, result: domain.PodResult, cluster: PodCluster | None) -> None:
        """Result first (stored and journalled in one write, after the lines still buffered), then the
        finish action, then the record is closed."""
        state.record = await self.journal.record(
            state.request_id, lambda events: self.store.record_result(state.request_id, result, events=events), result
        )
        metrics.PODS_FINISHED.labels(cluster=state.record.cluster, phase=result.phase).inc()
        await self.close(state, result, cluster)

    async def close(self, state: RunState, result: domain.PodResult, cluster: PodCluster | None) -> None:
        """The finish action through `cluster` (none: no pod to act on), then the record is closed; a refused
        delete leaves it open (retried by the garbage collector, and on the next start)."""
        record = state.record
        if cluster is not None and must_delete(state.request, result):
            try:
                with contextlib.suppress(kube.NotFound):
                    await cluster.delete_pod(record.namespace, record.name, grace_seconds=DELETE_GRACE_SECONDS)
            except kube.KubeError as e:
                log.warning(
                    "could not delete pod %s/%s on %s: %s (the garbage collector retries)",
                    record.namespace, record.name, record.cluster, e,
                )  # fmt: skip
                return
        state.record = await self.store.record_finished(state.request_id, datetime.now(UTC))
