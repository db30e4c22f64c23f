"""A request's HPACK header block (RFC 7541) written without the dynamic table, so it costs no encoder state; and
an answer's fields recognised as plainly valid at C speed (`plain_answer`).

h2's `send_headers` runs every request's fields through hpack's encoder, whose dynamic table both ends must keep
in step: a block's bytes depend on every block sent before it. A field written as an index into the static
table, or as a literal without indexing (never indexed for a secret), depends on nothing and changes nothing:
its bytes are the same on every connection for ever, so each field's bytes are worked out once and kept, and
blocks written here can go out between hpack's own blocks (h2's, for the rare requests the engine leaves to
h2) without either side's table moving. The price: `:authority`, `user-agent` and `accept` are sent as
literals each time (~60 bytes a request) instead of one-byte references to the dynamic table.

h2 checks every answer's fields (RFC 9113 8.2.1, decision 0030's review: kept) through seven generators, one of
them walking each byte of each name and value in Python (~60 us for a kube-apiserver answer's 8 fields under
load): `plain_answer` says in a few regular-expression calls whether the fields are the common case that h2
would pass unchanged; any other answer is h2's to judge (and to refuse).

Pure: no I/O, no h2 state; `kubeapi/h2engine.py` frames the block, tells h2 of the stream, and asks
`plain_answer` before h2's checks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from hpack import HeaderTuple
from hpack.table import HeaderTable

_INDEXED = 0x80  # RFC 7541 6.1: the whole field is a static table entry (7-bit prefix)
_WITHOUT_INDEXING = 0x00  # 6.2.2: a literal the decoder must not add to its table (4-bit prefix)
_NEVER_INDEXED = 0x10  # 6.2.3: the same, and no intermediary may index it either: for secrets
_KEPT = 256  # fields' bytes kept (a rotating token adds one a rotation): bounded, cleared when full
# RFC 9113 8.2.1: a name of visible ASCII but upper case and colon; a value without NUL, CR or LF, not starting or
# ending with a space or a tab. The fields h2 treats apart (te, cookie, connection-specific) are left to it.
_PLAIN_NAME = re.compile(rb"[\x21-\x39\x3b-\x40\x5b-\x7e]+")
_ODD_VALUE = re.compile(rb"[\x00\n\r]|\A[ \t]|[ \t]\Z")
_LEFT_TO_H2 = frozenset({b"te", b"cookie", b"connection", b"upgrade", b"transfer-encoding", b"proxy-connection", b"keep-alive"})
_STATIC_FIELDS: dict[tuple[bytes, bytes], int] = {}
_STATIC_NAMES: dict[bytes, int] = {}
for _index, (_name, _value) in enumerate(HeaderTable.STATIC_TABLE, start=1):  # RFC 7541 appendix A
    _STATIC_FIELDS.setdefault((_name, _value), _index)
    _STATIC_NAMES.setdefault(_name, _index)


def integer(value: int, prefix: int, first: int) -> bytes:
    """RFC 7541 5.1: `value` in a `prefix`-bit prefix, the first byte's other bits taken from `first`; what does
    not fit the prefix follows in 7-bit groups, least significant first."""
    limit = (1 << prefix) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 0x80:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def string(data: bytes) -> bytes:
    """RFC 7541 5.2, without Huffman coding (hpack's coder is pure Python, ~0.2 us a byte: decision 0030)."""
    return integer(len(data), 7, 0) + data


def field(name: bytes, value: bytes, sensitive: bool) -> bytes:
    """One field's representation: the static entry when it is one (a public value, secret or not: as hpack
    writes it), else a literal without indexing, or never indexed when `sensitive`, its name by static index when
    the table has the name."""
    if index := _STATIC_FIELDS.get((name, value), 0):
        return integer(index, 7, _INDEXED)
    kind = _NEVER_INDEXED if sensitive else _WITHOUT_INDEXING
    if index := _STATIC_NAMES.get(name, 0):
        return integer(index, 4, kind) + string(value)
    return bytes((kind,)) + string(name) + string(value)


class BlockWriter:
    """Header blocks for one connection's requests, each field's bytes kept (but the path's: a request's own).
    A field is sensitive as hpack reads it: a `HeaderTuple` that is not indexable (`NeverIndexedHeaderTuple`)."""

    def __init__(self) -> None:
        self._kept: dict[tuple[bytes, bytes, bool], bytes] = {}

    def block(self, fields: Iterable[tuple[bytes, bytes]]) -> bytes:
        kept, parts = self._kept, []
        for item in fields:
            key = (item[0], item[1], isinstance(item, HeaderTuple) and not item.indexable)
            encoded = kept.get(key)
            if encoded is None:
                encoded = field(*key)
                if key[0] != b":path":
                    if len(kept) >= _KEPT:
                        kept.clear()
                    kept[key] = encoded
            parts.append(encoded)
        return b"".join(parts)


def plain_answer(fields: Sequence[tuple[bytes, bytes]]) -> bool:
    """Whether an answer's fields are the common case h2's inbound checks pass unchanged: `:status` first and the
    only pseudo-header, every other name plain and none of those h2 treats apart, every value plain. False says
    only "h2 decides": it is no verdict of invalidity."""
    if not fields or fields[0][0] != b":status" or _ODD_VALUE.search(fields[0][1]):
        return False
    for name, value, *_ in fields[1:]:
        if not _PLAIN_NAME.fullmatch(name) or name in _LEFT_TO_H2 or _ODD_VALUE.search(value):
            return False
    return True
