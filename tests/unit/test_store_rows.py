"""The decode cache of record columns: reused while the stored JSON text is unchanged, bounded, least recently used out."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from gateway.store.rows import DecodeCache


class Decoder:
    def __init__(self) -> None:
        self.calls: list[Any] = []

    def __call__(self, raw: Any) -> tuple[Any, ...]:
        self.calls.append(raw)
        return ("decoded", repr(raw))


@pytest.mark.parametrize(
    ("lookups", "decodes"),
    [
        ([("request", "r1", '{"a":1}'), ("request", "r1", '{"a":1}')], 1),  # an equal copy reuses the value
        ([("request", "r1", '{"a":1}'), ("request", "r1", '{"a":2}')], 2),  # changed JSON is decoded again
        ([("request", "r1", '{"a":1}'), ("request", "r1", '{"a": 1}')], 2),  # so is the same data spelt otherwise
        ([("request", "r1", '{"a":1}'), ("request", "r2", '{"a":1}')], 2),  # per request
        ([("request", "r1", '{"a":1}'), ("decision", "r1", '{"a":1}')], 2),  # per column
        ([("result", "r1", '{"a":1}'), ("result", "r1", '{"a":2}'), ("result", "r1", '{"a":1}')], 3),  # latest only
    ],
)
def test_decoded_again_only_when_the_stored_value_changed(lookups: list[tuple[str, str, Any]], decodes: int) -> None:
    cache, decoder = DecodeCache(), Decoder()
    values = [cache.get(column, key, raw, decoder) for column, key, raw in lookups]
    assert len(decoder.calls) == decodes
    assert values == [("decoded", repr(raw)) for _, _, raw in lookups]


def test_an_equal_value_is_the_same_object() -> None:
    cache, decoder = DecodeCache(), Decoder()
    assert cache.get("request", "r1", '{"a":[1]}', decoder) is cache.get("request", "r1", '{"a":[1]}', decoder)


@pytest.mark.parametrize("first", [True, False])
def test_the_text_is_not_held(first: bool) -> None:
    """Only a digest of the text is kept: holding the text would keep a second copy of a followed pod's manifest."""
    cache = DecodeCache()
    if not first:
        cache.get("request", "r1", '{"a":[1]}', len)
    text = "".join(['{"a":', "[1]}"])  # a new string object, not an interned constant
    before = sys.getrefcount(text)
    assert cache.get("request", "r1", text, len) == len(text)
    assert sys.getrefcount(text) == before


def test_bounded_the_least_recently_used_goes_first() -> None:
    cache, decoder = DecodeCache(size=2), Decoder()
    cache.get("request", "old", "1", decoder)
    cache.get("request", "kept", "2", decoder)
    cache.get("request", "old", "1", decoder)  # used again: now the most recent
    cache.get("request", "new", "3", decoder)  # evicts "kept"
    assert len(cache) == 2
    cache.get("request", "old", "1", decoder)
    cache.get("request", "kept", "2", decoder)
    assert decoder.calls == ["1", "2", "3", "2"]


def test_a_value_just_written_is_not_decoded_when_read_back_unchanged() -> None:
    cache, decoder = DecodeCache(), Decoder()
    written = ("the", "value")
    cache.put("result", "r1", '{"a":1}', written)
    assert cache.get("result", "r1", '{"a":1}', decoder) is written
    assert decoder.calls == []
    assert cache.get("result", "r1", '{"a":2}', decoder) == ("decoded", repr('{"a":2}'))  # stored otherwise: decoded
