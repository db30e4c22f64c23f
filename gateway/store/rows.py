"""Pure mapping between domain values and table rows, and the opaque page tokens."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from gateway.domain import JournalEvent, JournalKind, PodPhase, PodRecord
from gateway.errors import InvalidArgument
from gateway.store.codec import (
    decode_decision,
    decode_pod_request,
    decode_result,
)
from gateway.store.jsontext import Encoded, dumps, loads
from gateway.store.schema import naive_utc

_PAGE_PREFIX = "v1:"

T = TypeVar("T")


def record_values(record: PodRecord, now: datetime) -> dict[str, Any]:
    """Column values of a new pod record (empty strings become NULL so unique keys ignore them); its JSON
    columns as their text (`Encoded`)."""
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
        "request": dumps(record.request),
        "decision": dumps(record.decision),
        "result": dumps(record.result),
        "last_seq": record.last_seq,
        "reattach_deadline": record.reattach_deadline,
        "cancel_requested_at": record.cancel_requested_at,
        "cancel_reason": record.cancel_reason or None,
        "owner": None,  # unowned (one gateway) unless the store acts as a replica
        "fence": 0,
    }


class DecodeCache:
    """The decoded JSON columns of recent records, reused while the stored text is unchanged.

    Every record write returns the whole record, and decoding its request or placement table into
    dataclasses takes ~0.2 ms each, several times per pod. The store reads its JSON columns back as text
    (statements.RECORD_COLUMNS); a digest of that text is compared with the one of the cached value, so an
    unchanged column costs neither JSON decoding nor a walk of the data. Only the digest is held, not the
    text (a followed pod's manifest would be held twice). Values are frozen dataclasses, shared by the
    records that hold them.
    """

    def __init__(self, size: int = 30_000) -> None:
        self._size = size
        self._items: dict[tuple[str, str], tuple[bytes, Any]] = {}

    def get(self, column: str, key: str, text: str, decode: Callable[[str], T]) -> T:
        slot = (column, key)
        digest = _digest(text)
        hit = self._items.pop(slot, None)
        if hit is None or hit[0] != digest:
            hit = (digest, decode(text))
        self._put(slot, hit)
        value: T = hit[1]
        return value

    def put(self, column: str, key: str, text: str, value: Any) -> None:
        """A value about to be written, as encoded (`text`): its row read back (RETURNING) is not decoded
        again; the codec round-trips (tests/unit/test_store_codec.py). Should the stored text differ after
        all, `get` finds it unequal and decodes it."""
        self._items.pop((column, key), None)
        self._put((column, key), (_digest(text), value))

    def _put(self, slot: tuple[str, str], item: tuple[bytes, Any]) -> None:
        self._items[slot] = item  # most recently used last
        if len(self._items) > self._size:
            del self._items[next(iter(self._items))]

    def __len__(self) -> int:
        return len(self._items)


def _digest(text: str) -> bytes:
    """SHA-256 (its first 16 bytes) runs on the CPU's SHA instructions where it has them, as OpenSSL finds:
    1.2 us for a request's ~850 bytes against BLAKE2b's 2.1 on this machine, ~13 digests a pod (helper writer6)."""
    return hashlib.sha256(text.encode()).digest()[:16]


_PHASES = {phase.value: phase for phase in PodPhase}  # a lookup, where PodPhase(text) costs enum's __call__


def record_from_row(row: Mapping[Any, Any], cache: DecodeCache | None = None) -> PodRecord:
    """`row` as read with statements.RECORD_COLUMNS: its JSON columns as text (SQL NULL reads as JSON null)."""

    def decoded(column: str, decode: Callable[[Any], T]) -> T:
        text = row[column]
        if text is None:
            return decode(None)
        if cache is None:
            return decode(loads(text))
        return cache.get(column, row["request_id"], text, lambda t: decode(loads(t)))

    phase = row["phase"]
    return PodRecord(
        request=decoded("request", decode_pod_request),
        phase=_PHASES.get(phase) or PodPhase(phase),
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


def event_rows(events: Sequence[JournalEvent]) -> list[dict[str, Any]]:
    """The journal rows of `events` but for their record and sequence number, payloads encoded (`Encoded`)."""
    return [{"kind": JournalKind(e.kind).value, "time": e.time, "payload": dumps(e.payload)} for e in events]


def event_array(events: Sequence[JournalEvent]) -> Encoded:
    """`events` as one JSON array for statements.journalled (PostgreSQL): the `i`-th from 1, its time as
    stored (naive UTC, ISO 8601)."""
    return dumps(
        [
            {"i": i, "kind": JournalKind(e.kind).value, "time": naive_utc(e.time).isoformat(), "payload": e.payload}
            for i, e in enumerate(events, 1)
        ]
    )


def event_values(record_id: int, seq: int, event: JournalEvent) -> dict[str, Any]:
    """A journal row's values, its payload as JSON text (`Encoded`)."""
    return {
        "record_id": record_id,
        "seq": seq,
        "kind": JournalKind(event.kind).value,
        "time": event.time,
        "payload": dumps(event.payload),
    }


def event_from_row(row: Mapping[Any, Any]) -> JournalEvent:
    return JournalEvent(kind=JournalKind(row["kind"]), time=row["time"], payload=row["payload"])


def events_from_array(array: str, last_seq: int) -> list[tuple[int, JournalEvent]]:
    """The events of an `event_array` whose last is number `last_seq`, as `read_events` reads them back
    (a NOTIFY carries them: replicas.feed). ValueError, KeyError or TypeError for text not made so."""
    items = loads(array)
    first = last_seq - len(items)
    return [
        (
            first + int(item["i"]),
            JournalEvent(
                kind=JournalKind(item["kind"]),
                time=datetime.fromisoformat(item["time"]).replace(tzinfo=UTC),
                payload=item["payload"],
            ),
        )
        for item in items
    ]


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
