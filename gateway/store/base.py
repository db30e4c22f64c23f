"""The store interface the rest of the gateway programs against; `SqlStore` implements it.

Conventions: missing rows read as None (get_*) and raise `gateway.errors.NotFound` on writes that need
them; a unique-key clash on placement raises `AlreadyExists`; a bad page token raises `InvalidArgument`.
Every datetime returned is timezone-aware UTC. Pages are newest first; an empty next token ends them.

A state change of a request and the journal events that announce it are one write: the record writes
take `events`, appended to the request's journal in the same transaction (after the change, sequence
numbers as `append_events` gives them), so a reader never sees one without the other, and a crash
cannot come between them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from gateway.domain import ClusterSpec, JournalEvent, PlacementDecision, PodPhase, PodRecord, PodResult

DEFAULT_PAGE = 100
MAX_PAGE = 1000


@dataclass(frozen=True, kw_only=True)
class AuditRecord:
    """One append-only audit record as stored: its sequence number, when, and what was recorded."""

    id: int
    time: datetime
    action: str
    actor: str
    record: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class TenantAdmission:
    """A tenant's quota, checked again in the transaction that inserts its record, under a lock per tenant,
    so that two replicas cannot both admit its last slot. `check` is given the tenant's unfinished records as
    of that transaction and raises to refuse; `known` are records the caller read already (reused while
    still unfinished rather than decoded again)."""

    tenant: str
    check: Callable[[list[PodRecord]], None]
    known: Sequence[PodRecord] = ()


class Store(Protocol):
    async def close(self) -> None:
        """Writes already submitted are made first; a write submitted later raises `StoreClosed` (an
        `Unavailable`). A write never fails because other writes are queued before it."""
        ...

    # --- clusters -------------------------------------------------------------------------
    async def put_cluster(self, spec: ClusterSpec) -> None:
        """Insert or replace a cluster's registration; its cordon state is kept."""
        ...

    async def get_cluster(self, name: str) -> ClusterSpec | None: ...

    async def list_clusters(self) -> list[ClusterSpec]:
        """Every registered cluster, by name."""
        ...

    async def delete_cluster(self, name: str) -> bool:
        """True when a cluster was deleted."""
        ...

    async def set_cordon(self, name: str, cordoned: bool, reason: str = "") -> None: ...

    async def get_cordons(self) -> dict[str, str]:
        """Cordoned clusters and why."""
        ...

    # --- pod records ----------------------------------------------------------------------
    async def create_pod_record(
        self,
        record: PodRecord,
        *,
        events: Sequence[JournalEvent] = (),
        admission: TenantAdmission | None = None,
        audit: Mapping[str, Any] | None = None,
    ) -> tuple[PodRecord, bool]:
        """Insert unless the request_id exists: (stored record, True) or (existing record, False). Race-safe.
        `events` start the new record's journal; nothing is appended to an existing record's. With
        `admission`, a new record is inserted only if its check passes (else its error is raised). `audit`
        is appended to the audit log (as by `append_audit`) in the same transaction as a new record, and not
        at all for an existing one: a request is never stored without its audit record, nor audited twice."""
        ...

    async def get_pod_record(self, request_id: str) -> PodRecord | None: ...

    async def record_placement(
        self,
        request_id: str,
        *,
        cluster: str,
        region: str,
        namespace: str,
        name: str,
        decision: PlacementDecision | None,
        phase: PodPhase | None = None,
        events: Sequence[JournalEvent] = (),
    ) -> PodRecord:
        """Where the pod goes, written before it is created (failover overwrites it)."""
        ...

    async def record_phase(self, request_id: str, phase: PodPhase, *, events: Sequence[JournalEvent] = ()) -> PodRecord: ...

    async def record_result(
        self, request_id: str, result: PodResult, *, events: Sequence[JournalEvent] = ()
    ) -> PodRecord:
        """The outcome (phase follows the result); written before the pod is deleted."""
        ...

    async def record_finished(self, request_id: str, finished_at: datetime | None = None) -> PodRecord:
        """The gateway is done with the request (finish action done): it leaves `list_unfinished`."""
        ...

    async def set_reattach_deadline(self, request_id: str, deadline: datetime | None) -> PodRecord:
        """When the disconnect policy cancels the pod unless a client reattaches; None: a client is attached."""
        ...

    async def request_cancel(self, request_id: str, reason: str) -> PodRecord:
        """Records that a cancel was asked for, before anyone acts on it: whoever runs the request, now or
        after a takeover or restart, cancels it. The first reason is kept; a finished record is unchanged."""
        ...

    async def list_pod_records(
        self,
        *,
        cluster: str | None = None,
        phases: Iterable[PodPhase] | None = None,
        dag_id: str | None = None,
        tenant: str | None = None,
        limit: int = DEFAULT_PAGE,
        page_token: str = "",
    ) -> tuple[list[PodRecord], str]: ...

    async def list_unfinished(self, *, tenant: str | None = None) -> list[PodRecord]:
        """Records without finished_at, oldest first: what to resume tracking after a restart (`tenant`:
        only that tenant's, for its quotas)."""
        ...

    async def running_counts(self) -> dict[str, int]:
        """Unfinished placed records per cluster (clusters with none are absent)."""
        ...

    # --- the event journal ----------------------------------------------------------------
    async def append_events(self, request_id: str, events: list[JournalEvent]) -> list[int]:
        """Append in order; returns each event's sequence number (per request, from 1, contiguous)."""
        ...

    async def read_events(
        self, request_id: str, after_seq: int = 0, limit: int = MAX_PAGE
    ) -> list[tuple[int, JournalEvent]]: ...

    async def prune_events(self, request_id: str) -> int:
        """Delete a request's journal (sequence numbers keep counting up); returns rows deleted."""
        ...

    async def apply_retention(
        self, *, journal_before: datetime, records_before: datetime | None = None
    ) -> tuple[int, int]:
        """Drop journals of requests finished before `journal_before`, and records finished before
        `records_before`; returns (events deleted, records deleted)."""
        ...

    # --- audit ----------------------------------------------------------------------------
    async def append_audit(self, record: Mapping[str, Any]) -> int:
        """Append a JSON-able record (its "action" and "actor" keys are indexed); returns its id."""
        ...

    async def list_audit(
        self,
        *,
        action: str | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        limit: int = DEFAULT_PAGE,
        page_token: str = "",
    ) -> tuple[list[AuditRecord], str]: ...


class LeaseLost(Exception):
    """An owner write was refused: another replica has taken the request over (docs/decisions/0021).
    The writer must stop following the request at once, without touching its pod."""
