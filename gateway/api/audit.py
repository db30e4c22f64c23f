"""The audit trail: who did what, where, when, with which outcome; to the store and to a JSON-lines sink.

Append-only in both places. Entries carry names, ids and outcomes, never a credential: a kubeconfig's
token, a bearer token or a certificate never reach `record()` (callers pass only the fields below).
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from gateway.domain import PodRecord
from gateway.observability.logging import redact
from gateway.store.base import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class AuditEvent:
    action: str  # e.g. pod.submit, pod.cancel, kubeconfig.issue, cluster.cordon, rpc.denied
    outcome: str  # accepted, denied, issued, revoked, ...
    tenant: str = ""
    identity: str = ""
    cluster: str = ""
    namespace: str = ""
    pod: str = ""
    request_id: str = ""
    code: str = ""  # the gRPC status code of a refusal
    message: str = ""
    details: tuple[tuple[str, str], ...] = ()

    def as_record(self, when: datetime) -> dict[str, Any]:
        fields = {k: v for k in _FIELDS if (v := getattr(self, k))}  # not asdict: it deep-copies every value
        fields.update(self.details)
        if "message" in fields:
            fields["message"] = redact(str(fields["message"]))
        return {"time": when.isoformat(), "actor": self.identity or "anonymous", **fields}


_FIELDS = tuple(f.name for f in dataclass_fields(AuditEvent) if f.name != "details")

GATEWAY_ACTOR = "podgate"


def gateway_cancel_entry(record: PodRecord, why: str) -> AuditEvent:
    """A cancel the gateway made on its own (its client left and none came back within the grace)."""
    return AuditEvent(
        action="pod.cancel", outcome=record.phase.value, identity=GATEWAY_ACTOR, tenant=record.request.tenant,
        request_id=record.request.request_id, cluster=record.cluster, namespace=record.namespace, pod=record.name,
        message=why,
    )  # fmt: skip


class Auditor:
    """Writes each entry to the store first (the durable copy), then to the sink, if one is configured.

    The sink is "" (none), "-" (standard output) or a file path, opened for appending. A sink that
    fails is logged and skipped; the store copy is the one the audit relies on.
    """

    def __init__(self, store: Store, sink: str) -> None:
        self._store = store
        self._sink_name = sink
        self._sink: IO[str] | None = None
        if sink == "-":
            self._sink = sys.stdout
        elif sink:
            path = Path(sink)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._sink = path.open("a", encoding="utf-8")

    async def record(self, entry: AuditEvent) -> None:
        record = entry.as_record(datetime.now(UTC))
        await self._store.append_audit(record)
        self.copy_to_sink(record)

    def copy_to_sink(self, record: dict[str, Any]) -> None:
        """An entry's record (`AuditEvent.as_record`) that the store holds already, e.g. written with the
        request it audits (`Store.create_pod_record`), to the sink."""
        if self._sink is not None:
            try:
                self._sink.write(json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n")
                self._sink.flush()
            except OSError as e:
                log.error("audit sink %s failed (the store keeps the entry): %s", self._sink_name, e)

    def close(self) -> None:
        if self._sink is not None and self._sink is not sys.stdout:
            self._sink.close()
        self._sink = None
