"""Placing a request and creating its pod exactly once, failing over while that is safe.

The placement (cluster and pod name) is stored before the pod is created, so a restarted gateway
re-creates the same name and meets AlreadyExists rather than making a second pod; a request placed when
accepted has it stored in the write that creates its record (`placed_at_acceptance`), one write sooner. A create whose
outcome is unknown (the API server may have applied it) pins the request to that cluster and pod
name until a read answers whether the pod exists: failing over then could leave two pods.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import string
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from gateway import domain, errors
from gateway.clusters.kubeapi import errors as kube
from gateway.clusters.kubeapi.errors import CreateOutcome, create_outcome
from gateway.observability import logging as logcontext
from gateway.observability import metrics
from gateway.placement import engine
from gateway.placement.scoring import PlacementPolicy
from gateway.pods import builder
from gateway.pods.cluster import Clusters, PodCluster, get
from gateway.pods.explanations import Explanations, carried_out
from gateway.pods.journal import Journal
from gateway.pods.runstate import RunState
from gateway.settings.live import LiveSettings
from gateway.store.base import Store

log = logging.getLogger(__name__)

SUFFIX_ALPHABET = string.ascii_lowercase + string.digits
REJECTION_MESSAGE_MAX = 1024
MAX_WAIT_SECONDS = 5.0  # between rounds of candidates: a change of capacity or health wakes it sooner
# A created pod's Pending waits this long at most for a write to go with: its first Kubernetes events, or its
# Running. Until stored, a restart or a new owner finds the request Queued with its pod name and creates
# that same pod again: AlreadyExists, read back as this request's (`create`), and followed; no second pod.
# (One deleted outside the gateway meanwhile would be created again, as after a crash between a create and
# its answer: the window is this second instead of that write.)
PENDING_STORED_WITHIN = 1.0


SUFFIX_LENGTH = 8
_DRAWS = random.Random()  # seeded from the system once


def new_suffix() -> str:
    """8 random characters of [a-z0-9] from one draw (not one draw each).

    The name only has to differ from other pods' (as Kubernetes' generateName, which draws from a
    non-cryptographic generator too), so the draw is `random`'s, seeded from the system at start:
    `secrets` asked the kernel on every pod, releasing the GIL, and under load the event loop then waited
    for another thread (the store's writer) to hand it back. The generator is the gateway's own, not the
    `random` module's shared one, which tests and libraries seed and watch."""
    number, digits = _DRAWS.randrange(len(SUFFIX_ALPHABET) ** SUFFIX_LENGTH), []
    for _ in range(SUFFIX_LENGTH):
        number, digit = divmod(number, len(SUFFIX_ALPHABET))
        digits.append(SUFFIX_ALPHABET[digit])
    return "".join(digits)


class NotCreated(Exception):
    """Creation ended without a pod of this request; `result()` is the request's result."""

    phase = domain.PodPhase.FAILED
    reason = ""

    def result(self) -> domain.PodResult:
        return domain.PodResult(phase=self.phase, reason=self.reason, message=str(self))


class PlacementFailed(NotCreated):
    """No cluster satisfied the request within its placement timeout."""

    reason = "PlacementFailed"


class Cancelled(NotCreated):
    """The request was cancelled before its pod was created: no create is sent after a cancel. (Resumed
    pinned to a create whose outcome was unknown, that pod may exist: the garbage collector deletes it.)"""

    phase = domain.PodPhase.CANCELLED
    reason = "Cancelled"


class NameTaken(NotCreated):
    """The pod name (kept as the caller gave it) belongs to a pod this request did not create."""

    reason = "AlreadyExists"


class Rejected(NotCreated):
    """The API server refused the pod itself (422 Invalid, 400): no retry, and no other cluster, will change that."""

    reason = "Rejected"


class Created(enum.Enum):
    YES = "yes"
    NO = "no"  # certainly not created: failing over is safe
    UNKNOWN = "unknown"  # the request may have been applied: stay on this cluster and name


async def create(cluster: PodCluster, namespace: str, body: Mapping[str, Any]) -> Created:
    """Creates body unless it exists. A create that may have been applied is resolved by reading the pod back."""
    name = body["metadata"]["name"]
    try:
        await cluster.create_pod(namespace, body)
        return Created.YES
    except kube.KubeError as e:
        outcome = create_outcome(e)
        if outcome is CreateOutcome.REFUSED:
            raise Rejected(f"{cluster.name} refused the pod: {e}"[:REJECTION_MESSAGE_MAX]) from None
        if outcome is not CreateOutcome.EXISTS:  # exists: ours from an earlier attempt, or another's; read to tell
            log.warning("creating pod %s/%s on %s failed (%s): %s", namespace, name, cluster.name, outcome.value, e)
        if outcome is CreateOutcome.NOT_CREATED:
            return Created.NO
    try:
        existing = await cluster.get_pod(namespace, name)
    except kube.NotFound:
        return Created.NO
    except kube.KubeError:
        return Created.UNKNOWN
    owner = ((existing.get("metadata") or {}).get("annotations") or {}).get(builder.REQUEST_ID_ANNOTATION)
    mine = (body["metadata"].get("annotations") or {}).get(builder.REQUEST_ID_ANNOTATION)
    if owner != mine:
        raise NameTaken(
            f"a pod named {name!r} already exists in {namespace} on {cluster.name} and is not this request's"
        )
    return Created.YES


@dataclass(frozen=True)
class Creator:
    """Places `state`'s request and creates its pod; on return the record names a created pod (phase Pending).
    Raises a `NotCreated` when that cannot be done."""

    clusters: Clusters
    store: Store
    journal: Journal
    settings: LiveSettings  # placement policy and gateway id as in force at each attempt
    explanations: Explanations | None = None  # where a stored decision's inputs are kept for GetPod
    pending_within: float = PENDING_STORED_WITHIN

    async def place_and_create(self, state: RunState) -> None:
        """Tries eligible clusters best first; waits for capacity or recovery up to the placement timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + state.request.placement.timeout_seconds
        tried: set[str] = set()
        # Placed when accepted (the dispatcher stored the name with the record), or resumed after a crash
        # between storing the placement and confirming the create: that cluster and name first, as the pod
        # may already exist there.
        pinned = state.record.cluster if state.record.name else ""
        unsent = state.fresh  # placed when accepted, just now: no create was ever sent under that name
        while True:
            if state.is_cancelled:  # before every attempt: a cancel asked for earlier creates no pod
                raise Cancelled(state.cancel_reason)
            # Placed again before every attempt: a failed create may just have marked its cluster down
            # (clusters/runtime.py), and a cluster known to be down is never tried. The fast path: the
            # table of every verdict is built only if someone asks for it (explanations.py).
            policy = self.settings.current.placement
            placement: engine.Placement | None = None
            if not (unsent and pinned and self._still_candidate(state, pinned, policy)):
                placement = engine.placement(state.request, self.clusters.snapshots(), policy, previous=state.record.cluster)
                if unsent and pinned:
                    pinned = ""  # no longer a candidate (down, full, cordoned since): placed anew, under a new name
            # else placed at acceptance, that cluster still a candidate: its pod created as stored, with no
            # ranking of the fleet (the runner's placement would only have asked whether it still is one)
            unsent = False
            name = pinned if placement is None else pinned or _first_untried(placement.decision, tried)
            if name:
                outcome = await self._create_on(state, name, placement)
                if outcome is Created.YES:
                    return
                pinned = name if outcome is Created.UNKNOWN else ""
                if not pinned:
                    tried.add(name)
                    continue
            if placement is None:  # what follows waits for a change of the fleet its decision saw
                placement = engine.placement(state.request, self.clusters.snapshots(), policy, previous=state.record.cluster)
            decision = placement.decision
            remaining = deadline - loop.time()
            if not pinned and (remaining <= 0 or not (decision.candidate_names or decision.may_fit_later or tried)):
                failed = f" (creation failed on {', '.join(sorted(tried))})" if tried else ""
                metrics.PLACEMENTS.labels(cluster="", reason="no_fit").inc()
                raise PlacementFailed(decision.reason + failed)
            if tried >= set(decision.candidate_names):
                tried.clear()  # every candidate failed transiently: retry them after the pause
            await wait_or_cancel(state, self.clusters.wait_changed(min(max(remaining, 1.0), MAX_WAIT_SECONDS)))

    def _still_candidate(self, state: RunState, name: str, policy: PlacementPolicy) -> bool:
        """Whether the cluster placed at acceptance is a candidate still, judged from its own snapshot alone: a
        cluster's verdict does not depend on the others' (`engine.is_candidate`), and the fleet's snapshots are
        one ClusterSnapshot a registered cluster made anew: the check took 8.2 us at 3 clusters and 1,220 us at
        1,000, now 5.7 us whatever the fleet."""
        snapshot = self.clusters.snapshot(name)
        return snapshot is not None and engine.is_candidate(state.request, [snapshot], name, policy)

    async def _create_on(self, state: RunState, name: str, placement: engine.Placement | None) -> Created:
        """Creates the pod on `name`; without `placement`, the pod the record names there (its stored decision's)."""
        cluster = get(self.clusters, name)
        namespace = state.request.pod.get("metadata", {}).get("namespace") or "default"
        same = state.record.cluster == name and bool(state.record.name)
        suffix = state.record.name.rsplit("-", 1)[-1] if same else new_suffix()
        gateway_id = self.settings.current.server.gateway_id
        body = builder.build_pod(state.request, cluster=name, gateway_id=gateway_id, name_suffix=suffix)
        pod = body["metadata"]["name"]
        if not same:
            assert placement is not None, "a pod the record does not name is created under a new placement"
            await self._record_placement(state, cluster, namespace, pod, placement)
        if state.is_cancelled:  # arrived while the placement was being stored: no create is sent
            raise Cancelled(state.cancel_reason)
        logcontext.bind(cluster=name, pod=pod)
        cluster.track(namespace, pod)  # before creating: the scheduler's first events come at once
        try:
            outcome = await create(cluster, namespace, body)
        except Rejected:
            cluster.untrack(namespace, pod)
            raise
        decided = placement.decision if placement is not None else state.record.decision
        metrics.record_placement(name, outcome.value, first_choice=decided is not None and name == decided.cluster)
        if outcome is Created.YES:
            # stored with the pod's first events or its next phase, not on its own (see PENDING_STORED_WITHIN)
            state.record = replace(state.record, phase=domain.PodPhase.PENDING)
            self.journal.defer_phase(state.request_id, domain.PodPhase.PENDING, self.pending_within)
            return outcome
        if outcome is Created.NO:
            cluster.untrack(namespace, pod)
        what = (
            "outcome unknown, checking before any failover"
            if outcome is Created.UNKNOWN
            else "trying the next candidate"
        )
        await self.journal.append(
            state.request_id,
            domain.PhaseChange(
                phase=domain.PodPhase.QUEUED,
                reason="CreateFailed",
                message=f"creating the pod on {name} failed; {what}",
            ),
        )
        return outcome

    async def _record_placement(
        self, state: RunState, cluster: PodCluster, namespace: str, pod: str, placement: engine.Placement
    ) -> None:
        """Stored and journalled in one write before the create (see the module docstring)."""
        placed = carried_out(placement, cluster.name)
        try:
            state.record = await self.journal.record(
                state.request_id,
                lambda events: self.store.record_placement(
                    state.request_id, cluster=cluster.name, region=cluster.region, namespace=namespace, name=pod,
                    decision=placed, phase=domain.PodPhase.QUEUED, events=events,
                ),
                placed,
            )  # fmt: skip
        except errors.AlreadyExists:  # another request of the gateway holds that kept name
            raise NameTaken(
                f"another request already has a pod named {pod!r} in {namespace} on {cluster.name}"
            ) from None
        if self.explanations is not None:
            self.explanations.remember(state.request_id, placed, placement)


async def wait_or_cancel(state: RunState, waiting: Awaitable[None]) -> None:
    """Waits for `waiting` unless the request is cancelled first (then raises Cancelled)."""
    cancel = asyncio.ensure_future(state.cancelled.wait())
    other = asyncio.ensure_future(waiting)
    try:
        await asyncio.wait({cancel, other}, return_when=asyncio.FIRST_COMPLETED)
    finally:  # also when the runner itself is cancelled (the gateway stops following): nothing left waiting
        for task in (cancel, other):
            task.cancel()
        await asyncio.gather(cancel, other, return_exceptions=True)
    if state.is_cancelled:
        raise Cancelled(state.cancel_reason)


def _first_untried(decision: domain.PlacementDecision, tried: set[str]) -> str:
    """The best candidate not tried yet; the first choice without ranking the others (the common case)."""
    if decision.cluster and decision.cluster not in tried:
        return decision.cluster
    return next((name for name in decision.candidate_names if name not in tried), "")


def placed_at_acceptance(record: domain.PodRecord, placement: engine.Placement) -> domain.PodRecord:
    """`record` with `placement`'s first choice and the pod name to create there, for the write that creates
    the record: the name is durable before the create as `_record_placement` makes it, one write earlier.
    The runner then creates that pod as it does after a restart between storing a placement and creating
    (pinned to it until a create certainly failed). `record` as it is when no cluster was chosen."""
    cluster = placement.decision.cluster
    if not cluster:
        return record
    request = record.request
    name = builder.pod_name_of(request, new_suffix())  # the name build_pod gives: the body is built at the create
    decision = carried_out(placement, cluster)
    namespace = request.pod.get("metadata", {}).get("namespace") or "default"
    return replace(
        record, cluster=cluster, region=decision.region, namespace=namespace, name=name, decision=decision
    )
