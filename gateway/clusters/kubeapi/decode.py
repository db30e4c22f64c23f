"""Decoding API server answers (pure): objects, lists, watch lines, log lines."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgspec
import orjson

from gateway.clusters.kubeapi.errors import KubeError, error_for
from gateway.clusters.kubeapi.request import KubeObject


class DecodeError(KubeError):
    """The API server answered 2xx with something that is not what the call returns."""


def decode_object(body: bytes, *, cluster: str, call: str) -> KubeObject:
    """orjson first (watch events and answers decoded in C: json.loads was ~4 % of a dispatched pod's busy
    samples); what it refuses (NaN, infinities, lone surrogates) goes to json.loads, which decides as before.
    The one difference, an integer beyond 64 bits read as a float, cannot come from the objects decoded here:
    Kubernetes' integers are int32/int64."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = _json_loads(body, cluster=cluster, call=call)
    if not isinstance(data, dict):
        raise DecodeError(f"cluster {cluster!r}: {call}: answer is not a JSON object", cluster=cluster)
    return data


def _json_loads(body: bytes, *, cluster: str, call: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise DecodeError(f"cluster {cluster!r}: {call}: answer is not JSON", cluster=cluster) from e


@dataclass(frozen=True, kw_only=True)
class ObjectList:
    """One page of a list: its items, the resourceVersion to watch from, the token for the next page."""

    items: tuple[KubeObject, ...]
    resource_version: str = ""
    continue_token: str = ""


def decode_list(body: bytes, *, cluster: str, call: str) -> ObjectList:
    data = decode_object(body, cluster=cluster, call=call)
    items = data.get("items") or []
    if not isinstance(items, list):
        raise DecodeError(f"cluster {cluster!r}: {call}: 'items' is not a list", cluster=cluster)
    meta = data.get("metadata") or {}
    return ObjectList(
        items=tuple(items),
        resource_version=str(meta.get("resourceVersion", "")),
        continue_token=str(meta.get("continue", "")),
    )


class EventType(enum.StrEnum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"
    BOOKMARK = "BOOKMARK"
    # Synthetic: a (re)list happened; `objects` is the full current state, `object` is empty.
    # Consumers reconcile: anything they hold that is not in `objects` was deleted while unwatched.
    RELISTED = "RELISTED"


_SERVED_TYPES = {t.value: t for t in EventType if t is not EventType.RELISTED}  # what a server may send


@dataclass(frozen=True, kw_only=True)
class WatchEvent:
    type: EventType
    object: KubeObject = field(default_factory=dict)
    objects: tuple[KubeObject, ...] = ()
    resource_version: str = ""


def resource_version_of(obj: KubeObject) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))


_Shape = TypeVar("_Shape")


class _Line(msgspec.Struct, Generic[_Shape]):
    type: str
    object: _Shape


class Narrow:
    """Decodes watch lines reading only the fields of `shape` (a TypedDict of what the watch's consumer reads,
    e.g. gateway/clusters/shapes.py): msgspec skips every other field of the object in C, so the parts nobody
    reads are never built as Python objects. A line it refuses (a nested object of another type than the
    shape says, JSON orjson or json.loads reads differently) is decoded whole as before (`read` answers None),
    so the consumer sees what it always saw."""

    __slots__ = ("_decoder", "shape")

    def __init__(self, shape: Any) -> None:
        self.shape = shape
        self._decoder = msgspec.json.Decoder(_Line[shape])

    def read(self, line: bytes) -> tuple[str, KubeObject] | None:
        try:
            data = self._decoder.decode(line)
        except msgspec.DecodeError:  # ValidationError too
            return None
        return data.type, data.object


def decode_watch_line(line: bytes, *, cluster: str, call: str, narrow: Narrow | None = None) -> WatchEvent:
    """One line of a watch stream; an ERROR line raises the error it carries (410 → Gone). With `narrow`, the
    object has only the fields of its shape (an ERROR line's Status is always read whole)."""
    read = narrow.read(line) if narrow is not None else None
    kind: Any
    obj: Any
    if read is not None and read[0] != "ERROR":
        kind, obj = read
    else:
        data = decode_object(line, cluster=cluster, call=call)
        kind, obj = data.get("type"), data.get("object")
    if not isinstance(obj, dict):
        raise DecodeError(f"cluster {cluster!r}: {call}: watch event without an object", cluster=cluster)
    if kind == "ERROR":
        raise error_for(int(obj.get("code") or 500), obj, cluster=cluster, call=call)
    event_type = _SERVED_TYPES.get(kind) if isinstance(kind, str) else None
    if event_type is None:
        raise DecodeError(f"cluster {cluster!r}: {call}: unknown watch event type {kind!r}", cluster=cluster)
    return WatchEvent(type=event_type, object=obj, resource_version=resource_version_of(obj))


class LineSplitter:
    """Splits a byte stream into lines. With `max_line`, memory is bounded and a longer line is cut into
    pieces (right for logs, whose lines are clipped anyway); with None, a line of any length is kept whole
    (watches: an event cut in pieces cannot be decoded, and objects reach ~1.5 MiB, more than 1 MiB).

    Each byte is scanned for a newline once, however the stream is chunked (no quadratic rescans).
    """

    def __init__(self, max_line: int | None = 1 << 20) -> None:
        if max_line is not None and max_line < 1:
            raise ValueError(f"max_line must be >= 1 or None, got {max_line}")
        self._buffer = bytearray()
        self._scanned = 0  # the buffer's first bytes, known to hold no newline
        self._max = max_line

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        buffer = self._buffer
        buffer += chunk
        lines: list[bytes] = []
        start = 0
        while (end := buffer.find(b"\n", max(start, self._scanned))) >= 0:
            lines += self._pieces(bytes(buffer[start:end]))
            start = end + 1
        del buffer[:start]
        self._scanned = len(buffer)
        if self._max is not None and len(buffer) >= self._max:
            whole = len(buffer) - len(buffer) % self._max
            lines += self._pieces(bytes(buffer[:whole]))
            del buffer[:whole]
            self._scanned = len(buffer)
        return iter(lines)

    def _pieces(self, line: bytes) -> list[bytes]:
        if self._max is None or len(line) <= self._max:
            return [line]
        return [line[start : start + self._max] for start in range(0, len(line), self._max)]

    def rest(self) -> bytes | None:
        """The unterminated tail at end of stream (a log's last line may lack its newline)."""
        if not self._buffer:
            return None
        tail = bytes(self._buffer)
        self._buffer.clear()
        return tail


def decode_log_line(line: bytes) -> str:
    return line.rstrip(b"\r").decode("utf-8", "replace")


def decode_token(body: bytes, *, cluster: str, call: str) -> tuple[str, str]:
    """(token, expirationTimestamp) of a TokenRequest answer. The token must never be logged."""
    status: Any = decode_object(body, cluster=cluster, call=call).get("status") or {}
    token = status.get("token") if isinstance(status, dict) else None
    if not isinstance(token, str) or not token:
        raise DecodeError(f"cluster {cluster!r}: {call}: TokenRequest answer has no token", cluster=cluster)
    return token, str(status.get("expirationTimestamp", ""))
