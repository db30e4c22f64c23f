"""Domain dataclasses to and from plain JSON data, for the store's JSON columns.

One typed walker driven by each dataclass's annotations, so a field added to a domain type (with a
default, as domain changes must be) round-trips without touching this module, and a stored row
written before the field existed still decodes. Unknown keys are ignored so an older gateway can
read rows a newer one wrote.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from gateway.domain import ClusterSpec, PlacementDecision, PodRequest, PodResult

T = TypeVar("T")

JsonData = Any  # what json.dumps accepts


class CodecError(ValueError):
    """Stored data does not match the domain type it should decode to."""


def to_data(value: object) -> JsonData:
    """Any domain value as JSON-compatible data (dicts, lists, str, numbers, bool, None)."""
    if isinstance(value, enum.Enum):
        return value.value
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):  # a manifest's non-integer number: its exact text (a quantity reads it alike)
        return str(value)
    if isinstance(value, datetime):
        return _as_utc(value).isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_data(v) for k, v in value.items()}
    if isinstance(value, frozenset | set):
        return sorted((to_data(v) for v in value), key=repr)
    if isinstance(value, list | tuple):
        return [to_data(v) for v in value]
    raise CodecError(f"cannot encode {type(value).__name__} as JSON data")


def from_data(tp: Any, data: JsonData) -> Any:
    """Decode `data` as type `tp` (a dataclass, enum, container or scalar annotation)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return data
    if origin in (typing.Union, types.UnionType):
        return _decode_union(typing.get_args(tp), data)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _decode_dataclass(tp, data)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(data)
    if tp is datetime:
        return _as_utc(datetime.fromisoformat(_expect(str, data, tp)))
    if origin is not None:
        return _decode_container(origin, typing.get_args(tp), data)
    if tp is float and isinstance(data, int) and not isinstance(data, bool):
        return float(data)
    return _expect(tp, data, tp)


def _decode_union(args: tuple[Any, ...], data: JsonData) -> Any:
    if data is None and type(None) in args:
        return None
    (inner,) = [a for a in args if a is not type(None)]
    return from_data(inner, data)


def _decode_container(origin: Any, args: tuple[Any, ...], data: JsonData) -> Any:
    if origin in (tuple, frozenset, list):
        items = [from_data(args[0], v) for v in _expect(list, data, list)]
        return origin(items)
    if origin in (Mapping, dict, typing.Mapping):
        key_tp, value_tp = args
        return {from_data(key_tp, k): from_data(value_tp, v) for k, v in _expect(dict, data, origin).items()}
    raise CodecError(f"unsupported annotation {origin!r}")


def _decode_dataclass(cls: type[T], data: JsonData) -> T:
    hints = _hints(typing.cast(Any, cls))
    raw = _expect(dict, data, cls)
    kwargs = {name: from_data(hints[name], raw[name]) for name in hints if name in raw}
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise CodecError(f"cannot decode {cls.__name__}: {e}") from e


@functools.cache
def _hints(cls: Any) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    return {k: v for k, v in typing.get_type_hints(cls).items() if k in names}


def _expect(tp: Any, data: JsonData, what: Any) -> Any:
    if not isinstance(data, tp):
        raise CodecError(f"expected {getattr(what, '__name__', what)}, got {type(data).__name__}")
    return data


def _as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC; every datetime leaving the store is aware."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- the explicit entry points the store uses ---------------------------------------------


def encode_pod_request(request: PodRequest) -> JsonData:
    return to_data(request)


def decode_pod_request(data: JsonData) -> PodRequest:
    return typing.cast(PodRequest, from_data(PodRequest, data))


def encode_decision(decision: PlacementDecision | None) -> JsonData:
    return to_data(decision)


def decode_decision(data: JsonData) -> PlacementDecision | None:
    return None if data is None else typing.cast(PlacementDecision, from_data(PlacementDecision, data))


def encode_result(result: PodResult | None) -> JsonData:
    return to_data(result)


def decode_result(data: JsonData) -> PodResult | None:
    return None if data is None else typing.cast(PodResult, from_data(PodResult, data))


def encode_cluster(spec: ClusterSpec) -> JsonData:
    return to_data(spec)


def decode_cluster(data: JsonData) -> ClusterSpec:
    return typing.cast(ClusterSpec, from_data(ClusterSpec, data))
