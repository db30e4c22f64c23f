"""The one-step processors of gateway.store.direct give what SQLAlchemy's own chain gives, for every value."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import create_engine

from gateway.store import direct
from gateway.store.jsontext import dumps, serialize
from gateway.store.schema import journal_events, pod_records

DIALECT = create_engine("sqlite://", json_serializer=serialize).dialect
UTC_COLUMN = pod_records.c.updated_at.type
JSON_COLUMN = journal_events.c.payload.type

zones = st.none() | st.just(UTC) | st.integers(-14 * 60 + 1, 14 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
moments = st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 30), timezones=zones)


def general_bind(type_: Any) -> Any:
    return type_.dialect_impl(DIALECT).bind_processor(DIALECT)


def general_result(type_: Any) -> Any:
    return type_.dialect_impl(DIALECT).result_processor(DIALECT, None)


def test_the_one_step_processors_are_the_ones_chosen() -> None:
    """A guard for the tests below: they compare the fast processors, not SQLAlchemy's with itself."""
    assert direct.bind_processor(UTC_COLUMN, DIALECT) is not general_bind(UTC_COLUMN)
    assert direct.result_processor(UTC_COLUMN, DIALECT) is direct._utc_from_text
    assert direct.bind_processor(JSON_COLUMN, DIALECT).func is direct._bind_json  # type: ignore[union-attr]


@given(moments)
def test_a_datetime_is_stored_as_sqlalchemy_stores_it_and_read_back_the_same(moment: datetime) -> None:
    bind = direct.bind_processor(UTC_COLUMN, DIALECT)
    assert bind is not None
    text = bind(moment)
    assert text == general_bind(UTC_COLUMN)(moment)
    back = direct.result_processor(UTC_COLUMN, DIALECT)
    assert back is not None
    assert back(text) == general_result(UTC_COLUMN)(text)
    assert back(text) == (moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    assert back(text).tzinfo is UTC


def test_none_and_subclasses_go_through_sqlalchemy() -> None:
    class Moment(datetime):
        def isoformat(self, *args: Any, **kwargs: Any) -> str:
            return "not what SQLAlchemy writes"

    bind = direct.bind_processor(UTC_COLUMN, DIALECT)
    assert bind is not None
    assert bind(None) is None
    assert direct.result_processor(UTC_COLUMN, DIALECT)(None) is None  # type: ignore[misc]
    moment = Moment(2026, 12, 5, 13, 0, 1, 7)
    assert bind(moment) == general_bind(UTC_COLUMN)(moment) == "2026-12-05 13:00:01.000007"
    with pytest.raises(AttributeError):  # a date has no zone: refused as naive_utc refuses it
        bind(date(2026, 12, 5))


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(), lambda c: st.lists(c, max_size=3)))
def test_json_text_already_encoded_is_bound_as_sqlalchemy_binds_it(value: object) -> None:
    bind = direct.bind_processor(JSON_COLUMN, DIALECT)
    assert bind is not None
    encoded = dumps(value)
    assert bind(encoded) == encoded == general_bind(JSON_COLUMN)(encoded)
    assert type(bind(encoded)) is str  # pysqlite binds an exact str without looking for an adapter
    assert bind(value) == general_bind(JSON_COLUMN)(value)  # not yet encoded: SQLAlchemy's processor


def test_other_types_keep_sqlalchemys_processors() -> None:
    assert direct.bind_processor(pod_records.c.last_seq.type, DIALECT) is None
    assert direct.result_processor(pod_records.c.phase.type, DIALECT) is None
    other = create_engine("sqlite://").dialect  # SQLAlchemy's own JSON serializer: not the engine's shortcut
    bind = direct.bind_processor(JSON_COLUMN, other)
    assert getattr(bind, "func", None) is not direct._bind_json


def test_text_with_an_offset_reads_as_before_its_offset_replaced_by_utc() -> None:
    """Never written by this store; read as the two-step processor read it, not refused."""
    back = direct.result_processor(UTC_COLUMN, DIALECT)
    assert back is not None
    assert back("2026-12-05 13:00:01.000007+02:00") == datetime(2026, 12, 5, 13, 0, 1, 7, tzinfo=UTC)
    assert back("2026-12-05 13:00:01") == datetime(2026, 12, 5, 13, 0, 1, tzinfo=UTC)
