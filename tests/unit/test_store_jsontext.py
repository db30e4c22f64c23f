"""The store's JSON text (orjson) says what `json.dumps(to_data(value))` said, as data; text already encoded
is written as is; decoding keeps every integer exact."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain import (
    ContainerResult,
    JournalKind,
    KubernetesEvent,
    LogLine,
    PhaseChange,
    PodPhase,
    PodRequest,
    PodResult,
)
from gateway.store.codec import CodecError, to_data
from gateway.store.jsontext import Encoded, dumps, loads, serialize
from tests.unit.test_store_codec import CLUSTER, DECISION, FULL_REQUEST, RESULT


def old(value: object) -> Any:
    """What the store wrote before, as data."""
    return json.loads(json.dumps(to_data(value)))


finite = st.floats(allow_nan=False, allow_infinity=False)
scalars = st.none() | st.booleans() | st.integers() | finite | st.text()
data = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4), max_leaves=30
)


@given(data)
def test_json_data_reads_back_as_before(value: Any) -> None:
    assert loads(dumps(value)) == old(value)


class Colour(Enum):
    RED = "red"


@pytest.mark.parametrize(
    "value",
    [
        FULL_REQUEST,
        DECISION,
        RESULT,
        CLUSTER,
        PhaseChange(phase=PodPhase.RUNNING, reason="Started"),
        {"kind": JournalKind.LOG, "colour": Colour.RED},
        {"naive": datetime(2026, 1, 2, 3, 4, 5, 678901), "aware": datetime(2026, 1, 2, 3, 4, tzinfo=timezone(timedelta(hours=2)))},
        {"exact": Decimal("0.1"), "set": frozenset({"b", "a"}), "tuple": (1, "x")},
        {"big": 2**80, "negative": -(2**70)},  # past 64 bits: orjson refuses, the standard library writes it
        {1: "a non-string key"},  # likewise
        {"unicode": "Grüße, 世界", "control": "\x00\x1f"},
        {"utc": datetime(2026, 1, 2, tzinfo=UTC)},
    ],
    ids=lambda v: type(v).__name__,
)
def test_domain_values_read_back_as_before(value: object) -> None:
    assert loads(dumps(value)) == old(value)


def test_integers_past_64_bits_stay_exact() -> None:
    assert loads(dumps({"n": 2**80 + 1})) == {"n": 2**80 + 1}
    assert loads('{"n": 123456789012345678901234567890}') == {"n": 123456789012345678901234567890}


def test_what_cannot_be_encoded_fails_as_before() -> None:
    with pytest.raises(CodecError):
        dumps({"x": object()})
    with pytest.raises(CodecError):
        dumps({1: object()})  # through the standard library's path too


def test_a_non_finite_float_is_written_as_null() -> None:
    """Nothing in the gateway makes one; strict JSON and PostgreSQL's json refuse NaN (jsontext's docstring)."""
    assert loads(dumps({"x": math.nan})) == {"x": None}


def test_encoded_text_is_written_as_is_and_anything_else_encoded() -> None:
    text = dumps({"a": 1})
    assert isinstance(text, Encoded)
    assert serialize(text) is text
    assert serialize("a plain string") == '"a plain string"'  # a JSON string value, not text to pass through
    assert json.loads(serialize({"a": [1, None]})) == {"a": [1, None]}


def walked(value: object) -> Any:
    """`to_data` as it was before it chose its rule once per type: asked of every value in turn (the reference)."""
    if isinstance(value, Enum):
        return value.value
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return (value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)).isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: walked(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): walked(v) for k, v in value.items()}
    if isinstance(value, frozenset | set):
        return sorted((walked(v) for v in value), key=repr)
    if isinstance(value, list | tuple):
        return [walked(v) for v in value]
    raise CodecError(f"cannot encode {type(value).__name__} as JSON data")


aware = st.datetimes(timezones=st.just(UTC) | st.builds(timezone, st.timedeltas(timedelta(hours=-12), timedelta(hours=12))))
when = aware | st.datetimes()
manifest = st.dictionaries(st.text(max_size=5), data, max_size=4)
stream_items = st.one_of(
    st.builds(LogLine, container=st.text(max_size=5), time=when, text=st.text()),
    st.builds(PhaseChange, phase=st.sampled_from(PodPhase), reason=st.text(max_size=5), message=st.text(max_size=5)),
    st.builds(KubernetesEvent, time=when, type=st.text(max_size=5), reason=st.text(max_size=5), message=st.text(), count=st.integers()),
    st.builds(
        PodResult,
        phase=st.sampled_from(PodPhase),
        exit_code=st.integers(-(2**63), 2**63 - 1),
        containers=st.lists(st.builds(ContainerResult, name=st.text(max_size=3), exit_code=st.integers(-5, 300)), max_size=2).map(tuple),
        xcom_json=st.none() | st.text(max_size=8),
        warning_events=st.lists(st.builds(KubernetesEvent, time=when, type=st.just("Warning"), reason=st.text(max_size=3), message=st.text(max_size=3)), max_size=2).map(tuple),
    ),
    st.builds(PodRequest, request_id=st.text(max_size=5), pod=manifest, log_containers=st.lists(st.text(max_size=3), max_size=2).map(tuple), tenant=st.text(max_size=3)),
)
odd = st.sampled_from([Decimal("0.1"), frozenset({"b", "a"}), (1, "x"), Colour.RED, PodPhase.FAILED, 2**80, {3: "x"}])


@given(stream_items | st.lists(stream_items | odd | data, max_size=3) | st.dictionaries(st.text(max_size=3), stream_items | odd, max_size=3))
def test_encoders_chosen_per_type_give_what_the_walk_gave(value: Any) -> None:
    """Per type rules and `fields_of` (orjson walking a dataclass's fields itself) change no stored byte's
    meaning: the same data as the walk that asked every rule of every value, directly and through `dumps`."""
    assert to_data(value) == walked(value)
    assert loads(dumps(value)) == json.loads(json.dumps(walked(value)))


@pytest.mark.parametrize("value", [FULL_REQUEST, DECISION, RESULT, CLUSTER, None, PhaseChange(phase=PodPhase.RUNNING)])
def test_fields_of_and_to_data_encode_alike(value: object) -> None:
    assert to_data(value) == walked(value)
    assert loads(dumps(value)) == json.loads(json.dumps(walked(value)))
    assert loads(dumps([value, value])) == json.loads(json.dumps(walked([value, value])))  # rules cached by now
