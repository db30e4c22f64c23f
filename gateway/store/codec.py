"""Domain dataclasses to and from plain JSON data, for the store's JSON columns.

One typed walker driven by each dataclass's annotations, so a field added to a domain type (with a
default, as domain changes must be) round-trips without touching this module, and a stored row
written before the field existed still decodes. Unknown keys are ignored so an older gateway can
read rows a newer one wrote. Encoding picks its rule once per type (`_encoder`), not per value.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import operator
import types
import typing
from collections.abc import Callable, Mapping
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
    kind = type(value)
    if kind in _PLAIN:
        return value
    encode = _ENCODERS.get(kind)
    if encode is None:
        encode = _encoder(kind)
    return encode(value)


_PLAIN = frozenset({str, int, float, bool, type(None)})  # exactly these types are JSON data as they are
Encoder = Callable[[Any], JsonData]
_ENCODERS: dict[type, Encoder] = {}


def _encoder(kind: type) -> Encoder:
    """How values of `kind` are encoded: which of the rules below applies depends on the type alone, so it is
    chosen once per type (the walk asked `isinstance` of every rule, and `dataclasses.fields` of every
    dataclass, for each value: a third of the store's CPU in the journal's stream items, issue 16)."""
    encode = _rule(kind)
    if encode is not _refuse:
        _ENCODERS[kind] = encode
    return encode


def _rule(kind: type) -> Encoder:
    if issubclass(kind, enum.Enum):
        return _enum
    if issubclass(kind, bool | int | float | str):  # subclasses: the value itself, as json.dumps writes them
        return _itself
    if issubclass(kind, Decimal):  # a manifest's non-integer number: its exact text (a quantity reads it alike)
        return str
    if issubclass(kind, datetime):
        return _datetime
    if dataclasses.is_dataclass(kind):
        return _dataclass_encoder(kind)
    if issubclass(kind, Mapping):
        return _mapping
    if issubclass(kind, frozenset | set):
        return _set
    if issubclass(kind, list | tuple):
        return _sequence
    return _refuse


def _enum(value: enum.Enum) -> JsonData:
    return value.value


def _itself(value: object) -> JsonData:
    return value


def _datetime(value: datetime) -> JsonData:
    return _as_utc(value).isoformat()


def _item(value: object) -> JsonData:
    return value if type(value) in _PLAIN else to_data(value)


def _mapping(value: Mapping[Any, Any]) -> JsonData:
    return {k if type(k) is str else str(k): v if type(v) in _PLAIN else to_data(v) for k, v in value.items()}


def _set(value: frozenset[Any] | set[Any]) -> JsonData:
    return sorted((to_data(v) for v in value), key=repr)


def _sequence(value: list[Any] | tuple[Any, ...]) -> JsonData:
    return [v if type(v) in _PLAIN else to_data(v) for v in value]


def _refuse(value: object) -> JsonData:
    raise CodecError(f"cannot encode {type(value).__name__} as JSON data")


def fields_of(value: object) -> JsonData:
    """For an encoder that walks dicts, lists and JSON scalars itself (orjson's `default`): a dataclass as the
    dict of its fields' values, not encoded further (the encoder asks again for what it does not know);
    anything else as `to_data` gives it. Encoded, the two are the same data."""
    kind = type(value)
    if kind not in _ENCODERS:
        _encoder(kind)
    fields = _FIELDS.get(kind)
    if fields is None:
        return to_data(value)
    names, values = fields
    return dict(zip(names, values(value), strict=True))


_FIELDS: dict[type, tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]] = {}  # per dataclass: names, getter


def _dataclass_encoder(kind: type) -> Encoder:
    """Every field by name, in declaration order (`dataclasses.fields`, read once)."""
    names = tuple(f.name for f in dataclasses.fields(kind))
    getter = operator.attrgetter(*names) if names else (lambda value: ())
    values = getter if len(names) != 1 else (lambda value: (getter(value),))
    _FIELDS[kind] = (names, values)
    return lambda value: dict(zip(names, map(_item, values(value)), strict=True))


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
