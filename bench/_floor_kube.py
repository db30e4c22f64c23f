"""The Kubernetes side of bench/floor.py: a dispatched pod's HTTP/2 I/O against `podgate sim`, by two clients.

Each pod, as the gateway's runner makes it (bench/README.md, "4.00 API requests a pod"): a create with the
body the gateway builds (gateway/pods/builder.py), a followed log opened once the watch shows the pod running,
a second log GET from the last line's time once the watch shows it ended (the completeness check), a delete
with the runner's grace; and every line the pods, events and nodes watches carry while the pods run. Pods are
started at a steady rate, as SubmitPod accepts them in the throughput bench, not in lock step.

- `ours`: the gateway's own `ClusterClient` (gateway/clusters/kubeapi) and its watch loop, the watches decoded
  into the shapes the runtime reads (gateway/clusters/shapes.py), as `ClusterRuntime._watch` runs them.
- `h2`: the plainest correct use of the h2 library on uvloop: one `asyncio.Protocol` per TLS connection feeding
  `H2Connection.receive_data`, h2's default configuration (headers validated both ways), every DATA frame
  acknowledged, a new connection when h2 refuses a stream beyond the server's MAX_CONCURRENT_STREAMS. Watch lines are split,
  not decoded: the driver finds a pod's name and phase in the line's bytes (decoding is bench/floor.py's
  `decode` part, over the lines recorded here).

Each runs in a process of its own (`bench/floor.py` starts it); its CPU over the measured pods is read from
/proc/self/stat. The driver (futures a pod waits on, the pacing) is the same few lines for both.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import ssl
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import orjson
import yaml

from bench import _pyspy
from bench._pods import NAMESPACE, cluster_client, new_id, pod_request
from bench._stack import cpu_seconds
from gateway.api.convert_pods import pod_request_from_proto
from gateway.clusters import shapes
from gateway.clusters.kubeapi import EVENTS, NODES, PODS
from gateway.clusters.kubeapi.decode import EventType, WatchEvent
from gateway.clusters.kubeapi.watching import WatchTarget, watch_forever_batches
from gateway.pods.builder import build_pod
from gateway.pods.finishing import DELETE_GRACE_SECONDS
from gateway.pods.logs import parse_timestamp

CLUSTER = "local-eu-cpu"
POD_SECONDS = 1.0
WARM_UP = 20
TICK = 0.01  # pods are started every TICK seconds, rate x TICK at a time


@dataclass
class Pod:
    """What a pod's driver waits on, set from the pods watch."""

    running: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    gone: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Seen:
    """Watch lines (or events) received while the measured pods ran, by watch."""

    pods: int = 0
    events: int = 0
    nodes: int = 0


def bodies(count: int) -> list[dict[str, Any]]:
    """`count` pod bodies as the gateway builds them for the throughput bench's requests."""
    out = []
    for _ in range(count):
        request = pod_request_from_proto(pod_request(new_id("fl"), duration=POD_SECONDS))
        out.append(build_pod(request, cluster=CLUSTER, gateway_id="floor", name_suffix=new_id("")[1:9]))
    return out


class Driver:
    """Runs pods through a client's four calls: `create`, `logs` (a whole followed log; returns its last line's
    time), `delete`; the watches set each pod's events by name."""

    def __init__(self) -> None:
        self.pods: dict[str, Pod] = {}
        self.seen = Seen()

    def on_pod(self, name: str, phase: str, deleted: bool) -> None:
        pod = self.pods.get(name)
        if pod is None:
            return
        if deleted:
            pod.gone.set()
        elif phase in ("Running", "Succeeded", "Failed"):
            pod.running.set()
            if phase != "Running":
                pod.ended.set()

    async def one(self, client: Any, body: dict[str, Any]) -> None:
        name = body["metadata"]["name"]
        pod = self.pods[name] = Pod()
        await client.create(body)
        await pod.running.wait()
        since = await client.logs(name, None)
        await pod.ended.wait()
        await client.logs(name, since)
        await client.delete(name)
        await pod.gone.wait()
        del self.pods[name]

    async def run(self, client: Any, pods: list[dict[str, Any]], rate: float) -> float:
        """All `pods`, started `rate` a second; the wall time until the last is gone."""
        started, tasks = time.monotonic(), []
        per_tick = max(1, round(rate * TICK))
        for i in range(0, len(pods), per_tick):
            tasks += [asyncio.create_task(self.one(client, body)) for body in pods[i : i + per_tick]]
            await asyncio.sleep(max(0.0, started + (i // per_tick + 1) * TICK - time.monotonic()))
        await asyncio.gather(*tasks)
        return time.monotonic() - started


# --- ours: the gateway's ClusterClient -------------------------------------------------------------------


class Ours:
    """The calls as gateway/pods/cluster.py and gateway/pods/logs.py make them; the watches as the runtime runs
    them (`watch_forever_batches`, each object decoded into its shape)."""

    def __init__(self, kubeconfig_dir: Path, driver: Driver) -> None:
        self.client = cluster_client(CLUSTER, kubeconfig_dir)
        self.driver = driver
        self.synced: list[asyncio.Event] = []

    async def create(self, body: dict[str, Any]) -> None:
        await self.client.create_pod(NAMESPACE, body, answer=False)

    async def delete(self, name: str) -> None:
        await self.client.delete_pod(NAMESPACE, name, grace_seconds=DELETE_GRACE_SECONDS, answer=False)

    async def logs(self, name: str, since: Any) -> Any:
        last = since
        lines = self.client.stream_logs(NAMESPACE, name, "main", follow=True, timestamps=True, since_time=since)
        async with contextlib.aclosing(lines):
            async for line in lines:
                last = line
        return last if last is since else _rfc3339_time(last)

    def watches(self) -> list[asyncio.Task[None]]:
        out = []
        for resource, narrow, on in ((PODS, shapes.PODS, self._pod), (EVENTS, shapes.EVENTS, self._event),
                                     (NODES, shapes.NODES, self._node)):  # fmt: skip
            synced = asyncio.Event()
            self.synced.append(synced)
            out.append(asyncio.create_task(self._watch(resource, narrow, on, synced)))
        return out

    async def _watch(self, resource: Any, narrow: Any, on: Callable[[WatchEvent], None], synced: asyncio.Event) -> None:
        async for events in watch_forever_batches(self.client, WatchTarget(resource=resource, narrow=narrow)):
            synced.set()
            for event in events:
                on(event)

    def _pod(self, event: WatchEvent) -> None:
        if event.type is EventType.RELISTED:
            return
        self.driver.seen.pods += 1
        obj = event.object
        phase = (obj.get("status") or {}).get("phase") or ""
        self.driver.on_pod(obj["metadata"]["name"], phase, event.type is EventType.DELETED)

    def _event(self, event: WatchEvent) -> None:
        self.driver.seen.events += event.type is not EventType.RELISTED

    def _node(self, event: WatchEvent) -> None:
        self.driver.seen.nodes += event.type is not EventType.RELISTED


def _rfc3339_time(line: str) -> Any:
    """The time of a timestamped log line, the log's position as the gateway's follower keeps it."""
    return parse_timestamp(line.split(" ", 1)[0])


# --- h2: the library alone -------------------------------------------------------------------------------

NAME = re.compile(rb'"name":"(bench-[a-z0-9]+)"')
PHASE = re.compile(rb'"phase":"([A-Za-z]+)"')


class Body:
    """A whole answer (create, delete): its status and bytes once the stream ends."""

    def __init__(self) -> None:
        self.done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.status = 0
        self.data = bytearray()

    def headers(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.status = int(dict(headers)[b":status"])

    def chunk(self, data: bytes) -> None:
        self.data += data

    def end(self, error: Exception | None = None) -> None:
        if not self.done.done():
            self.done.set_exception(error) if error else self.done.set_result(self.status)


class Lines(Body):
    """A streamed answer (a log, a watch): each complete line handed to `on_line` as it comes."""

    def __init__(self, on_line: Callable[[bytes], None]) -> None:
        super().__init__()
        self.on_line = on_line

    def chunk(self, data: bytes) -> None:
        self.data += data
        if (end := self.data.rfind(b"\n")) >= 0:
            for line in bytes(self.data[:end]).split(b"\n"):
                self.on_line(line)
            del self.data[: end + 1]


class H2Protocol(asyncio.Protocol):
    """One TLS connection driven by h2: events in, h2's bytes out after each read and each request."""

    def __init__(self, authority: bytes, token_headers: list[tuple[bytes, bytes]]) -> None:
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.authority, self.extra = authority, token_headers
        self.streams: dict[int, Body] = {}
        self.held: list[tuple[int, bytes]] = []  # request bodies waiting for the server's flow control windows
        self.settled: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's SSL transport is no asyncio.Transport
        self.conn.initiate_connection()
        self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
        self.conn.increment_flow_control_window(1 << 28)
        transport.write(self.conn.data_to_send())

    def data_received(self, data: bytes) -> None:
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.DataReceived):
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                self.streams[event.stream_id].chunk(event.data)
            elif isinstance(event, h2.events.ResponseReceived):
                self.streams[event.stream_id].headers(event.headers)
            elif isinstance(event, h2.events.StreamEnded):
                self.streams.pop(event.stream_id).end()
            elif isinstance(event, h2.events.StreamReset):
                stream = self.streams.pop(event.stream_id, None)
                if stream is not None:
                    stream.end(ConnectionResetError(f"stream reset: {event.error_code}"))
            elif isinstance(event, h2.events.WindowUpdated) and self.held:
                self._send_held()
            elif isinstance(event, h2.events.RemoteSettingsChanged) and not self.settled.done():
                self.settled.set_result(None)
        if out := self.conn.data_to_send():
            assert self.transport is not None
            self.transport.write(out)

    def connection_lost(self, exc: Exception | None) -> None:
        for stream in self.streams.values():
            stream.end(exc or ConnectionResetError("connection closed"))

    def _send_held(self) -> None:
        """The held bodies, in order, as far as the connection's and each stream's send windows allow."""
        while self.held:
            stream_id, body = self.held[0]
            if self.conn.local_flow_control_window(stream_id) < len(body):
                return
            self.conn.send_data(stream_id, body, end_stream=True)
            del self.held[0]

    def request(self, method: bytes, path: str, body: bytes | None, sink: Body) -> None:
        stream_id = self.conn.get_next_available_stream_id()
        headers = [(b":method", method), (b":scheme", b"https"), (b":authority", self.authority),
                   (b":path", path.encode()), (b"accept", b"application/json"), *self.extra]  # fmt: skip
        if body is not None:
            headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        self.conn.send_headers(stream_id, headers, end_stream=body is None)
        if body is not None:
            self.held.append((stream_id, body))
            self._send_held()
        self.streams[stream_id] = sink
        assert self.transport is not None
        self.transport.write(self.conn.data_to_send())


class H2Client:
    """Requests over as few TLS connections as the server's MAX_CONCURRENT_STREAMS allows."""

    def __init__(self, kubeconfig: Path, driver: Driver, record: Path | None) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        server = urlsplit(config["clusters"][0]["cluster"]["server"])
        self.host, self.port = server.hostname or "", server.port or 443
        self.context = _context(config)
        token = config["users"][0]["user"].get("token")
        self.auth = [(b"authorization", f"Bearer {token}".encode())] if token else []
        self.driver = driver
        self.connections: list[H2Protocol] = []
        self.opening = asyncio.Lock()
        self.record = {kind: (record / f"{kind}.lines").open("wb") for kind in ("pods", "events")} if record else {}
        self.recording = False

    async def _open(self, after: H2Protocol | None) -> H2Protocol:
        """Another connection with a stream free than `after` (whose streams ran out), else a new one."""
        async with self.opening:
            for connection in reversed(self.connections):
                if (
                    connection is not after
                    and connection.conn.open_outbound_streams < connection.conn.remote_settings.max_concurrent_streams
                ):
                    return connection
            _, protocol = await asyncio.get_running_loop().create_connection(
                lambda: H2Protocol(f"{self.host}:{self.port}".encode(), self.auth),
                self.host,
                self.port,
                ssl=self.context,
            )
            await protocol.settled
            self.connections.append(protocol)
            return protocol

    async def _send(self, method: bytes, path: str, body: bytes | None, sink: Body) -> int:
        """On the newest connection; h2 refuses a stream beyond the server's MAX_CONCURRENT_STREAMS (it counts them
        itself), and the request goes on another one."""
        connection = self.connections[-1] if self.connections else await self._open(None)
        while True:
            try:
                connection.request(method, path, body, sink)
                break
            except h2.exceptions.TooManyStreamsError:
                connection = await self._open(connection)
        status = await sink.done
        if status >= 300:
            raise RuntimeError(f"{method.decode()} {path}: HTTP {status}: {bytes(sink.data)[:200]!r}")
        return status

    async def create(self, body: dict[str, Any]) -> None:
        await self._send(b"POST", f"/api/v1/namespaces/{NAMESPACE}/pods", orjson.dumps(body), Body())

    async def delete(self, name: str) -> None:
        options = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": DELETE_GRACE_SECONDS}
        await self._send(b"DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/{name}", orjson.dumps(options), Body())

    async def logs(self, name: str, since: bytes | None) -> bytes | None:
        last: list[bytes] = []
        path = f"/api/v1/namespaces/{NAMESPACE}/pods/{name}/log?container=main&follow=true&timestamps=true"
        if since is not None:
            path += f"&sinceTime={quote(since.decode())}"
        await self._send(b"GET", path, None, Lines(last.append))
        return last[-1].split(b" ", 1)[0] if last else since

    def watches(self) -> list[asyncio.Task[int]]:
        out = []
        for resource, on in (("pods", self._pod), ("events", self._event), ("nodes", self._node)):
            path = f"/api/v1/{resource}?watch=true&allowWatchBookmarks=true&timeoutSeconds=290"
            out.append(asyncio.create_task(self._send(b"GET", path, None, Lines(on))))
        return out

    def _pod(self, line: bytes) -> None:
        self.driver.seen.pods += 1
        if self.recording and self.record:
            self.record["pods"].write(line + b"\n")
        name, phase = NAME.search(line), PHASE.search(line)
        if name is not None:
            deleted = line.startswith(b'{"type":"DELETED"')
            self.driver.on_pod(name.group(1).decode(), phase.group(1).decode() if phase else "", deleted)

    def _event(self, line: bytes) -> None:
        self.driver.seen.events += 1
        if self.recording and self.record:
            self.record["events"].write(line + b"\n")

    def _node(self, line: bytes) -> None:
        self.driver.seen.nodes += 1

    def close(self) -> None:
        for connection in self.connections:
            if connection.transport is not None:
                connection.transport.close()
        for file in self.record.values():
            file.close()


def _context(config: dict[str, Any]) -> ssl.SSLContext:
    """The kubeconfig's CA and client certificate if it has one (else its token goes in a header), ALPN h2 only."""
    cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    context = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    context.set_alpn_protocols(["h2"])
    if "client-certificate-data" not in user:
        return context
    with tempfile.TemporaryDirectory() as directory:
        cert, key = Path(directory) / "cert.pem", Path(directory) / "key.pem"
        cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
        key.write_bytes(base64.b64decode(user["client-key-data"]))
        context.load_cert_chain(cert, key)
    return context


# --- the measured run ------------------------------------------------------------------------------------


async def measure(
    kind: str, kubeconfig_dir: Path, pods: int, rate: float, record: Path | None, spy: Path | None
) -> dict[str, Any]:
    """Warm-up pods (connections opened, watches listed), then `pods` pods at `rate` a second: this process's
    CPU per pod over them, and the watch lines (events) it received per pod; `spy`: py-spy over those pods."""
    driver = Driver()
    client: Any = Ours(kubeconfig_dir, driver) if kind == "ours" else H2Client(
        kubeconfig_dir / f"{CLUSTER}.kubeconfig", driver, record
    )  # fmt: skip
    watches = client.watches()
    with contextlib.suppress(Exception):
        for synced in getattr(client, "synced", []):
            await synced.wait()
    warm, measured = bodies(WARM_UP), bodies(pods)
    await driver.run(client, warm, rate)
    await asyncio.sleep(0.5)  # the warm-up pods' last events
    driver.seen = Seen()
    if isinstance(client, H2Client):
        client.recording = True
    with _pyspy.recording(os.getpid(), spy) if spy else contextlib.nullcontext():
        before = cpu_seconds(os.getpid())
        wall = await driver.run(client, measured, rate)
        spent = cpu_seconds(os.getpid()) - before
    seen = driver.seen
    for task in watches:
        task.cancel()
    await asyncio.gather(*watches, return_exceptions=True)
    if isinstance(client, H2Client):
        client.close()
        connections = len(client.connections)
    else:
        connections = client.client.http2_handshakes
        await client.client.close()
    return {
        "ms_a_pod": 1000 * spent / pods,
        "wall": wall,
        "lines_a_pod": {"pods": seen.pods / pods, "events": seen.events / pods, "nodes": seen.nodes / pods},
        "connections": connections,
    }


def run(
    kind: str, kubeconfig_dir: Path, pods: int, rate: float, record: Path | None, spy: Path | None = None
) -> dict[str, Any]:
    import uvloop

    result: dict[str, Any] = uvloop.run(measure(kind, kubeconfig_dir, pods, rate, record, spy))
    return result
