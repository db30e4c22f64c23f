"""What following N logs costs the gateway's process over HTTP/2 against one HTTP/1.1 connection per log.

A prototype for docs/decisions/0030-http2-log-streams.md, not gateway code. A local server (self-signed
certificate) answers each GET with one log line and then stays silent, as a container's log does; on
`/tick` it sends one more line on every open stream. A client process on uvloop (the gateway's loop)
opens N streams after a warm-up, each read by a task of its own (as the gateway's log followers are),
and reports its RSS growth per stream, its open connections, and its CPU time per line for 5 ticks.
Each variant runs in a process of its own:

- aiohttp, HTTP/1.1, one TLS connection per stream: what the gateway does now;
- httpx[http2]: HTTP/2 through a maintained client. httpcore caps a connection at 100 concurrent streams
  and queues the 101st on that connection instead of opening another, so streams are spread over
  clients of one connection each, 50 streams per connection (HTTPX_STREAMS_PER_CONNECTION);
- h2 (the protocol library httpx uses) driven directly: all N streams on one TLS connection, the floor
  of what HTTP/2 costs per stream in Python.

    .venv/bin/python bench/h2_streams.py [--streams 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.tls_streams import certificate, rss, stop_all

LINE = b"2026-12-04T00:00:00Z hello\n"
WARM_UP = 50
TICKS = 5
# httpcore caps a connection at 100 streams (its local SETTINGS_MAX_CONCURRENT_STREAMS) and queues the rest on
# it; here the 91st-100th streams of a connection stalled for seconds (not investigated), so 50 per connection.
HTTPX_STREAMS_PER_CONNECTION = 50
VARIANTS = (  # (what, server, client)
    ("aiohttp, HTTP/1.1: one TLS connection per stream (now)", "http1", "aiohttp"),
    ("httpx[http2]: 50 streams per TLS connection", "h2", "httpx"),
    ("h2 driven directly: every stream on one TLS connection", "h2", "h2"),
)


# --- servers ---------------------------------------------------------------------------------------------


def server_context(directory: Path, alpn: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    context.set_alpn_protocols([alpn])
    return context


def serve_http1(port: int, directory: Path) -> None:
    from aiohttp import web

    open_streams: set[web.StreamResponse] = set()

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(LINE)
        open_streams.add(response)
        try:
            await asyncio.sleep(3600)
        finally:
            open_streams.discard(response)
        return response

    async def tick(request: web.Request) -> web.Response:
        for response in list(open_streams):
            await response.write(LINE)
        return web.Response(text=str(len(open_streams)))

    app = web.Application()
    app.router.add_get("/", stream)
    app.router.add_get("/tick", tick)
    context = server_context(directory, "http/1.1")
    web.run_app(app, host="127.0.0.1", port=port, ssl_context=context, print=None, backlog=4096)


class H2Server(asyncio.Protocol):
    """HTTP/2 over TLS with the h2 state machine: every GET is a log stream, `/tick` writes to them all."""

    connections: list[H2Server] = []

    def __init__(self, max_streams: int) -> None:
        self._max_streams = max_streams
        self.streams: set[int] = set()

    def connection_made(self, transport: Any) -> None:
        import h2.config
        import h2.connection
        import h2.settings

        self.transport = transport
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
        self.conn.initiate_connection()
        self.conn.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self._max_streams})
        self.transport.write(self.conn.data_to_send())
        H2Server.connections.append(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        H2Server.connections.remove(self)

    def data_received(self, data: bytes) -> None:
        import h2.events

        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                self._request(event.stream_id, dict(event.headers)[b":path"])
            elif isinstance(event, h2.events.StreamReset):  # StreamEnded: the GET's half-close, normal
                self.streams.discard(event.stream_id)
            elif isinstance(event, h2.events.DataReceived):
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        self.transport.write(self.conn.data_to_send())

    def _request(self, stream_id: int, path: bytes) -> None:
        if path == b"/tick":
            sent = sum(peer.send_line() for peer in H2Server.connections)
            self.conn.send_headers(stream_id, [(b":status", b"200")])
            self.conn.send_data(stream_id, str(sent).encode(), end_stream=True)
            return
        self.conn.send_headers(stream_id, [(b":status", b"200"), (b"content-type", b"text/plain")])
        self.conn.send_data(stream_id, LINE)
        self.streams.add(stream_id)

    def send_line(self) -> int:
        sent = 0
        for stream_id in self.streams:
            if self.conn.local_flow_control_window(stream_id) >= len(LINE):
                self.conn.send_data(stream_id, LINE)
                sent += 1
        self.transport.write(self.conn.data_to_send())
        return sent


def serve_h2(port: int, directory: Path, max_streams: int) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        context = server_context(directory, "h2")
        server = await loop.create_server(lambda: H2Server(max_streams), "127.0.0.1", port, ssl=context, backlog=4096)
        await server.serve_forever()

    asyncio.run(main())


# --- clients ---------------------------------------------------------------------------------------------


class Counter:
    """Lines received on all streams; `reached` is set once they reach `target`."""

    def __init__(self) -> None:
        self.lines, self.target = 0, 0
        self.reached = asyncio.Event()

    def add(self) -> None:
        self.lines += 1
        if self.lines >= self.target > 0:
            self.reached.set()

    async def wait_for(self, target: int) -> None:
        self.target = target
        self.reached.clear()
        if self.lines < target:
            await self.reached.wait()


def client_context(directory: Path, alpn: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(directory / "cert.pem"))
    context.set_alpn_protocols([alpn])
    return context


async def aiohttp_streams(url: str, directory: Path, counter: Counter) -> Callable[[int], Awaitable[None]]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0, ssl=client_context(directory, "http/1.1"))
    session = aiohttp.ClientSession(connector=connector)

    async def follow(opened: asyncio.Future[None]) -> None:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as response:
            opened.set_result(None)
            async for _ in response.content:
                counter.add()

    return _opener(follow)


async def httpx_streams(url: str, directory: Path, counter: Counter) -> Callable[[int], Awaitable[None]]:
    import httpx

    clients: list[httpx.AsyncClient] = []
    opened_count = 0

    def client() -> httpx.AsyncClient:
        if opened_count // HTTPX_STREAMS_PER_CONNECTION >= len(clients):
            clients.append(
                httpx.AsyncClient(
                    http2=True,
                    http1=False,
                    verify=client_context(directory, "h2"),
                    timeout=httpx.Timeout(30.0, read=None),
                    trust_env=False,
                )
            )
        return clients[-1]

    async def follow(opened: asyncio.Future[None]) -> None:
        nonlocal opened_count
        chosen = client()
        opened_count += 1
        async with chosen.stream("GET", url) as response:
            opened.set_result(None)
            async for _ in response.aiter_lines():
                counter.add()

    return _opener(follow)


class H2Client(asyncio.Protocol):
    """One HTTP/2 connection; each stream's data goes to the queue of the task that opened it."""

    def __init__(self) -> None:
        import h2.config
        import h2.connection

        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.queues: dict[int, asyncio.Queue[bytes]] = {}

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(2**30)
        self.transport.write(self.conn.data_to_send())

    def data_received(self, data: bytes) -> None:
        import h2.events

        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.DataReceived):
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                self.queues[event.stream_id].put_nowait(event.data)
        self.transport.write(self.conn.data_to_send())

    def get(self, authority: str, path: str) -> asyncio.Queue[bytes]:
        stream_id = self.conn.get_next_available_stream_id()
        headers = [(":method", "GET"), (":scheme", "https"), (":authority", authority), (":path", path)]
        self.conn.send_headers(stream_id, headers, end_stream=True)
        self.transport.write(self.conn.data_to_send())
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.queues[stream_id] = queue
        return queue


async def h2_streams(url: str, directory: Path, counter: Counter) -> Callable[[int], Awaitable[None]]:
    host, port = url.removeprefix("https://").rstrip("/").split(":")
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(
        H2Client, host, int(port), ssl=client_context(directory, "h2"), server_hostname=host
    )

    async def follow(opened: asyncio.Future[None]) -> None:
        queue = protocol.get(f"{host}:{port}", "/")
        await queue.get()
        counter.add()
        opened.set_result(None)
        while True:
            await queue.get()
            counter.add()

    return _opener(follow)


def _opener(follow: Callable[[asyncio.Future[None]], Awaitable[None]]) -> Callable[[int], Awaitable[None]]:
    tasks: set[asyncio.Task[None]] = set()

    async def open_streams(count: int) -> None:
        loop = asyncio.get_running_loop()
        opened = [loop.create_future() for _ in range(count)]
        for future in opened:
            task = asyncio.create_task(follow(future))  # type: ignore[arg-type]
            tasks.add(task)
        await asyncio.gather(*opened)

    return open_streams


def open_connections() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


async def hold(streams: int, url: str, kind: str, directory: Path, tick_url: str) -> str:
    import httpx

    counter = Counter()
    own_sockets = open_connections()  # the event loop's self-pipe
    opener = {"aiohttp": aiohttp_streams, "httpx": httpx_streams, "h2": h2_streams}[kind]
    open_streams = await opener(url, directory, counter)
    await open_streams(WARM_UP)
    gc.collect()
    before = rss()
    for opened in range(0, streams, 100):  # in hundreds, never past `streams` (the server's stream limit)
        await open_streams(min(100, streams - opened))
    gc.collect()
    await asyncio.sleep(1)
    grown = (rss() - before) / streams
    sockets = open_connections() - own_sockets
    total = streams + WARM_UP  # each has had its first line
    http2 = tick_url.endswith("#h2")
    alpn = "h2" if http2 else "http/1.1"
    async with httpx.AsyncClient(http2=http2, verify=client_context(directory, alpn), trust_env=False) as ticks:
        (await ticks.get(tick_url.removesuffix("#h2"))).raise_for_status()  # connected before the clock starts
        await counter.wait_for(2 * total)
        cpu = time.process_time()
        for k in range(3, TICKS + 3):
            (await ticks.get(tick_url.removesuffix("#h2"))).raise_for_status()
            await counter.wait_for(k * total)
        per_line = (time.process_time() - cpu) / (TICKS * total)
    return f"{grown / 1024:6.1f} KiB  {sockets:5d} connections  {per_line * 1e6:5.1f} µs CPU per line"


def client(streams: int, url: str, kind: str, directory: Path, tick_url: str) -> None:
    import uvloop

    print(uvloop.run(hold(streams, url, kind, directory, tick_url)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--serve", nargs=4, metavar=("KIND", "PORT", "DIR", "MAX"), help=argparse.SUPPRESS)
    parser.add_argument("--hold", nargs=5, metavar=("N", "URL", "KIND", "DIR", "TICK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        kind, port, directory, max_streams = args.serve
        if kind == "http1":
            serve_http1(int(port), Path(directory))
        else:
            serve_h2(int(port), Path(directory), int(max_streams))
        return
    if args.hold:
        client(int(args.hold[0]), args.hold[1], args.hold[2], Path(args.hold[3]), args.hold[4])
        return
    directory = Path(tempfile.mkdtemp(prefix="podgate-h2-streams-"))
    certificate(directory)
    base = 20000 + os.getpid() % 20000
    ports = {"http1": base, "h2": base + 1}
    max_streams = str(args.streams + WARM_UP + 10)
    servers = [
        subprocess.Popen([sys.executable, __file__, "--serve", kind, str(port), str(directory), max_streams])
        for kind, port in ports.items()
    ]
    try:
        time.sleep(3)
        print(f"{args.streams} idle log streams, each read by a task: client RSS per stream, connections, CPU per line")
        for what, server, kind in VARIANTS:
            url = f"https://localhost:{ports[server]}/"
            tick_url = f"{url}tick" + ("#h2" if server == "h2" else "")
            run = [sys.executable, __file__, "--hold", str(args.streams), url, kind, str(directory), tick_url]
            done = subprocess.run(run, capture_output=True, text=True, timeout=600, check=False)
            if done.returncode:
                print(f"  {what}: failed\n{done.stderr[-2000:]}", flush=True)
                continue
            print(f"  {done.stdout.strip()}  {what}", flush=True)
    finally:
        stop_all(servers, directory)


if __name__ == "__main__":
    main()
