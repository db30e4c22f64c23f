"""List and watch over HTTP, with kube-apiserver's semantics.

Lists: `limit`/`continue` pagination (the continue token carries the list's resourceVersion and the
last key served), `resourceVersion` + `resourceVersionMatch` (the simulator keeps only the latest state:
an `Exact` match on an older version is 410 Expired), label and field selectors, and Table output.
Watches: a chunked stream of JSON lines, from a version or from "now" (with the current objects first),
`timeoutSeconds`, bookmarks when `allowWatchBookmarks` is set, and a too-old version answered the way
the apiserver's watch cache does: HTTP 200 with one ERROR event carrying a 410 Status. A watch-list
(`sendInitialEvents=true`, what client-go's reflectors and `kubectl wait` send) gets the current objects,
then a BOOKMARK annotated `k8s.io/initial-events-end`, then changes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import random
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from gateway.sim import jsonwire
from gateway.sim.discovery import BY_NAME, group_version
from gateway.sim.errors import BadRequest, Gone
from gateway.sim.exchange import Exchange, Stream
from gateway.sim.faults import Faults
from gateway.sim.sending import client_may_leave, send
from gateway.sim.store import ObjectStore, Watch
from gateway.sim.tables import to_table

Obj = dict[str, Any]
_DEFAULT_WATCH_SECONDS = (1800, 3600)
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


def _encode_continue(rv: str, namespace: str, name: str) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": int(rv), "start": f"{namespace}/{name}\x00"}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_continue(token: str) -> tuple[str, tuple[str, str]]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        namespace, _, name = data["start"].rstrip("\x00").partition("/")
        return str(data["rv"]), (namespace, name)
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError) as e:
        raise BadRequest(f"invalid continue token: {token!r}") from e


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes")


def kind_of(group: str, resource: str) -> tuple[str, str]:
    return BY_NAME[(group, resource)].kind, group_version(group)


def list_response(
    store: ObjectStore, group: str, resource: str, namespace: str | None, query: Mapping[str, str], as_table: bool
) -> Obj:
    match = query.get("resourceVersionMatch", "")
    requested = query.get("resourceVersion", "")
    if match == "Exact" and requested and requested != store.resource_version:
        raise Gone(f"too old resource version: {requested} ({store.resource_version})")
    if match and match not in ("Exact", "NotOlderThan"):
        raise BadRequest(f'resourceVersionMatch: Unsupported value: "{match}"')
    items, rv = store.list(resource, namespace, query.get("labelSelector", ""), query.get("fieldSelector", ""))
    token = query.get("continue", "")
    if token:
        rv, after = _decode_continue(token)
        items = [o for o in items if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > after]
    meta: Obj = {"resourceVersion": rv}
    limit = int(query.get("limit", "0") or 0)
    if limit > 0 and len(items) > limit:
        last = items[limit - 1]["metadata"]
        meta["continue"] = _encode_continue(rv, last.get("namespace", ""), last["name"])
        meta["remainingItemCount"] = len(items) - limit
        items = items[:limit]
    if as_table:
        return to_table(resource, items, meta, query.get("includeObject", "Metadata"))
    kind, api_version = kind_of(group, resource)
    return {"kind": f"{kind}List", "apiVersion": api_version, "metadata": meta, "items": items}


def _line(event_type: str, obj: Obj) -> bytes:
    return jsonwire.dumps({"type": event_type, "object": obj}) + b"\n"


class _TableLines:
    """Watch events as `kubectl get -w` asks for them: each object a one-row Table, the columns sent once."""

    def __init__(self, resource: str, include_object: str) -> None:
        self.resource = resource
        self.include_object = include_object
        self.first = True

    def __call__(self, event_type: str, obj: Obj) -> bytes:
        meta = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
        table = to_table(self.resource, [obj], meta, self.include_object)
        if not self.first:
            table["columnDefinitions"] = []
        self.first = False
        return _line(event_type, table)


class LaggingStream:
    """A watch's answer whose every write goes out `Faults.watch_lag` seconds late, in order (the lag read at each
    write, so a watch opened before the fault lags too): a watch behind its API server's changes, as a busy
    server's fan-out or a kubelet's late status sync make it, while the pods' log streams are not. Writes go out
    at once while there is no lag and nothing held."""

    def __init__(self, stream: Stream, faults: Faults) -> None:
        self._stream, self._faults = stream, faults
        self._held: deque[tuple[float, bytes]] = deque()
        self._writer: asyncio.Task[None] | None = None

    @property
    def status(self) -> int:
        return self._stream.status

    async def write(self, data: bytes) -> None:
        if self._writer is not None and self._writer.done():
            self._writer.result()  # the client left: ConnectionResetError, as a direct write raises it
            self._writer = None
        lag = self._faults.watch_lag
        if not lag and self._writer is None:
            await self._stream.write(data)
            return
        self._held.append((asyncio.get_running_loop().time() + lag, data))
        self._writer = self._writer or asyncio.create_task(self._write_held())

    async def _write_held(self) -> None:
        loop = asyncio.get_running_loop()
        while self._held:
            due, data = self._held[0]
            await asyncio.sleep(due - loop.time())
            self._held.popleft()
            await self._stream.write(data)

    async def finish(self) -> None:
        if self._writer is not None:
            await self._writer
        await self._stream.finish()

    def cancel(self) -> None:
        """Drops what is held (the watch ends without finishing: the client left, the stream was reset)."""
        writer, self._writer = self._writer, None
        if writer is not None and not writer.done():
            writer.cancel()
        elif writer is not None and not writer.cancelled():
            writer.exception()  # the client left while it wrote: retrieved, nothing to report
        self._held.clear()


async def serve_watch(
    request: Exchange,
    store: ObjectStore,
    group: str,
    resource: str,
    namespace: str | None,
    bookmark_seconds: float,
    faults: Faults | None = None,
) -> Stream:
    """A watch's answer; with `faults`, written as late as `Faults.watch_lag` says."""
    query = request.query
    timeout = float(query.get("timeoutSeconds") or random.randint(*_DEFAULT_WATCH_SECONDS))
    bookmarks = _truthy(query.get("allowWatchBookmarks"))
    initial_events = _truthy(query.get("sendInitialEvents"))
    if initial_events and not bookmarks:
        raise BadRequest("sendInitialEvents requires allowWatchBookmarks=true")
    headers = {"Cache-Control": "no-cache, private"}
    try:
        watch = store.watch(
            resource,
            namespace,
            "" if initial_events else query.get("resourceVersion", ""),  # the state now: the simulator keeps no older
            query.get("labelSelector", ""),
            query.get("fieldSelector", ""),
        )
    except Gone as e:
        response = await request.stream("application/json", headers)
        with client_may_leave():
            await response.write(_line("ERROR", e.status()))
            await response.finish()
        return response
    as_table = "as=Table" in request.headers.get("Accept", "")
    encode = _TableLines(resource, query.get("includeObject", "Metadata")) if as_table else _line
    lagging: LaggingStream | None = None
    try:
        response = await request.stream("application/json", headers)  # what the protocol's side finishes or cuts
        out: Stream = response if faults is None else (lagging := LaggingStream(response, faults))
        with client_may_leave():
            if initial_events:
                await _initial_events(out, watch, store, kind_of(group, resource), encode)
            bookmark_every = bookmark_seconds if bookmarks else None
            await _pump(out, watch, store, kind_of(group, resource), timeout, bookmark_every, encode)
            await out.finish()
    finally:
        watch.close()
        if lagging is not None:
            lagging.cancel()
    return response


async def _pump(
    response: Stream,
    watch: Watch,
    store: ObjectStore,
    kind: tuple[str, str],
    seconds: float,
    bookmark_every: float | None,
    encode: Callable[[str, Obj], bytes] = _line,
) -> None:
    """Writes events as they come, batching what is already queued into one write."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    next_bookmark = loop.time() + bookmark_every if bookmark_every else None
    while (remaining := deadline - loop.time()) > 0:
        wait = remaining if next_bookmark is None else max(0.0, min(remaining, next_bookmark - loop.time()))
        try:
            event = await watch.next_within(wait)
        except StopAsyncIteration:
            return
        if event is None:
            if next_bookmark is not None and loop.time() >= next_bookmark:
                await send(response, _bookmark(store, kind, watch))
                next_bookmark = loop.time() + (bookmark_every or 0)
            continue
        chunk = [encode(*event)]
        while watch.pending and len(chunk) < 500:
            chunk.append(encode(*await watch.__anext__()))
        await send(response, b"".join(chunk))


async def _initial_events(
    response: Stream, watch: Watch, store: ObjectStore, kind: tuple[str, str],
    encode: Callable[[str, Obj], bytes],
) -> None:  # fmt: skip
    """The objects queued when the watch opened, then the bookmark that tells the client it has them all."""
    rv = store.resource_version
    chunk = [encode(*await watch.__anext__()) for _ in range(watch.pending)]
    end = {"resourceVersion": rv, "annotations": {INITIAL_EVENTS_END: "true"}}
    chunk.append(_line("BOOKMARK", {"kind": kind[0], "apiVersion": kind[1], "metadata": end}))
    await send(response, b"".join(chunk))


def _bookmark(store: ObjectStore, kind: tuple[str, str], watch: Watch) -> bytes:
    """A BOOKMARK carries the version up to which this watcher has seen everything (its queue is empty)."""
    rv = store.resource_version if not watch.pending else str(watch.last_rv)
    return _line("BOOKMARK", {"kind": kind[0], "apiVersion": kind[1], "metadata": {"resourceVersion": rv}})
