"""`podgate sim` logs nothing when clients leave mid-stream (issue 15: it logged ERROR tracebacks).

Clients leave streams all the time (`kubectl get -w` interrupted, a gateway restarting its watches), in
every way a TCP/TLS connection can end. Each kind below is done by a raw TLS socket to watches (plain,
watch-list, Table, bookmarks, timeoutSeconds), a followed log and an exec, while events are produced at
a high rate; afterwards the simulator's stderr must hold no ERROR, traceback or asyncio warning, and no
exec command may outlive its client. Before the fix: "Error handling request ... Cannot write to closing
transport" for watches and logs, a replayed log written for seconds into the dead connection (asyncio's
"socket.send() raised exception." thousands of times), and exec commands left running, whose transports
were then finalized after the loop closed ("Exception ignored ... Event loop is closed").
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import BIN, ROOT, clean_env
from tests.sim.leaks import no_leaks as no_leaks

CONFIG = """
clusters:
  - name: quiet
    region: eu-west-1
    sim:
      bookmarkSeconds: 0.2
      nodes: [{name: n1, allocatable: {cpu: "8", memory: 32Gi, pods: "110"}}]
"""
EXEC_MARKER = "exec-output-of-a-client-that-left"
LEAVES = ("reset", "fin", "close_notify", "half_close")
QUIET_SIGNS = ("ERROR", "Traceback", "Exception ignored", "raised exception")
WATCH_LIST = "&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
TABLE = "Accept: application/json;as=Table;v=v1;g=meta.k8s.io\r\n"
WEBSOCKET = (
    "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
    f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
    "Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n"
)


@dataclass(frozen=True)
class Sim:
    host: str
    port: int
    context: ssl.SSLContext
    token: str
    stderr: Path
    process: subprocess.Popen[str]

    def connect(self) -> ssl.SSLSocket:
        raw = socket.create_connection((self.host, self.port), timeout=10)
        return self.context.wrap_socket(raw, server_hostname="localhost")

    def call(self, method: str, path: str, body: object = None) -> dict:
        connection = http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=10)
        try:
            headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
            connection.request(method, path, json.dumps(body) if body is not None else None, headers)
            response = connection.getresponse()
            answer: dict = json.loads(response.read())
            assert response.status < 300, answer
            return answer
        finally:
            connection.close()


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    with _running(tmp_path, CONFIG) as running:
        yield running


@pytest.fixture
def virtual_sim(tmp_path: Path) -> Iterator[Sim]:
    """Every node virtual: `podgate sim` runs on uvloop (gateway/sim/main.py)."""
    with _running(tmp_path, CONFIG.replace('pods: "110"}}]', 'pods: "110"}, runtime: virtual}]')) as running:
        yield running


@contextlib.contextmanager
def _running(tmp_path: Path, config: str) -> Iterator[Sim]:
    (tmp_path / "clusters.yaml").write_text(config)
    stderr = tmp_path / "sim.err"
    with stderr.open("w") as err:
        process = subprocess.Popen(
            [str(BIN / "podgate"), "sim", "--config", str(tmp_path / "clusters.yaml"), "--kubeconfig-dir", str(tmp_path)],
            cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE, stderr=err, text=True,
        )  # fmt: skip
    try:
        assert process.stdout is not None
        assert process.stdout.readline().split()[0] == "CLUSTER", stderr.read_text()
        url = process.stdout.readline().split()[1]
        kubeconfig = yaml.safe_load((tmp_path / "quiet.kubeconfig").read_text())
        ca = base64.b64decode(kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
        host, port = url.removeprefix("https://").split(":")
        token = kubeconfig["users"][0]["user"]["token"]
        yield Sim(host, int(port), ssl.create_default_context(cadata=ca), token, stderr, process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def _leave(tls: ssl.SSLSocket, how: str) -> None:
    """Ends the connection the way `how` names: RST, FIN without close_notify, close_notify, half-close."""
    if how == "reset":
        tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    elif how == "fin":
        tls.shutdown(socket.SHUT_RDWR)
    elif how == "close_notify":
        tls.setblocking(False)
        with contextlib.suppress(OSError):  # close_notify is sent; the peer's, with data streaming in, never comes
            tls.unwrap()
    elif how == "half_close":
        tls.shutdown(socket.SHUT_WR)
        time.sleep(0.2)
    tls.close()


def _stream_then_leave(sim: Sim, path: str, how: str, *, headers: str = "", wanted: int = 1, stay: float = 0) -> bytes:
    """Opens a stream, reads `wanted` bytes of it (then for `stay` seconds more), and leaves."""
    tls = sim.connect()
    tls.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {sim.token}\r\n{headers}\r\n".encode())
    got = b""
    deadline = None
    while (len(got) < wanted or (deadline or 0) > time.monotonic()) and (data := tls.recv(65536)):
        got += data
        if deadline is None and len(got) >= wanted:
            deadline = time.monotonic() + stay
    _leave(tls, how)
    return got


def _produce(sim: Sim, stop: threading.Event) -> int:
    """Creates secrets as fast as one connection allows: a high event rate for the watches."""
    connection = http.client.HTTPSConnection(sim.host, sim.port, context=sim.context, timeout=10)
    headers = {"Authorization": f"Bearer {sim.token}", "Content-Type": "application/json"}
    count = 0
    while not stop.is_set():
        count += 1
        data = {"blob": base64.b64encode(os.urandom(256)).decode()}
        body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"s{count}"}, "data": data}
        connection.request("POST", "/api/v1/namespaces/default/secrets", json.dumps(body), headers)
        response = connection.getresponse()
        response.read()
        assert response.status == 201
    connection.close()
    return count


def _pod(sim: Sim, name: str, script: str) -> None:
    container = {"name": "c", "image": "busybox", "command": ["sh", "-c", script]}
    spec = {"containers": [container], "terminationGracePeriodSeconds": 1}
    sim.call("POST", "/api/v1/namespaces/default/pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})


def _wait_running(sim: Sim, *names: str) -> None:
    deadline = time.monotonic() + 30
    while any(sim.call("GET", f"/api/v1/namespaces/default/pods/{n}")["status"].get("phase") != "Running" for n in names):
        assert time.monotonic() < deadline, "pods did not start"
        time.sleep(0.1)


def _commands_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _every_way(leave: Callable[[str], bytes]) -> list[bytes]:
    return [leave(how) for how in LEAVES]


def _leave_while_producing(sim: Sim, kinds: dict[str, Callable[[str], bytes]]) -> dict[str, list[bytes]]:
    """Each kind of stream left in every way, while secrets are created as fast as one connection allows."""
    stop = threading.Event()
    with ThreadPoolExecutor(len(kinds) + 1) as pool:
        producer = pool.submit(_produce, sim, stop)
        time.sleep(0.3)
        results = {name: pool.submit(_every_way, leave) for name, leave in kinds.items()}
        received = {name: future.result(timeout=60) for name, future in results.items()}
        stop.set()
        assert producer.result(timeout=30) > 50
    return received


def test_clients_leaving_streams_in_every_way_log_nothing(sim: Sim) -> None:
    _pod(sim, "talker", "i=0; while [ $i -lt 20000 ]; do echo line $i of a chatty container; i=$((i+1)); done; sleep 600")
    _pod(sim, "idle", "sleep 600")
    _wait_running(sim, "talker", "idle")
    secrets = "/api/v1/namespaces/default/secrets?watch=1"
    exec_path = (
        "/api/v1/namespaces/default/pods/idle/exec?command=sh&command=-c"
        f"&command=while%20:;%20do%20echo%20{EXEC_MARKER};%20done&stdout=true&stderr=true&stdin=true"
    )
    kinds: dict[str, Callable[[str], bytes]] = {
        "watch": lambda how: _stream_then_leave(sim, secrets, how, wanted=4096),
        "watch-list": lambda how: _stream_then_leave(sim, secrets + WATCH_LIST, how, wanted=65536),
        "kubectl get -w (Table)": lambda how: _stream_then_leave(sim, secrets, how, headers=TABLE, wanted=4096),
        "bookmark after leaving": lambda how: _stream_then_leave(
            sim, "/api/v1/namespaces?watch=1&allowWatchBookmarks=true", how, wanted=1, stay=0.1
        ),
        "timeoutSeconds ending as it leaves": lambda how: _stream_then_leave(
            sim, secrets + "&timeoutSeconds=1", how, wanted=1, stay=0.9
        ),
        "logs -f": lambda how: _stream_then_leave(
            sim, "/api/v1/namespaces/default/pods/talker/log?follow=true", how, wanted=65536
        ),
        "exec": lambda how: _stream_then_leave(sim, exec_path, how, headers=WEBSOCKET, wanted=8192),
    }
    received = _leave_while_producing(sim, kinds)
    for name, answers in received.items():  # every client left a stream that was flowing
        assert all(a.startswith(b"HTTP/1.1 10" if name == "exec" else b"HTTP/1.1 200") for a in answers), name
        assert min(len(a) for a in answers) > 100, name
    deadline = time.monotonic() + 5
    while _commands_with(EXEC_MARKER) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _commands_with(EXEC_MARKER) == [], "an exec command outlived its client"
    time.sleep(0.5)  # a bookmark or a timeout due after the last client left
    _still_serves(sim)
    _stopped_quietly(sim)


def _still_serves(sim: Sim) -> None:
    """A new watch sees a new object: the simulator serves on after the clients that left."""
    tls = sim.connect()
    tls.sendall(f"GET /api/v1/namespaces/default/secrets?watch=1 HTTP/1.1\r\nHost: localhost\r\n"
                f"Authorization: Bearer {sim.token}\r\n\r\n".encode())  # fmt: skip
    got = tls.recv(65536)
    assert got.startswith(b"HTTP/1.1 200"), got[:200]
    sim.call("POST", "/api/v1/namespaces/default/secrets", {"metadata": {"name": "after-they-left"}})
    while b"after-they-left" not in got and (data := tls.recv(65536)):
        got += data
    tls.close()
    assert b'"type":"ADDED"' in got and b"after-they-left" in got


def _stopped_quietly(sim: Sim) -> None:
    sim.process.send_signal(signal.SIGTERM)
    assert sim.process.wait(timeout=30) == 0
    logged = sim.stderr.read_text()
    assert {sign: logged.count(sign) for sign in QUIET_SIGNS if sign in logged} == {}, logged[:3000]


def _ask_then_leave(sim: Sim, path: str, headers: str, delay: float, how: str) -> None:
    """Sends a request and leaves `delay` seconds later, whether or not anything was answered."""
    tls = sim.connect()
    tls.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {sim.token}\r\n{headers}\r\n".encode())
    time.sleep(delay)
    _leave(tls, how)


def test_clients_leaving_before_the_first_answer_log_nothing_and_leave_no_command(sim: Sim) -> None:
    """Clients that leave as soon as they asked: the handler is cancelled while it starts. Before the fix, a log
    whose first read failed (no previous container) left asyncio's "Task exception was never retrieved" with a
    traceback, and an exec cancelled while its command started left the command running (asyncio killed
    nsenter, not what it forked) until the simulator exited."""
    _pod(sim, "idle", "sleep 600")
    _wait_running(sim, "idle")
    secrets = "/api/v1/namespaces/default/secrets?watch=1"
    asks = [
        ("/api/v1/namespaces/default/pods/idle/log?previous=true", ""),
        ("/api/v1/namespaces/default/pods/idle/log?follow=true", ""),
        ("/api/v1/namespaces/default/pods/idle/exec?command=sh&command=-c"
         f"&command=while%20:;%20do%20echo%20{EXEC_MARKER};%20done&stdout=true&stderr=true&stdin=true", WEBSOCKET),
        (secrets, ""),
        (secrets + WATCH_LIST, ""),
        (secrets, TABLE),
    ]  # fmt: skip
    delays = [i / 10_000 for i in range(100)]  # 0 to 10 ms: before, while and after the handler starts
    tries = [(path, headers, delay, LEAVES[i % 2]) for path, headers in asks for i, delay in enumerate(delays)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda t: _ask_then_leave(sim, *t), tries))
    deadline = time.monotonic() + 10  # a command killed as its client left is reaped within 2 s
    while _commands_with(EXEC_MARKER) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(_commands_with(EXEC_MARKER)) == 0, "exec commands outlived their clients"
    _still_serves(sim)
    _stopped_quietly(sim)


def test_on_uvloop_clients_leaving_watches_and_logs_log_nothing(virtual_sim: Sim) -> None:
    """uvloop's TLS transports end in their own ways: clients leaving watches and a replayed log in every way
    still leave nothing in the simulator's log, and it serves on."""
    assert "event loop: uvloop" in _rest_of_banner(virtual_sim)
    lines = "\n".join(f"line {i} of a chatty container" for i in range(20_000))
    annotations = {"sim.podgate.io/log-lines": lines, "sim.podgate.io/duration": "0"}
    container = {"name": "c", "image": "busybox"}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "talker", "annotations": annotations},
           "spec": {"containers": [container], "restartPolicy": "Never"}}  # fmt: skip
    virtual_sim.call("POST", "/api/v1/namespaces/default/pods", pod)
    deadline = time.monotonic() + 30
    while virtual_sim.call("GET", "/api/v1/namespaces/default/pods/talker")["status"].get("phase") != "Succeeded":
        assert time.monotonic() < deadline, "the virtual pod did not end"
        time.sleep(0.1)
    secrets = "/api/v1/namespaces/default/secrets?watch=1"
    kinds: dict[str, Callable[[str], bytes]] = {
        "watch": lambda how: _stream_then_leave(virtual_sim, secrets, how, wanted=4096),
        "watch-list": lambda how: _stream_then_leave(virtual_sim, secrets + WATCH_LIST, how, wanted=65536),
        "logs -f (replayed)": lambda how: _stream_then_leave(
            virtual_sim, "/api/v1/namespaces/default/pods/talker/log?follow=true", how, wanted=65536
        ),
    }
    for name, answers in _leave_while_producing(virtual_sim, kinds).items():
        assert all(a.startswith(b"HTTP/1.1 200") and len(a) > 100 for a in answers), name
    _still_serves(virtual_sim)
    _stopped_quietly(virtual_sim)


def _rest_of_banner(sim: Sim) -> str:
    """The banner's lines after the first cluster's: the merged kubeconfig, the control endpoint, the event loop."""
    assert sim.process.stdout is not None
    return "".join(sim.process.stdout.readline() for _ in range(3))
