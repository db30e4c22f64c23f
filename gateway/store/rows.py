"""Pure mapping between domain values and table rows, and the opaque page tokens."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gateway.domain import JournalEvent, JournalKind, PodPhase, PodRecord
from gateway.errors import InvalidArgument
from gateway.store.codec import (
    decode_decision,
    decode_pod_request,
    decode_result,
    encode_decision,
    encode_pod_request,
    encode_result,
    to_data,
)

_PAGE_PREFIX = "v1:"


def record_values(record: PodRecord, now: datetime) -> dict[str, Any]:
    """Column values of a new pod record (empty strings become NULL so unique keys ignore them)."""
    airflow = record.request.airflow
    return {
        "request_id": record.request.request_id,
        "phase": record.phase.value,
        "cluster": record.cluster or None,
        "region": record.region or None,
        "namespace": record.namespace or None,
        "name": record.name or None,
        "dag_id": airflow.dag_id if airflow else None,
        "tenant": record.request.tenant or None,
        "created_at": record.created_at or now,
        "updated_at": now,
        "finished_at": record.finished_at,
        "request": encode_pod_request(record.request),
        "decision": encode_decision(record.decision),
        "result": encode_result(record.result),
        "last_seq": 0,
    }


def record_from_row(row: Mapping[Any, Any]) -> PodRecord:
    return PodRecord(
        request=decode_pod_request(row["request"]),
        phase=PodPhase(row["phase"]),
        cluster=row["cluster"] or "",
        region=row["region"] or "",
        namespace=row["namespace"] or "",
        name=row["name"] or "",
        created_at=row["created_at"],
        finished_at=row["finished_at"],
        decision=decode_decision(row["decision"]),
        result=decode_result(row["result"]),
    )


def event_values(record_id: int, seq: int, event: JournalEvent) -> dict[str, Any]:
    return {
        "record_id": record_id,
        "seq": seq,
        "kind": JournalKind(event.kind).value,
        "time": event.time,
        "payload": to_data(event.payload),
    }


def event_from_row(row: Mapping[Any, Any]) -> JournalEvent:
    return JournalEvent(kind=JournalKind(row["kind"]), time=row["time"], payload=row["payload"])


def encode_page_token(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_PAGE_PREFIX}{last_id}".encode()).decode().rstrip("=")


def decode_page_token(token: str) -> int | None:
    """The id to continue below, None for the first page; InvalidArgument for a token we did not issue."""
    if not token:
        return None
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        if text.startswith(_PAGE_PREFIX):
            return int(text.removeprefix(_PAGE_PREFIX))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise InvalidArgument(f"invalid page token {token[:40]!r}: pass back the next_page_token of the previous page")


def clamp_limit(limit: int, maximum: int) -> int:
    if limit <= 0:
        raise InvalidArgument(f"page size must be positive, got {limit}")
    return min(limit, maximum)
