"""Pure mapping between domain values and table rows, and the opaque page tokens."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

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

T = TypeVar("T")


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
        "last_seq": record.last_seq,
        "reattach_deadline": record.reattach_deadline,
        "cancel_requested_at": record.cancel_requested_at,
        "cancel_reason": record.cancel_reason or None,
    }


class DecodeCache:
    """The decoded JSON columns of recent records, reused while the stored value is unchanged.

    Every record update returns the whole record, and decoding its request or placement table into
    dataclasses takes ~0.2 ms each, several times per pod; comparing the stored JSON with the cached
    copy takes microseconds. Values are frozen dataclasses, shared by the records that hold them.
    """

    def __init__(self, size: int = 30_000) -> None:
        self._size = size
        self._items: dict[tuple[str, str], tuple[Any, Any]] = {}

    def get(self, column: str, key: str, raw: Any, decode: Callable[[Any], T]) -> T:
        slot = (column, key)
        hit = self._items.pop(slot, None)
        if hit is None or hit[0] != raw:
            hit = (raw, decode(raw))
        # on a hit the cached raw stays, not this equal copy: the value shares its dicts and strings, and
        # holding both would keep two copies of every followed pod's manifest
        self._put(slot, *hit)
        value: T = hit[1]
        return value

    def put(self, column: str, key: str, raw: Any, value: Any) -> None:
        """A value about to be written, as encoded (`raw`): its row read back (RETURNING) is not decoded
        again; the codec round-trips (tests/unit/test_store_codec.py). Should the stored JSON differ after
        all, `get` finds it unequal and decodes it."""
        self._items.pop((column, key), None)
        self._put((column, key), raw, value)

    def _put(self, slot: tuple[str, str], raw: Any, value: Any) -> None:
        self._items[slot] = (raw, value)  # most recently used last
        if len(self._items) > self._size:
            del self._items[next(iter(self._items))]

    def __len__(self) -> int:
        return len(self._items)


def record_from_row(row: Mapping[Any, Any], cache: DecodeCache | None = None) -> PodRecord:
    def decoded(column: str, decode: Callable[[Any], T]) -> T:
        raw = row[column]
        return decode(raw) if cache is None or raw is None else cache.get(column, row["request_id"], raw, decode)

    return PodRecord(
        request=decoded("request", decode_pod_request),
        phase=PodPhase(row["phase"]),
        cluster=row["cluster"] or "",
        region=row["region"] or "",
        namespace=row["namespace"] or "",
        name=row["name"] or "",
        created_at=row["created_at"],
        finished_at=row["finished_at"],
        decision=decoded("decision", decode_decision),
        result=decoded("result", decode_result),
        last_seq=row["last_seq"] or 0,
        reattach_deadline=row["reattach_deadline"],
        cancel_requested_at=row["cancel_requested_at"],
        cancel_reason=row["cancel_reason"] or "",
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
