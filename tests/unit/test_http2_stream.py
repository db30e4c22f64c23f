"""An HTTP/2 answer's status as the stream reads it: a server's malformed :status is a 502, never a crash of
the connection's data_received (which would leave every log on that connection unread)."""

from __future__ import annotations

import pytest

from gateway.clusters.kubeapi.http2 import Http2Connection
from gateway.clusters.kubeapi.http2_stream import Http2Stream


@pytest.mark.parametrize(
    ("status", "read"),
    [
        (b"200", 200),
        (b"401", 401),
        (b"503", 503),
        (b"", 502),
        (b"abc", 502),
        (b"20", 502),
        (b"2000", 502),
        (b"099", 502),
        (b"\xd9\xa2\xd9\xa0\xd9\xa0", 502),  # Arabic-Indic digits: isdigit() on bytes is ASCII only
        (b"-20", 502),
    ],
)
def test_the_answers_status_is_three_ascii_digits_or_a_bad_gateway(status: bytes, read: int) -> None:
    stream = Http2Stream(Http2Connection.__new__(Http2Connection), 1)
    stream.answered([(b":status", status), (b"content-type", b"text/plain")])
    assert stream.status == read
    assert stream.headers == [(b"content-type", b"text/plain")]


def test_an_informational_answer_is_not_the_answer() -> None:
    stream = Http2Stream(Http2Connection.__new__(Http2Connection), 1)
    stream.answered([(b":status", b"100")])
    assert stream.status == 0
    stream.answered([(b":status", b"200")])
    assert stream.status == 200
