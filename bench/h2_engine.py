"""What the HTTP/2 client's h2 engine (gateway/clusters/kubeapi/h2engine.py) saves against h2's own connection.

Two measurements, both in-process and without I/O (so they hold under load better than wall-clock rates; run
each a few times and compare the two engines within one run):

- receive: a dispatched pod's answers as a server's h2 sends them (a create's and a delete's HEADERS and pod,
  a followed log's and its completeness check's HEADERS, lines and END_STREAM, five watch events on a watch
  stream), fed to the client's engine read by read, each DATA acknowledged as the client does (h2's
  `receive_data` and `acknowledge_received_data`; the engine's `receive` and `acknowledge`);
- open: a request's HEADERS (a 1 KiB token) with `--open` streams open on the connection, the oldest ending (and
  forgotten, as Http2Connection does) as each new one opens: h2's `send_headers`, the engine's `send_request`;
- data: one DATA frame of a log line or watch event (`--frame-bytes`) on an answered stream, received and
  acknowledged, the rest of the pod's work left out. Run by an older tree's venv from that tree
  (`cd /work/wt/base && .venv/bin/python /path/to/this/bench/h2_engine.py`), it measures that tree's engine: one
  without `Engine.receive` is fed as h2 is, as that tree's connection fed it.

    .venv/bin/python bench/h2_engine.py [--pods 500] [--open 80] [--rounds 9] [--frame-bytes 300]
"""

from __future__ import annotations

import argparse
import statistics
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack
import hyperframe.frame
import orjson

from gateway.clusters.kubeapi.h2engine import Engine
from gateway.clusters.kubeapi.http2 import _PlainEncoder

POD = orjson.dumps({
    "kind": "Pod", "apiVersion": "v1",
    "metadata": {"name": "p" * 30, "namespace": "default", "uid": "u" * 36, "resourceVersion": "12345",
                 "labels": {"podgate.io/pod": "b" * 20}, "annotations": {"x": "y" * 200}},
    "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", "echo " * 40]}]},
    "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}] * 4},
})  # fmt: skip
REQUEST = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"127.0.0.1:6443"),
           hpack.NeverIndexedHeaderTuple(b":path", b"/api/v1/namespaces/default/pods/p/log?follow=true"),
           hpack.NeverIndexedHeaderTuple(b"authorization", b"Bearer " + b"t" * 1000),
           (b"user-agent", b"podgate/0.1")]  # fmt: skip  # as Http2Pool.request builds them
Kind = type[h2.connection.H2Connection]


def client(kind: Kind) -> h2.connection.H2Connection:
    """Configured as kubeapi/http2.py configures its connections."""
    conn = kind(h2.config.H2Configuration(
        client_side=True, header_encoding=None, validate_outbound_headers=False, normalize_outbound_headers=False,
    ))  # fmt: skip
    conn.encoder = _PlainEncoder()
    conn.initiate_connection()
    conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 16, h2.settings.SettingCodes.ENABLE_PUSH: 0})
    conn.increment_flow_control_window(200 * (1 << 16) - 65535)
    return conn


def feed(conn: h2.connection.H2Connection, data: bytes) -> int:
    """The reads' events (h2's count: a chunk is a DataReceived, and a StreamEnded with END_STREAM), each DATA
    acknowledged: h2's `receive_data` and `acknowledge_received_data`; the engine's `receive` and `acknowledge`,
    as Http2Connection calls them."""
    if isinstance(conn, Engine) and hasattr(conn, "receive"):
        count = 0
        for item in conn.receive(data):
            if isinstance(item, tuple):
                stream_id, _, length, ended = item
                if length:
                    conn.acknowledge(stream_id, length)
                count += 2 if ended else 1
            else:
                count += 1
        return count
    events = conn.receive_data(data)
    for event in events:
        if isinstance(event, h2.events.DataReceived) and event.flow_controlled_length:
            conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id or 0)
    return len(events)


def recorded(pods: int) -> tuple[list[bytes], list[list[bytes]]]:
    """What a server sends: the connection's start, then each pod's reads (one a server write)."""
    conn, server = client(h2.connection.H2Connection), h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, header_encoding=None)
    )
    server.initiate_connection()
    server.receive_data(conn.data_to_send())
    start = [server.data_to_send()]
    feed(conn, start[0])
    server.receive_data(conn.data_to_send())
    watch = conn.get_next_available_stream_id()
    conn.send_headers(watch, REQUEST, end_stream=True)
    server.receive_data(conn.data_to_send())
    server.send_headers(watch, [(b":status", b"200"), (b"content-type", b"application/json")])
    start.append(server.data_to_send())
    feed(conn, start[-1])
    per_pod = []
    for _ in range(pods):
        reads = []
        for kind in ("create", "log", "check", "delete"):
            stream = conn.get_next_available_stream_id()
            conn.send_headers(stream, REQUEST, end_stream=True)
            server.receive_data(conn.data_to_send())
            if kind in ("create", "delete"):
                server.send_headers(stream, [(b":status", b"201" if kind == "create" else b"200"),
                                             (b"content-type", b"application/json"),
                                             (b"content-length", str(len(POD)).encode())])  # fmt: skip
                server.send_data(stream, POD, end_stream=True)
                reads.append(server.data_to_send())
                continue
            server.send_headers(stream, [(b":status", b"200"), (b"content-type", b"text/plain")])
            reads.append(server.data_to_send())
            server.send_data(stream, b"2026-12-05T13:00:00.000000000Z a line of the log\n" * 3)
            reads.append(server.data_to_send())
            server.end_stream(stream)
            reads.append(server.data_to_send())
            if kind == "log":
                for _ in range(5):
                    server.send_data(watch, b'{"type":"MODIFIED","object":' + POD + b"}\n")
                    reads.append(server.data_to_send())
        for data in reads:
            feed(conn, data)
        server.receive_data(conn.data_to_send())
        per_pod.append(reads)
    return start, per_pod


def receive(kind: Kind, start: list[bytes], per_pod: list[list[bytes]]) -> tuple[float, float, float]:
    """Microseconds a pod to receive its reads; frames and events a pod."""
    conn = client(kind)
    feed(conn, start[0])
    conn.send_headers(conn.get_next_available_stream_id(), REQUEST, end_stream=True)
    feed(conn, start[1])
    spent, events, frames = 0.0, 0, 0
    for reads in per_pod:
        for _ in range(4):  # the engine's streams opened as the connection opens them (their answers' fields checked)
            if isinstance(conn, Engine):
                conn.send_request(conn.get_next_available_stream_id(), REQUEST, True)
            else:
                conn.send_headers(conn.get_next_available_stream_id(), REQUEST, end_stream=True)
        conn.data_to_send()
        began = time.perf_counter()
        for data in reads:
            events += feed(conn, data)
        spent += time.perf_counter() - began
        frames += sum(_frames(data) for data in reads)
        conn.data_to_send()
    return spent / len(per_pod) * 1e6, frames / len(per_pod), events / len(per_pod)


def _frames(data: bytes) -> int:
    count, at = 0, 0
    while at + 9 <= len(data):
        at += 9 + int.from_bytes(data[at : at + 3], "big")
        count += 1
    return count


def open_streams(kind: Kind, requests: int, open_at_once: int) -> float:
    """Microseconds a request's HEADERS with `open_at_once` streams open."""
    conn = client(kind)
    conn.remote_settings.update({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100})
    opened: list[int] = []
    spent = 0.0
    for _ in range(requests):
        stream_id = conn.get_next_available_stream_id()
        began = time.perf_counter()
        if isinstance(conn, Engine):
            conn.send_request(stream_id, REQUEST, True)  # as Http2Connection.open_stream asks it
        else:
            conn.send_headers(stream_id, REQUEST, end_stream=True)
        spent += time.perf_counter() - began
        opened.append(stream_id)
        if len(opened) > open_at_once:  # the oldest's answer ended: closed, and forgotten as Http2Connection does
            oldest = opened.pop(0)
            conn.streams[oldest].state_machine.state = h2.stream.StreamState.CLOSED
            if isinstance(conn, Engine):
                conn.forget(oldest)
        conn.data_to_send()
    return spent / requests * 1e6


def data_frames(kind: Kind, frames: int, size: int) -> float:
    """Microseconds a DATA frame of `size` bytes on an answered stream, received and acknowledged (its windows
    refilled by the acknowledgements, so the raw frames can follow one another without a server)."""
    conn = client(kind)
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
    server.initiate_connection()
    server.receive_data(conn.data_to_send())
    feed(conn, server.data_to_send())
    server.receive_data(conn.data_to_send())
    conn.send_headers(1, REQUEST, end_stream=True)  # a connection's first request is h2's in the engine too
    server.receive_data(conn.data_to_send())
    server.send_headers(1, [(b":status", b"200"), (b"content-type", b"text/plain")])
    feed(conn, server.data_to_send())
    frame = hyperframe.frame.DataFrame(1, b"x" * size).serialize()
    began = time.perf_counter()
    for _ in range(frames):
        feed(conn, frame)
    spent = time.perf_counter() - began
    conn.data_to_send()
    return spent / frames * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=500)
    parser.add_argument("--open", type=int, default=80, help="streams open while a new one opens")
    parser.add_argument("--rounds", type=int, default=9, help="alternating rounds; the best and the median printed")
    parser.add_argument("--frame-bytes", type=int, default=300, help="the DATA frame of the data measurement")
    args = parser.parse_args()
    start, per_pod = recorded(args.pods)
    kinds: list[tuple[str, Kind]] = [("h2's H2Connection", h2.connection.H2Connection), ("h2engine.Engine", Engine)]
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name, _ in kinds}
    frames = events = 0.0
    for _ in range(args.rounds):  # alternating, so that a burst of load on the machine hits both
        for name, kind in kinds:
            us, frames, events = receive(kind, start, per_pod)
            results[name].append((us, open_streams(kind, args.pods * 2, args.open), data_frames(kind, args.pods * 10, args.frame_bytes)))
    print(f"a pod's answers: {frames:.0f} frames, {events:.0f} events; {args.rounds} alternating rounds, best / median")
    for name, rows in results.items():
        receiving, opening, one_frame = (sorted(row[i] for row in rows) for i in range(3))
        print(f"{name:18} receive {receiving[0]:6.1f} / {statistics.median(receiving):6.1f} us a pod;"
              f" HEADERS with {args.open} open {opening[0]:5.1f} / {statistics.median(opening):5.1f} us;"
              f" a {args.frame_bytes}-byte DATA frame {one_frame[0]:4.1f} / {statistics.median(one_frame):4.1f} us")  # fmt: skip


if __name__ == "__main__":
    main()
