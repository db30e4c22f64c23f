"""The HTTP/2 client's HPACK encoder (the blocks h2 writes itself) writes byte for byte what hpack itself writes
without Huffman, whatever the sequence of requests and table resizes."""

from __future__ import annotations

import hpack
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.clusters.kubeapi.http2 import _PlainEncoder

NAMES = [b":method", b":path", b"user-agent", b"accept", b"content-type", b"x-custom", b"impersonate-user"]
VALUES = [b"GET", b"POST", b"/api/v1/pods", b"/api/v1/namespaces/a/pods/b/log?follow=true", b"podgate/0.1",
          b"application/json", b"x" * 40, b"y" * 300, b""]  # fmt: skip

field = st.one_of(
    st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES)),
    st.builds(hpack.NeverIndexedHeaderTuple, st.sampled_from([b"authorization", b":path"]), st.sampled_from(VALUES)),
)
# A request's fields, after the server's SETTINGS_HEADER_TABLE_SIZE changed (an int) or not (None).
step = st.tuples(st.sampled_from([None, None, None, 64, 256, 4096]), st.lists(field, min_size=1, max_size=8))


@settings(max_examples=300, deadline=None)
@given(st.lists(step, min_size=1, max_size=40))
def test_the_blocks_are_what_hpack_writes_without_huffman(steps: list[tuple[int | None, list[tuple[bytes, bytes]]]]) -> None:
    ours, theirs, decoder = _PlainEncoder(), hpack.Encoder(), hpack.Decoder()
    for size, fields in steps:
        if size is not None:
            ours.header_table_size = theirs.header_table_size = size
        block = ours.encode(fields)
        assert block == theirs.encode(fields, huffman=False)
        assert decoder.decode(block, raw=True) == [(name, value) for name, value in fields]
