"""The store's JSON text (orjson) says what `json.dumps(to_data(value))` said, as data; text already encoded
is written as is; decoding keeps every integer exact."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain import JournalKind, PhaseChange, PodPhase
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
