"""`pods/log` and `pods/exec`: the API server's side, delegating to the kubelet.

The kubelet (sim-node's `gateway.sim.kubelet.Kubelet`) provides the process side through the
`KubeletStreams` protocol below; it raises `gateway.sim.errors` errors (BadRequest for a container that
is not running, NotFound...) which reach the client as Kubernetes Status bodies: `logs` raises them when
called, before the answer's headers go out, so a quiet log's headers need not wait for its first line.

Exec speaks the WebSocket channel protocols `v5.channel.k8s.io` and `v4.channel.k8s.io` (and the older
unversioned ones): binary frames whose first byte is the channel — 0 stdin, 1 stdout, 2 stderr,
3 error, 4 resize, and in v5 255 = "close this channel" — and the exit status as a Status JSON on the
error channel (Success, or Failure/NonZeroExitCode with an ExitCode cause).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Mapping
from datetime import datetime
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from gateway.sim.errors import BadRequest, SimError
from gateway.sim.exchange import Exchange, Stream
from gateway.sim.faults import Faults, LogSilence
from gateway.sim.http1 import Http1Stream
from gateway.sim.sending import client_may_leave, send
from gateway.sim.store import ObjectStore

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io")
TAIL_CUT_DELAY = 0.5  # a follow stream cut by `Faults.take_log_tail_cut` ends this long after its container
_REAP_SECONDS = 2.0  # a killed command's output ends at once, unless something it started holds the pipes


class ExecProcess(Protocol):
    @property
    def stdout(self) -> AsyncIterator[bytes]: ...

    @property
    def stderr(self) -> AsyncIterator[bytes]: ...

    async def write_stdin(self, data: bytes) -> None: ...

    def close_stdin(self) -> None: ...

    async def wait(self) -> int: ...


class KubeletStreams(Protocol):
    def logs(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        follow: bool,
        timestamps: bool,
        since_time: datetime | None,
        since_seconds: int | None,
        tail_lines: int | None,
        limit_bytes: int | None,
        previous: bool,
    ) -> AsyncGenerator[bytes, None]: ...

    async def exec(
        self, namespace: str, pod: str, container: str, command: list[str], stdin: bool, tty: bool
    ) -> ExecProcess: ...


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes")


def _optional_int(query: Mapping[str, str], key: str) -> int | None:
    value = query.get(key)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"{key}: invalid integer {value!r}") from None


def _since_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"sinceTime: {value!r} is not an RFC 3339 time") from None


def choose_container(pod: Mapping[str, Any], requested: str | None, *, running: bool = False) -> str:
    """The container a log/exec request is about, with kube-apiserver's errors when it is ambiguous or wrong."""
    name = pod["metadata"]["name"]
    spec = pod.get("spec") or {}
    names = [c["name"] for c in spec.get("containers") or []]
    init = [c["name"] for c in spec.get("initContainers") or []]
    if requested:
        if requested not in names + init:
            raise BadRequest(f"container {requested} is not valid for pod {name}")
        return str(requested)
    default = (pod["metadata"].get("annotations") or {}).get("kubectl.kubernetes.io/default-container")
    if default in names:
        return str(default)
    if len(names) == 1:
        return str(names[0])
    raise BadRequest(f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]")


def _no_kubelet(pod: Mapping[str, Any], container: str) -> SimError:
    return BadRequest(
        f'container "{container}" in pod "{pod["metadata"]["name"]}" is waiting to start: ContainerCreating'
    )


async def serve_logs(
    request: Exchange,
    store: ObjectStore,
    kubelet: KubeletStreams | None,
    namespace: str,
    name: str,
    silence: LogSilence | None = None,
    faults: Faults | None = None,
) -> Stream:
    pod = store.stored("pods", namespace, name)
    query = request.query
    container = choose_container(pod, query.get("container"))
    if kubelet is None:
        raise _no_kubelet(pod, container)
    follow = _truthy(query.get("follow"))
    cut_tail = follow and faults is not None and _runs(pod, container) and faults.take_log_tail_cut()
    chunks = kubelet.logs(  # errors (container not started, no previous instance) raised here, answered as a Status
        namespace,
        name,
        container,
        follow=follow,
        timestamps=_truthy(query.get("timestamps")),
        since_time=_since_time(query.get("sinceTime")),
        since_seconds=_optional_int(query, "sinceSeconds"),
        tail_lines=_optional_int(query, "tailLines"),
        limit_bytes=_optional_int(query, "limitBytes"),
        previous=_truthy(query.get("previous")),
    )
    try:
        response = await request.stream("text/plain")
        with client_may_leave():
            held: bytes | None = None  # with `cut_tail`, each chunk goes out when the next one came
            async for chunk in chunks:
                out: bytes | None = chunk
                if cut_tail:
                    out, held = held, chunk
                if out is not None:
                    await _write(response, out, silence)
            if cut_tail:  # the container ended: the stream ends cleanly without `held`, once the client's
                await asyncio.sleep(TAIL_CUT_DELAY)  # watch has had time to show that it ended
            if silence is not None:
                await silence.check()
            await response.finish()
        return response
    finally:
        await chunks.aclose()


def _runs(pod: Mapping[str, Any], container: str) -> bool:
    status = pod.get("status") or {}
    for cs in (*(status.get("initContainerStatuses") or ()), *(status.get("containerStatuses") or ())):
        if cs.get("name") == container:
            return "running" in (cs.get("state") or {})
    return False


async def _write(response: Stream, chunk: bytes, silence: LogSilence | None) -> None:
    if silence is not None:
        await silence.check()
    await send(response, chunk)


def exit_status(code: int, command: list[str]) -> dict[str, Any]:
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command {command}, exit code {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


async def serve_exec(
    exchange: Exchange, store: ObjectStore, kubelet: KubeletStreams | None, namespace: str, name: str
) -> Stream:
    pod = store.stored("pods", namespace, name)
    query = exchange.query
    command = query.getall("command", [])
    if not command:
        raise BadRequest("you must specify at least 1 command")
    container = choose_container(pod, query.get("container"))
    if kubelet is None:
        raise _no_kubelet(pod, container)
    stdin, tty = _truthy(query.get("stdin")), _truthy(query.get("tty"))
    ws = web.WebSocketResponse(protocols=EXEC_PROTOCOLS, autoping=True)
    request = exchange.websocket()  # None on HTTP/2, which has no WebSocket upgrade (nor does kube-apiserver's)
    if request is None or not ws.can_prepare(request).ok:
        raise BadRequest("exec needs a WebSocket upgrade with one of the protocols: " + ", ".join(EXEC_PROTOCOLS))
    process = await _start(kubelet.exec(namespace, name, container, list(command), stdin, tty))
    reader: asyncio.Future[None] | None = None
    session: asyncio.Future[None] | None = None
    ws_open = False  # the handshake answered: a WebSocket to close at the end
    try:
        with client_may_leave():
            await ws.prepare(request)
            ws_open = True
            reader = asyncio.ensure_future(_read_client(ws, process, stdin))
            session = asyncio.ensure_future(_run(ws, process, list(command)))
            await asyncio.wait({reader, session}, return_when=asyncio.FIRST_COMPLETED)
            if not session.done() and ws.closed:
                _kill(process)  # the client went away: nobody will read what the command prints
            await session
    finally:
        await _finish(ws if ws_open else None, process, reader, session)
    return Http1Stream(ws)


async def _start(starting: Awaitable[ExecProcess]) -> ExecProcess:
    """The command, started. A client that leaves while it starts cancels the handler; the start is let
    finish (cancelled halfway, asyncio kills nsenter and not the command it forked) and the command is
    then killed and reaped, so it does not run on with nobody to read it."""
    task = asyncio.ensure_future(starting)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task})
        if not task.cancelled() and task.exception() is None:
            await _finish(None, task.result(), None, None)
        raise


async def _finish(
    ws: web.WebSocketResponse | None, process: ExecProcess, reader: asyncio.Future[None] | None,
    session: asyncio.Future[None] | None,
) -> None:  # fmt: skip
    """However the exec ended (the command, the client leaving, the handler cancelled because the connection
    dropped), no command outlives it: one still running is killed, and its output read to the end (the
    session goes on without a client) so its pipes close and its process is reaped now, not at exit."""
    if session is None or not session.done():
        _kill(process)
    if reader is not None:
        reader.cancel()
    ending = session if session is not None else asyncio.ensure_future(_drain(process))
    await asyncio.wait({ending}, timeout=_REAP_SECONDS)
    ending.cancel()
    await asyncio.gather(*(t for t in (reader, ending) if t is not None), return_exceptions=True)
    if ws is not None:
        with client_may_leave():
            await ws.close()


async def _drain(process: ExecProcess) -> None:
    """A command with no session: its output read and dropped to the end, so its pipes close, then reaped."""
    await asyncio.gather(*(_discard(chunks) for chunks in (process.stdout, process.stderr)))
    await process.wait()


async def _discard(chunks: AsyncIterator[bytes]) -> None:
    async for _ in chunks:
        pass


async def _run(ws: web.WebSocketResponse, process: ExecProcess, command: list[str]) -> None:
    """Output to the client, then the exit status on the error channel."""
    await asyncio.gather(_pump(ws, STDOUT, process.stdout, process), _pump(ws, STDERR, process.stderr, process))
    code = await process.wait()
    if ws.closed:
        return
    with client_may_leave():
        if (ws.ws_protocol or "").startswith(("v4.", "v5.")):
            await ws.send_bytes(bytes([ERROR]) + json.dumps(exit_status(code, command)).encode())
        elif code != 0:
            await ws.send_bytes(bytes([ERROR]) + f"command terminated with exit code {code}".encode())


def _resize(process: ExecProcess, payload: bytes) -> None:
    """A resize frame is JSON {"Width": w, "Height": h}; runtimes without a tty ignore it."""
    resize = getattr(process, "resize", None)
    try:
        size = json.loads(payload)
        if resize is not None:
            resize(int(size["Width"]), int(size["Height"]))
    except (ValueError, KeyError, TypeError):
        return


def _kill(process: ExecProcess) -> None:
    kill = getattr(process, "kill", None)
    if kill is not None:
        kill()


async def _pump(ws: web.WebSocketResponse, channel: int, chunks: AsyncIterator[bytes], process: ExecProcess) -> None:
    """One output channel to the client; once the client is gone the command is killed, and what is left
    of its output read and dropped."""
    async for chunk in chunks:
        if chunk and not ws.closed:
            try:
                await ws.send_bytes(bytes([channel]) + chunk)
            except ConnectionResetError:
                _kill(process)
                break
    await _discard(chunks)


async def _read_client(ws: web.WebSocketResponse, process: ExecProcess, stdin: bool) -> None:
    """Frames from the client: stdin data, v5 close-stdin, terminal resize; a closed socket ends stdin.
    Returns when the client closes the socket (or sends no more frames)."""
    try:
        async for message in ws:
            if message.type == WSMsgType.BINARY:
                data = bytes(message.data)
            elif message.type == WSMsgType.TEXT:
                data = str(message.data).encode()
            else:
                break
            if not data:
                continue
            if data[0] == RESIZE:
                _resize(process, data[1:])
            elif not stdin:
                continue
            elif data[0] == STDIN and len(data) > 1:
                await process.write_stdin(data[1:])
            elif data[0] == CLOSE and data[1:2] == bytes([STDIN]):
                process.close_stdin()
    finally:
        if stdin:
            process.close_stdin()
