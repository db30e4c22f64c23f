"""The dispatch core's entry points: submit, watch, cancel, list, explain; resume after a restart.

One PodRunner task per unfinished request; everything a client sees goes through the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway import domain, errors
from gateway.clusters.kubeapi import errors as kube
from gateway.clusters.registry import Registry
from gateway.observability import logging as logcontext
from gateway.observability import metrics
from gateway.placement import engine
from gateway.pods import builder, creation, validation
from gateway.pods.attachment import Attachment, Attachments
from gateway.pods.cancels import EarlyCancels
from gateway.pods.explanations import Explanations
from gateway.pods.journal import Journal, encode
from gateway.pods.replication import ReplicaStore, Replication
from gateway.pods.runner import Phases, PodRunner, must_delete
from gateway.settings.live import LiveSettings
from gateway.store.base import Store, TenantAdmission
from gateway.store.lease import LeasePolicy

log = logging.getLogger(__name__)

REMOTE_CANCEL_WAIT_SECONDS = 30.0  # a cancel at a non-owner waits this long for the owner's result
SAFETY_POLL_SECONDS = 5.0  # replicas: followers re-read the journal this often even without a NOTIFY

Admission = Callable[[domain.PodRequest], domain.PodRequest]


class Unplaceable(errors.FailedPrecondition):
    """No cluster can ever take the request (nor later, within its placement timeout)."""


class Dispatcher:
    """`settings` is consulted at each use (limits, placement and housekeeping as in force now)."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        journal: Journal,
        settings: LiveSettings,
        *,
        replicas: ReplicaStore | None = None,
        listen: str = "",
        lease_policy: LeasePolicy | None = None,
    ) -> None:
        """`replicas`: the store is shared with other replicas (PostgreSQL), who owns what is leased."""
        self._store = store
        self._registry = registry
        self._journal = journal
        self._settings = settings
        self._runners: dict[str, tuple[PodRunner, asyncio.Task[None]]] = {}
        self._unwinding: set[asyncio.Task[None]] = set()  # dropped runners not ended yet (awaited at close)
        self._unwinding_of: dict[str, asyncio.Task[None]] = {}  # the same by request: a new runner waits for it
        self._attachments = Attachments(store, cancel=self._cancel_for_disconnect, running=self._runners.__contains__)
        self._gc: asyncio.Task[None] | None = None
        self._early_cancels = EarlyCancels()
        self._explanations = Explanations()  # placements' inputs, for the table GetPod shows
        self._phases = Phases.over(registry, store, journal, settings, self._explanations)  # shared by every runner
        self._replication: Replication | None = None
        if replicas is not None:
            self._replication = Replication(
                replicas,
                gateway_id=settings.current.server.gateway_id,
                listen=listen,
                take=self._take_over,
                drop=self._drop_all,
                wake=journal.wake,
                feed=journal.wake_with,
                cancel=self._cancel_here,
                policy=lease_policy,
            )
        # Told of each cancel the gateway makes itself (a client gone past its grace), for the audit trail.
        self.on_gateway_cancel: Callable[[domain.PodRecord, str], Awaitable[None]] | None = None

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> int:
        """Resumes every unfinished request (after a restart); returns how many. As one replica of several,
        only those it claims now (others come at later lease rounds, as their owners' leases run out)."""
        if self._replication is not None:
            self._journal.safety_poll = SAFETY_POLL_SECONDS
            await self._replication.start()
            resumed = len(self._runners)
        else:
            unfinished = await self._store.list_unfinished()
            self._take_over(unfinished)
            resumed = len(unfinished)
        self._gc = logcontext.background(self._collect_garbage_forever(), name="gc")
        return resumed

    def _take_over(self, records: list[domain.PodRecord]) -> None:
        for record in records:
            if record.request.request_id not in self._runners:
                self._start(record)
                self._attachments.resume(record)

    def _drop_all(self) -> list[str]:
        """Stops following every request (the pods keep running; their new owner resumes them). Forgotten
        at once, not when each task ends: a claim right after must start a runner even for a request whose
        old runner is still unwinding."""
        dropped = list(self._runners)
        for request_id, (_, task) in list(self._runners.items()):
            task.cancel()
            self._finished(request_id, task)
            self._unwinding.add(task)
            self._unwinding_of[request_id] = task
            task.add_done_callback(functools.partial(self._unwound, request_id))
        self._journal.drop_pending(dropped)
        return dropped

    def _unwound(self, request_id: str, task: asyncio.Task[None]) -> None:
        self._unwinding.discard(task)
        if self._unwinding_of.get(request_id) is task:
            del self._unwinding_of[request_id]

    def drain(self) -> None:
        """From now on, clients leaving do not start reattach timers: the gateway is going down."""
        self._attachments.drain()

    async def close(self, *, release: bool = True) -> None:
        """Stops following pods (they keep running; a restarted gateway or another replica resumes them).
        As a replica, `release` hands its requests to the others at once instead of at lease expiry."""
        if self._replication is not None:
            await self._replication.close(release=False)
        await self._attachments.close()
        tasks = [t for _, t in self._runners.values()] + list(self._unwinding)
        if self._gc is not None:
            tasks.append(self._gc)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._runners.clear()
        if self._replication is not None and release:
            await self._replication.close(release=True)

    def live_count(self) -> int:
        """How many unfinished requests this gateway is driving (asked per submission: no list built)."""
        return len(self._runners)

    def live_records(self) -> list[domain.PodRecord]:
        """The unfinished requests this gateway is driving, as their runners last recorded them (for metrics)."""
        return [runner.record for runner, _ in self._runners.values()]

    async def unfinished_of(self, tenant: str) -> list[domain.PodRecord]:
        """A tenant's unfinished requests, for its quotas: as one replica of several, every replica's
        (counted in the database); alone, the ones this gateway drives."""
        if self._replication is None:
            return [r for r in self.live_records() if r.request.tenant == tenant]
        return await self._store.list_unfinished(tenant=tenant)

    def _start(self, record: domain.PodRecord, *, fresh: bool = False) -> None:
        runner = PodRunner(record=record, phases=self._phases, fresh=fresh)
        request_id = record.request.request_id
        cancelled = self._early_cancels.take(record)
        if cancelled is not None:  # asked for before this runner existed: it creates no pod from now on
            runner.cancel(cancelled)
        previous = self._unwinding_of.get(request_id)
        run = runner.run() if previous is None else self._run_after(previous, runner)
        task = logcontext.background(run, name=f"pod:{request_id}", request_id=request_id)
        self._runners[request_id] = (runner, task)
        task.add_done_callback(lambda done: self._finished(request_id, done))

    @staticmethod
    async def _run_after(previous: asyncio.Task[None], runner: PodRunner) -> None:
        """A request dropped and claimed again before its old runner ended: the new one starts once the old
        one has, so nothing the old one read last is written after the new one resumed (journal.hold)."""
        await asyncio.wait({previous})
        await runner.run()

    def _finished(self, request_id: str, task: asyncio.Task[None]) -> None:
        """The runner `task` ended (or was dropped); a newer runner of the same request is left alone."""
        entry = self._runners.get(request_id)
        if entry is None or entry[1] is not task:
            return
        del self._runners[request_id]
        self._attachments.forget(request_id)
        self._journal.forget(request_id)  # its lock and flush state: nothing writes for it here any more

    # --- requests -------------------------------------------------------------------------

    def _resolve_aliases(self, request: domain.PodRequest) -> domain.PodRequest:
        """Names a request gives its clusters (an Airflow kubernetes_conn_id, say) become registered names."""
        named = request.placement.clusters
        resolved = frozenset(self._registry.resolve(n) for n in named)
        if resolved == named:
            return request
        return request.replaced(placement=dataclasses.replace(request.placement, clusters=resolved))

    def _check_known(self, request: domain.PodRequest) -> None:
        violations = [
            errors.FieldViolation(
                field="pod.placement.clusters",
                description=f"no cluster named {name!r} is registered, and none has it as an alias "
                f"(to run requests that name it, add `aliases: [{name}]` to that cluster's registration)",
            )
            for name in sorted(request.placement.clusters - set(self._registry.names()))
        ] + [
            errors.FieldViolation(
                field="pod.placement.regions", description=f"no registered cluster is in region {region!r}"
            )
            for region in sorted(request.placement.regions - self._registry.regions())
        ]
        if violations:
            raise errors.InvalidArgument("; ".join(v.description for v in violations), violations)

    def explain(
        self,
        request: domain.PodRequest,
        *,
        admit: Admission | None = None,
        visible: Collection[str] | None = None,
        text_chars: int | None = None,
    ) -> domain.PlacementDecision:
        """The placement table a submission would get now; `visible` hides clusters the caller may not see.
        Unknown clusters and regions are refused as a submission refuses them."""
        request = self._checked(request, admit, text_chars)
        snapshots = self._registry.snapshots()
        if visible is not None:
            snapshots = [s for s in snapshots if s.spec.name in visible]
        return engine.place_fully(request, snapshots, self._settings.current.placement)  # the table is the answer

    def _checked(
        self, request: domain.PodRequest, admit: Admission | None, text_chars: int | None = None
    ) -> domain.PodRequest:
        """Validation, cluster aliases resolved, unknown clusters and regions refused, then the caller's policy.
        `text_chars`: the length of the JSON text the manifest was decoded from, when the caller has it."""
        validation.validate_request(request, limits=self._settings.current.limits, text_chars=text_chars)
        request = self._resolve_aliases(request)
        self._check_known(request)
        return request if admit is None else admit(request)

    async def submit(
        self,
        request: domain.PodRequest,
        *,
        admit: Admission | None = None,
        admission: TenantAdmission | None = None,
        look_first: bool = False,
        audit: Callable[[domain.PodRequest], Mapping[str, Any]] | None = None,
        text_chars: int | None = None,
    ) -> tuple[domain.PodRecord, bool]:
        """Idempotent on request_id: an existing request is returned as it is, never created twice.

        `admit` applies the caller's policy (after validation, before placement) and returns the request
        to store, e.g. with its placement narrowed to the tenant's clusters; it raises to refuse.
        `admission` checks the tenant's quotas again in the store's insert (across replicas).
        The store is asked whether the request exists only when it is refused (creating the record answers
        it otherwise: one store call per submission, not two), or first when `look_first` (an `admit` that
        takes something, such as a rate limit's token, must not take it for a request already stored).
        `audit` gives the audit record of the request as accepted: stored in the write that creates the
        record (none for an existing request). `text_chars`: the length of the JSON text the manifest was
        decoded from, when the caller has it (validation need not encode it again to know its size).
        """
        if look_first and (existing := await self._store.get_pod_record(request.request_id)) is not None:
            return existing, False
        try:
            request, placement = self._accept(request, admit, text_chars)
        except errors.GatewayError as e:
            if not look_first and (existing := await self._store.get_pod_record(request.request_id)) is not None:
                return existing, False
            if isinstance(e, Unplaceable):
                metrics.PLACEMENTS.labels(cluster="", reason="no_fit").inc()
            raise
        now = datetime.now(UTC)
        new = domain.PodRecord(request=request, phase=domain.PodPhase.QUEUED, created_at=now)
        placed = creation.placed_at_acceptance(new, placement)
        accepted = domain.PhaseChange(phase=domain.PodPhase.QUEUED, reason="Accepted", message=placement.decision.reason)
        # The record, its first placement (the pod name durable before the create) and the first events of its
        # journal in one write; a request not yet stored has nothing buffered in the journal, so this takes
        # none of its per-request state (a resubmission would keep it).
        events = [encode(accepted, now)] + ([encode(placed.decision, now)] if placed.decision is not None else [])
        audited = None if audit is None else audit(request)  # in the same write
        try:
            record, created = await self._store.create_pod_record(
                placed, events=events, admission=admission, audit=audited
            )
        except errors.AlreadyExists:  # its kept pod name is another request's: the runner tells the caller
            placed = new
            record, created = await self._store.create_pod_record(
                new, events=events[:1], admission=admission, audit=audited
            )
        if created and placed.decision is not None:
            self._explanations.remember(request.request_id, placed.decision, placement)
        if created and (self._replication is None or self._replication.may_act()):
            self._start(record, fresh=True)  # else the record is unowned: a lease round claims it
        return record, created

    def _accept(
        self, request: domain.PodRequest, admit: Admission | None, text_chars: int | None
    ) -> tuple[domain.PodRequest, engine.Placement]:
        """Checked (`_checked`) and placed a first time: the request to store and its placement."""
        request = self._checked(request, admit, text_chars)
        placement = engine.placement(request, self._registry.snapshots(), self._settings.current.placement)
        decision = placement.decision
        if not decision.cluster and not (decision.may_fit_later and request.placement.timeout_seconds > 0):
            raise Unplaceable(decision.reason, engine.unsatisfiable_violations(decision))
        return request, placement

    async def get(self, request_id: str) -> domain.PodRecord:
        record = await self._store.get_pod_record(request_id)
        if record is None:
            raise errors.NotFound(f"no pod request with request_id {request_id!r}")
        return record

    def explained(self, record: domain.PodRecord) -> domain.PodRecord:
        """`record` with its placement's table of every cluster's verdict, when this process placed it
        recently (the table is built now, from what the decision was made on); as stored otherwise."""
        return self._explanations.explained(record)

    async def watch(
        self, request_id: str, after_seq: int = 0, *, record: domain.PodRecord | None = None
    ) -> AsyncIterator[domain.StreamEvent]:
        """Events after `after_seq`, ending with the result (repeated when the cursor is at it). The caller
        checked the cursor against the record's last one (`OutOfRange` names it at the API edge); `record`:
        the one it read for that, not read again."""
        record = record if record is not None else await self.get(request_id)
        live = record.result is None or request_id in self._runners
        async for event in self._journal.follow(request_id, after_seq, live=live):
            yield event
            if isinstance(event.item, domain.PodResult):
                return
        if record.result is not None:
            # finished, and its journal dropped by retention (or the result never journalled): the stored
            # result is the answer, at the cursor the result had
            yield domain.StreamEvent(
                seq=max(record.last_seq, after_seq), time=record.finished_at or datetime.now(UTC), item=record.result
            )

    async def cancel(self, request_id: str, reason: str) -> domain.PodRecord:
        """Stored before it is acted on, so whoever runs the request, now or after a takeover or restart,
        cancels it; returns the record once the runner recorded the result (or after a bounded wait). A
        replica that may not act any more (its lease ran out: paused, cut off) passes it to the owner instead
        of cancelling through its stale runner, whose write the fence refuses (the cancel was lost); so does
        one whose runner found itself fenced while cancelling."""
        record = await self.get(request_id)
        if record.phase.finished:
            return record
        record = await self._store.request_cancel(request_id, reason)
        entry = self._runners.get(request_id)
        if entry is None or not self._replication_may_act():
            return await self._cancel_elsewhere(record, reason)
        runner, task = entry
        runner.cancel(reason)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)
        record = await self.get(request_id)
        if self._replication is not None and not record.phase.finished:  # taken over meanwhile: its owner cancels
            return await self._cancel_elsewhere(record, reason)
        return record

    def _replication_may_act(self) -> bool:
        return self._replication is None or self._replication.may_act()

    def _cancel_here(self, request_id: str, reason: str) -> None:
        """Another replica was asked to cancel a request: cancelled here if this one runs it, or once it does."""
        entry = self._runners.get(request_id)
        if entry is not None:
            entry[0].cancel(reason)
        else:
            self._early_cancels.remember(request_id, reason)

    async def _cancel_elsewhere(self, record: domain.PodRecord, reason: str) -> domain.PodRecord:
        """No runner here: its submission is on its way back, another replica runs it (told over NOTIFY), or
        none does until a replica claims it. Then waits (bounded) for the result, as a local cancel waits."""
        request_id = record.request.request_id
        self._early_cancels.remember(request_id, reason)
        if self._replication is not None:
            await self._replication.ask_owner_to_cancel(request_id, reason)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(REMOTE_CANCEL_WAIT_SECONDS):
                async for event in self._journal.follow(request_id, record.last_seq):
                    if isinstance(event.item, domain.PodResult):
                        break
        return await self.get(request_id)

    async def list(
        self,
        *,
        cluster: str = "",
        phases: list[domain.PodPhase] | None = None,
        dag_id: str = "",
        tenant: str | None = None,
        limit: int = 100,
        page_token: str = "",
    ) -> tuple[list[domain.PodRecord], str]:
        return await self._store.list_pod_records(
            cluster=cluster or None,
            phases=phases or None,
            dag_id=dag_id or None,
            tenant=tenant,
            limit=limit,
            page_token=page_token,
        )

    # --- clients coming and going ---------------------------------------------------------

    def attached(self, request: domain.PodRequest) -> contextlib.AbstractAsyncContextManager[Attachment]:
        """While the client that ran the request (or one that reattached in its place) follows it; when the
        last such client leaves before the result, the disconnect policy applies (attachment.py)."""
        return self._attachments.held(request)

    async def _cancel_for_disconnect(self, request_id: str, why: str) -> None:
        record = await self.cancel(request_id, why)
        if self.on_gateway_cancel is not None:
            await self.on_gateway_cancel(record, why)

    # --- garbage ---------------------------------------------------------------------------

    async def _collect_garbage_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.current.dispatch.gc_interval_seconds)
            if self._replication is not None and not await self._replication.leads():
                continue  # another replica runs the singletons
            try:
                await self.collect_garbage()
                await self.apply_retention()
            except Exception:
                log.exception("garbage collection failed; retrying next round")

    async def apply_retention(self) -> int:
        """Drops the journal (logs, events) of requests finished longer ago than the retention; the record
        and its result stay, so a late retry is still answered from the store."""
        cutoff = datetime.now(UTC) - timedelta(seconds=self._settings.current.dispatch.journal_retention_seconds)
        events, _ = await self._store.apply_retention(journal_before=cutoff)
        if events:
            log.info("dropped %d journal event(s) of requests finished before %s", events, cutoff.isoformat())
        return events

    async def collect_garbage(self) -> int:
        """Deletes gateway pods (seen through the watches) that no live request owns, once past their TTL."""
        deleted = 0
        cutoff = datetime.now(UTC) - timedelta(seconds=self._settings.current.dispatch.orphan_ttl_seconds)
        for name in self._registry.names():
            runtime = self._registry.get(name)
            for pod in runtime.owned_pods():
                if await self._is_orphan(name, pod, cutoff):
                    meta = pod["metadata"]
                    with contextlib.suppress(kube.NotFound):
                        await runtime.client.delete_pod(meta["namespace"], meta["name"], grace_seconds=30)
                    log.info("deleted orphan pod %s/%s on %s", meta["namespace"], meta["name"], name)
                    deleted += 1
        return deleted

    async def _is_orphan(self, cluster: str, pod: dict[str, object], cutoff: datetime) -> bool:
        meta = pod.get("metadata") or {}
        assert isinstance(meta, dict)
        created = datetime.fromisoformat(
            str(meta.get("creationTimestamp", "")).replace("Z", "+00:00") or cutoff.isoformat()
        )
        request_id = (meta.get("annotations") or {}).get(builder.REQUEST_ID_ANNOTATION, "")
        if created > cutoff or request_id in self._runners:
            return False
        record = await self._store.get_pod_record(request_id) if request_id else None
        if record is None or record.cluster != cluster or record.name != meta.get("name"):
            return True
        return record.result is not None and must_delete(record.request, record.result)
