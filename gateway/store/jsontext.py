"""The JSON text of the store's columns and journal payloads: encoded once, by orjson, in the event loop.

SQLAlchemy's JSON type encodes each value with `json.dumps` when it binds it (in the writer's thread, for
every write) and decodes every JSON column of every row read back. bench/store.py and the gateway's
py-spy profiles put that at a few percent of the gateway's CPU (bench/README.md, issue 16). Here:
- `dumps` gives what `json.dumps(to_data(value))` gave, as data (whitespace, escaping of non-ASCII and the
  spelling of floats aside), 5-12x faster: orjson, with `codec.fields_of` for what it does not know (a
  dataclass as its fields, which orjson walks on, so a manifest is walked in C; datetimes made UTC, Decimal,
  sets as `to_data` gives them) and the standard library for what orjson refuses (an integer past 64
  bits, a non-string key). A non-finite float, which strict JSON and PostgreSQL's json refuse and which
  nothing in the gateway produces, is written as null where `json.dumps` wrote NaN.
- `Encoded` marks text already encoded: the engines' serializer (`serialize`) binds it as is, so a record's
  JSON is encoded once and its text kept to recognise the row read back (rows.DecodeCache).
- Decoding stays with the standard library: orjson turns an integer past 64 bits into a float.
Stored rows stay plain JSON text; rows written before this read as they did.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from gateway.store.codec import fields_of, to_data

_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME  # both through codec.fields_of


class Encoded(str):
    """JSON text already encoded for a JSON column: written as is (see `serialize`)."""

    __slots__ = ()


def dumps(value: object) -> Encoded:
    """`value` (domain values, or JSON data) as JSON text: what `json.dumps(to_data(value))` gives, as data."""
    try:
        return Encoded(orjson.dumps(value, default=fields_of, option=_OPTIONS).decode())
    except TypeError:  # an integer past 64 bits or a non-string key (orjson's refusals); to_data's own errors
        return Encoded(json.dumps(to_data(value)))


def serialize(value: object) -> str:
    """The engines' `json_serializer`: text already `Encoded` as is, anything else through `dumps`."""
    return value if type(value) is Encoded else dumps(value)


def loads(text: str) -> Any:
    return json.loads(text)
