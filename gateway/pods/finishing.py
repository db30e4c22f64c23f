"""Ending a request: its result stored, then streamed, then the finish action, then the record closed.

The result is stored before the pod is deleted, so a crash in between leaves a request that a restart
only closes (it never follows a pod with a result again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway import domain
from gateway.clusters.kubeapi import errors as kube
from gateway.clusters.kubeapi.retry import NOT_RETRIED_5XX, backoff_delay
from gateway.credentials.base import CredentialError
from gateway.observability import metrics
from gateway.pods.cluster import Clusters, PodCluster
from gateway.pods.journal import Journal
from gateway.pods.runstate import RunState
from gateway.store.base import Store

log = logging.getLogger(__name__)

STOPPED_REASONS = frozenset({"Cancelled", "StartupTimeout", "Unschedulable"})
DELETE_GRACE_SECONDS = 30
# A delete that failed for a passing reason (the API server unreachable, a 5xx, a 429) after the client's own
# retries is tried again after these jittered waits, for up to DELETE_RETRY_SECONDS: the request's result is
# out already, but its record stays open (and counts against its tenant's quota) until its pod is deleted.
DELETE_RETRY_CEILINGS = (1.0, 2.0, 5.0, 10.0, 30.0)
DELETE_RETRY_SECONDS = 600.0
_DRAWS = random.Random()


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
    clusters: Clusters | None = None  # asked again before each retried delete: the cluster may be gone since

    async def finish(self, state: RunState, result: domain.PodResult, cluster: PodCluster | None) -> None:
        """Result first (stored and journalled in one write, after the lines still buffered), then the
        finish action, then the record is closed."""
        state.record = await self.journal.record(
            state.request_id, lambda events: self.store.record_result(state.request_id, result, events=events), result
        )
        metrics.PODS_FINISHED.labels(cluster=state.record.cluster, phase=result.phase).inc()
        await self.close(state, result, cluster)

    async def close(self, state: RunState, result: domain.PodResult, cluster: PodCluster | None) -> None:
        """The finish action through `cluster` (none: no pod to act on), then the record is closed. A delete
        refused for good (e.g. 403) leaves it open: tried again on the next start, the pod deleted by the
        garbage collector once it may. One failing for a passing reason is tried again here (see
        DELETE_RETRY_SECONDS); past that, the record is closed and the pod left to the garbage collector."""
        if cluster is not None and must_delete(state.request, result) and not await self._delete(state, cluster):
            return
        state.record = await self.store.record_finished(state.request_id, datetime.now(UTC))

    async def _delete(self, state: RunState, cluster: PodCluster) -> bool:
        """Deletes the pod; False when the API server refused for good (the record then stays open)."""
        record, failures, started = state.record, 0, time.monotonic()
        while True:
            if failures and self.clusters is not None and not self.clusters.serves(cluster):
                log.warning("pod %s/%s not deleted: cluster %s was deregistered or replaced meanwhile; the request "
                            "is closed", record.namespace, record.name, record.cluster)  # fmt: skip
                return True
            try:
                with contextlib.suppress(kube.NotFound):
                    await cluster.delete_pod(record.namespace, record.name, grace_seconds=DELETE_GRACE_SECONDS)
                if failures:
                    log.info("deleted pod %s/%s on %s after %d failed attempt(s)", record.namespace, record.name,
                             record.cluster, failures)  # fmt: skip
                return True
            except (kube.KubeError, CredentialError) as e:
                failures += 1
                if not passing(e):
                    log.warning("could not delete pod %s/%s on %s: %s (retried on the next start; the garbage "
                                "collector deletes it once it may)", record.namespace, record.name, record.cluster, e)  # fmt: skip
                    return False
                delay = backoff_delay(DELETE_RETRY_CEILINGS, failures, _DRAWS.random())
                if time.monotonic() - started + delay > DELETE_RETRY_SECONDS:
                    log.warning("could not delete pod %s/%s on %s in %.0f s: %s; the request is closed and the "
                                "garbage collector deletes the pod", record.namespace, record.name, record.cluster,
                                DELETE_RETRY_SECONDS, e)  # fmt: skip
                    return True
                if failures == 1:
                    log.warning("could not delete pod %s/%s on %s: %s; trying again", record.namespace, record.name,
                                record.cluster, e)  # fmt: skip
                await asyncio.sleep(delay)


def passing(error: kube.KubeError | CredentialError) -> bool:
    """An error that another attempt may not meet: the API server unreachable or throttling, a 5xx but 501,
    this process short of descriptors, credentials not to be had now (a token endpoint down; or the cluster
    deregistered, which the next attempt sees)."""
    if isinstance(error, CredentialError):
        return True
    if isinstance(error, kube.ServerError):
        return error.status not in NOT_RETRIED_5XX
    return isinstance(error, (kube.ApiUnreachable, kube.TooManyRequests, kube.GatewayExhausted))
