"""The in-memory object store of one simulated cluster: what etcd plus the watch cache are to Kubernetes.

Objects are keyed by (resource, namespace, name): `resource` is the plural ("pods", "nodes", "events",
"namespaces", "serviceaccounts", "secrets", "roles", "rolebindings"), namespace "" when cluster-scoped.
One resourceVersion counter per cluster orders every change.

Mutations are synchronous (the simulator runs on one event loop, so each is atomic); watching is async.

- `create`, `get`, `list`, `update`, `mutate`, `delete`, `finalize_delete`: see each method. `get` and
  `list` return deep copies the caller may change; pass them back through `update` or change objects
  through `mutate(resource, ns, name, fn)`, which applies `fn` to a copy and stores it atomically (and
  returns the stored version, read-only). `peek` returns the stored version without copying (read-only),
  `stored` the same or NotFound. `set_status(resource, ns, name, status)` stores a new version whose status
  is `status` and whose other parts are the current version's own (shared, not copied: what the kubelet
  writes several times per pod).
- Deletion follows Kubernetes: an object with finalizers gets `deletionTimestamp` and stays until its
  finalizers are emptied (by `update`/`mutate`). A pod that is bound to a node and not terminal, deleted
  with a grace period > 0, gets `deletionTimestamp` + `deletionGracePeriodSeconds` (MODIFIED); the
  kubelet stops it and then calls `finalize_delete`, which removes it (DELETED); a terminating pod whose
  phase becomes Succeeded/Failed (through `update`/`mutate`) is removed at that moment too, so
  `finalize_delete` is then a no-op. Unbound or terminal pods, or a grace period of 0, go at once.
- `watch(resource, namespace, since_rv, label_selector, field_selector)` returns a `Watch`, an async
  iterator of ("ADDED" | "MODIFIED" | "DELETED", obj) from a bounded history. `since_rv` "" or "0"
  replays the current objects as ADDED first (as the apiserver does); a version older than the kept
  history raises `Gone` (410 Expired). Each watch has a bounded queue: a watcher that falls behind is
  closed (`Watch.overflowed` is set), never allowed to grow memory; the client re-watches from its last
  version, as it would from a real apiserver. An object that stops matching the selectors is sent as
  DELETED, one that starts matching as ADDED. `close_watches()` ends every open watch (a fault).
- `subscribe(resource, callback)` is for in-process controllers (scheduler, kubelet): `callback(type,
  obj, old)` runs synchronously inside each mutation, with `old` the previous version (None for
  ADDED). It must be quick and must not mutate the store re-entrantly: schedule work instead (e.g.
  `loop.call_soon` or put on a queue). Returns a function that unsubscribes.
Objects handed to watchers and subscribers are the stored versions themselves: read-only, never mutate
them (the store replaces objects on change; it never edits one in place).
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from gateway.sim.errors import AlreadyExists, BadRequest, Conflict, Gone, NotFound
from gateway.sim.selectors import matcher

Obj = dict[str, Any]
Event = tuple[str, Obj]
Callback = Callable[[str, Obj, Obj | None], None]

CLUSTER_SCOPED = frozenset({"nodes", "namespaces"})
DEFAULT_HISTORY = 20_000
DEFAULT_WATCH_QUEUE = 10_000
_TERMINAL_PHASES = ("Succeeded", "Failed")


def now_rfc3339(clock: Callable[[], datetime] | None = None) -> str:
    """Now to the second, as Kubernetes writes its timestamps; `clock` (tests) instead of the real time."""
    if clock is not None:
        return clock().strftime(_RFC3339)
    second = int(time.time())
    if second != _formatted[0]:  # formatted once a second, not at each of the ~10 stamps of a pod's life
        _formatted[:] = [second, datetime.fromtimestamp(second, UTC).strftime(_RFC3339)]
    return str(_formatted[1])


_RFC3339 = "%Y-%m-%dT%H:%M:%SZ"
_formatted: list[Any] = [-1, ""]  # the last second formatted, and its text


def copy_obj(value: Any) -> Any:
    """Deep copy of JSON-like data, several times faster than copy.deepcopy (leaves are not recursed into:
    this runs about ten times per pod in a 10,000-pod benchmark)."""
    kind = type(value)
    if kind is dict:
        out = {}
        for k, v in value.items():
            kv = type(v)
            out[k] = copy_obj(v) if kv is dict or kv is list else v
        return out
    if kind is list:
        return [copy_obj(v) if type(v) is dict or type(v) is list else v for v in value]
    return value


class _Record:
    """One change in the history: the global resourceVersion, and the object before and after."""

    __slots__ = ("new", "old", "resource", "rv", "type")

    def __init__(self, rv: int, resource: str, type_: str, new: Obj, old: Obj | None) -> None:
        self.rv = rv
        self.resource = resource
        self.type = type_
        self.new = new
        self.old = old


class Watch:
    """One watch stream: an async iterator of (type, obj) events; `close()` ends it."""

    def __init__(
        self,
        store: ObjectStore,
        resource: str,
        namespace: str | None,
        match: Callable[[Mapping[str, Any]], bool] | None,
        queue_size: int,
    ) -> None:
        self._store = store
        self.resource = resource
        self._namespace = namespace
        self._match = match
        self._pending: deque[Event] = deque()
        self._wakeup = asyncio.Event()
        self._limit = queue_size
        self.closed = False
        self.overflowed = False
        self.last_rv = 0

    def _visible(self, obj: Obj | None) -> bool:
        if obj is None:
            return False
        if self._namespace and obj["metadata"].get("namespace", "") != self._namespace:
            return False
        return self._match is None or self._match(obj)

    def _offer(self, record: _Record, *, replay: bool = False) -> None:
        """Translates one change into what this watcher sees (selector transitions included)."""
        if self.closed:
            return
        now, before = self._visible(record.new), self._visible(record.old)
        if record.type == "DELETED":
            event = "DELETED" if now else None
        elif now and before:
            event = "MODIFIED"
        elif now:
            event = "ADDED"
        elif before:
            event = "DELETED"
        else:
            event = None
        if event is not None:
            self._put((event, record.new), replay=replay)

    def _put(self, event: Event, *, replay: bool = False) -> None:
        if not replay and len(self._pending) >= self._limit:
            self.overflowed = True
            self.close()
            return
        self._pending.append(event)
        self._wakeup.set()

    def close(self) -> None:
        """Ends the stream; events not yet consumed are dropped (the client re-watches from its last version)."""
        if self.closed:
            return
        self.closed = True
        self._pending.clear()
        self._store._watches.discard(self)
        self._wakeup.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        while not self._pending:
            if self.closed:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()
        item = self._pending.popleft()
        self.last_rv = int(item[1]["metadata"]["resourceVersion"])
        return item

    async def next_within(self, seconds: float | None) -> Event | None:
        """The next event, or None when `seconds` pass with none; StopAsyncIteration once closed."""
        try:
            return await asyncio.wait_for(self.__anext__(), seconds)
        except TimeoutError:
            return None


class ObjectStore:
    def __init__(
        self,
        *,
        history: int = DEFAULT_HISTORY,
        watch_queue: int = DEFAULT_WATCH_QUEUE,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {}
        self._rv = 0
        self._history: deque[_Record] = deque(maxlen=history)
        self._compacted = 0  # the highest resourceVersion no longer in the history
        self._watches: set[Watch] = set()
        self._subscribers: dict[str, list[Callback]] = {}
        self._watch_queue = watch_queue
        self._clock = clock
        self._names = itertools.count(1)

    # --- reading -----------------------------------------------------------------------------------

    @property
    def resource_version(self) -> str:
        return str(self._rv)

    def get(self, resource: str, namespace: str, name: str) -> Obj:
        obj = self._objects.get(resource, {}).get((namespace, name))
        if obj is None:
            raise NotFound(resource, name)
        result: Obj = copy_obj(obj)
        return result

    def exists(self, resource: str, namespace: str, name: str) -> bool:
        return (namespace, name) in self._objects.get(resource, {})

    def list(
        self, resource: str, namespace: str | None, label_selector: str = "", field_selector: str = ""
    ) -> tuple[list[Obj], str]:
        """Matching objects sorted by (namespace, name), copied, and the list's resourceVersion."""
        match = matcher(resource, label_selector, field_selector)
        bucket = self._objects.get(resource, {})
        keys = sorted(bucket) if not namespace else sorted(k for k in bucket if k[0] == namespace)
        items = [copy_obj(bucket[k]) for k in keys if match is None or match(bucket[k])]
        return items, str(self._rv)

    def count(self, resource: str) -> int:
        return len(self._objects.get(resource, {}))

    # --- writing -----------------------------------------------------------------------------------

    def create(self, resource: str, obj: Obj, *, adopt: bool = False) -> Obj:
        """Stores a new object: fills uid, creationTimestamp, resourceVersion, generation (and a name
        from metadata.generateName). Raises AlreadyExists. With `adopt`, `obj` itself is stored and
        returned (the caller hands it over and must not change it again: the API server's fast path)."""
        new: Obj = obj if adopt else copy_obj(obj)
        meta = new.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
        namespace = "" if resource in CLUSTER_SCOPED else meta.get("namespace", "")
        key = (namespace, meta.get("name", ""))
        bucket = self._objects.setdefault(resource, {})
        if key in bucket:
            raise AlreadyExists(resource, key[1])
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339(self._clock)
        meta["generation"] = 1
        meta.pop("deletionTimestamp", None)
        meta.pop("deletionGracePeriodSeconds", None)
        meta["resourceVersion"] = self._next_rv()
        bucket[key] = new
        self._emit(resource, "ADDED", new, None)
        return new if adopt else copy_obj(new)

    def update(self, resource: str, obj: Obj, *, adopt: bool = False) -> Obj:
        """Replaces an object (optimistic concurrency on metadata.resourceVersion when given: Conflict).
        uid, creationTimestamp and deletionTimestamp are kept from the stored object. `adopt` as in create."""
        meta = obj.get("metadata", {})
        namespace = "" if resource in CLUSTER_SCOPED else meta.get("namespace", "")
        name = meta.get("name", "")
        current = self._current(resource, namespace, name)
        given = meta.get("resourceVersion")
        if given and given != current["metadata"]["resourceVersion"]:
            raise Conflict(resource, name)
        return self._replace(resource, current, obj if adopt else copy_obj(obj), adopt=adopt)

    def mutate(self, resource: str, namespace: str, name: str, fn: Callable[[Obj], None]) -> Obj:
        """Read-modify-write: `fn` changes a copy in place; the copy is stored with a new version.
        Returns the stored version: read-only (copy it to change it)."""
        current = self._current(resource, namespace, name)
        new: Obj = copy_obj(current)
        fn(new)
        return self._replace(resource, current, new, adopt=True)

    def set_status(self, resource: str, namespace: str, name: str, status: Obj) -> Obj:
        """Stores a new version with `status` (handed over: not copied) and everything else shared with the
        current version, which nobody changes in place. NotFound when absent. Returns the stored version:
        read-only."""
        current = self._current(resource, namespace, name)
        new = {**current, "metadata": dict(current["metadata"]), "status": status}
        return self._replace(resource, current, new, adopt=True)

    def peek(self, resource: str, namespace: str, name: str) -> Obj | None:
        """The stored version itself, or None: read-only, for controllers that only look (no copy made)."""
        return self._objects.get(resource, {}).get((namespace, name))

    def stored(self, resource: str, namespace: str, name: str) -> Obj:
        """The stored version itself (read-only: no copy made), or NotFound."""
        return self._current(resource, namespace, name)

    def delete(self, resource: str, namespace: str, name: str, grace_seconds: int | None = None) -> Obj:
        """Deletes, or starts a graceful deletion (see the module docstring). Returns the object as it
        is after the call (with deletionTimestamp set when the deletion is pending)."""
        current = self._current(resource, namespace, name)
        meta = current["metadata"]
        graceful = resource == "pods" and self._pod_needs_kubelet(current, grace_seconds)
        if not meta.get("finalizers") and not graceful:
            self._remove(resource, current)
            return copy_obj(current)  # type: ignore[no-any-return]
        if meta.get("deletionTimestamp"):
            return copy_obj(current)  # type: ignore[no-any-return]

        marked: Obj = copy_obj(current)
        marked["metadata"]["deletionTimestamp"] = now_rfc3339(self._clock)
        if resource == "pods":
            marked["metadata"]["deletionGracePeriodSeconds"] = self._grace(current, grace_seconds)
        return self._replace(resource, current, marked, marking=True)

    def finalize_delete(self, resource: str, namespace: str, name: str) -> None:
        """Called by the kubelet once a terminating pod's containers are stopped: removes it for good
        (unless finalizers remain, in which case it goes when they are emptied). No-op if gone."""
        obj = self._objects.get(resource, {}).get((namespace, name))
        if obj is None:
            return
        if not obj["metadata"].get("finalizers"):
            self._remove(resource, obj)

    # --- watching ----------------------------------------------------------------------------------

    def watch(
        self,
        resource: str,
        namespace: str | None,
        since_rv: str = "",
        label_selector: str = "",
        field_selector: str = "",
        *,
        queue_size: int | None = None,
    ) -> Watch:
        """Opens a watch (see the module docstring). Raises Gone for a too-old version."""
        match = matcher(resource, label_selector, field_selector)
        watch = Watch(self, resource, namespace, match, queue_size or self._watch_queue)
        if since_rv in ("", "0"):
            bucket = self._objects.get(resource, {})
            for key in sorted(bucket):
                if watch._visible(bucket[key]):
                    watch._put(("ADDED", bucket[key]), replay=True)
        else:
            rv = _parse_rv(since_rv)
            if rv < self._compacted:
                raise Gone(f"too old resource version: {rv} ({self._compacted + 1})")
            for record in self._history:
                if record.rv > rv and record.resource == resource:
                    watch._offer(record, replay=True)
        if not watch.closed:
            self._watches.add(watch)
        return watch

    def close_watches(self, resource: str | None = None) -> int:
        """Ends every open watch (of one resource, or all): the 'dropped watches' fault. Returns how many."""
        victims = [w for w in self._watches if resource is None or w.resource == resource]
        for w in victims:
            w.close()
        return len(victims)

    @property
    def open_watches(self) -> int:
        return len(self._watches)

    def subscribe(self, resource: str, callback: Callback) -> Callable[[], None]:
        callbacks = self._subscribers.setdefault(resource, [])
        callbacks.append(callback)

        def unsubscribe() -> None:
            if callback in callbacks:
                callbacks.remove(callback)

        return unsubscribe

    # --- internals ---------------------------------------------------------------------------------

    def _current(self, resource: str, namespace: str, name: str) -> Obj:
        obj = self._objects.get(resource, {}).get((namespace, name))
        if obj is None:
            raise NotFound(resource, name)
        return obj

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _replace(self, resource: str, current: Obj, new: Obj, *, marking: bool = False, adopt: bool = False) -> Obj:
        old_meta, meta = current["metadata"], new.setdefault("metadata", {})
        kept_fields: tuple[str, ...] = ("uid", "creationTimestamp", "name")
        if not marking:
            kept_fields += ("deletionTimestamp", "deletionGracePeriodSeconds")
        for kept in kept_fields:
            if kept in old_meta:
                meta[kept] = old_meta[kept]
            else:
                meta.pop(kept, None)
        if resource not in CLUSTER_SCOPED:
            meta["namespace"] = old_meta.get("namespace", "")
        meta["generation"] = old_meta.get("generation", 1) + (1 if _spec_changed(current, new) else 0)
        meta["resourceVersion"] = self._next_rv()
        key = (meta.get("namespace", "") if resource not in CLUSTER_SCOPED else "", meta["name"])
        self._objects[resource][key] = new
        self._emit(resource, "MODIFIED", new, current)
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and not self._awaits_kubelet(resource, new):
            self._remove(resource, new)
        return new if adopt else copy_obj(new)

    def _remove(self, resource: str, obj: Obj) -> None:
        meta = obj["metadata"]
        key = ("" if resource in CLUSTER_SCOPED else meta.get("namespace", ""), meta["name"])
        del self._objects[resource][key]
        gone: Obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": self._next_rv()}}  # the rest shared
        self._emit(resource, "DELETED", gone, obj)

    def _emit(self, resource: str, type_: str, new: Obj, old: Obj | None) -> None:
        record = _Record(self._rv, resource, type_, new, old)
        if len(self._history) == self._history.maxlen:
            self._compacted = self._history[0].rv
        self._history.append(record)
        for watch in [w for w in self._watches if w.resource == resource]:
            watch._offer(record)
        for callback in list(self._subscribers.get(resource, ())):
            callback(type_, new, old)

    @staticmethod
    def _grace(pod: Obj, grace_seconds: int | None) -> int:
        if grace_seconds is not None:
            return grace_seconds
        return int(pod.get("spec", {}).get("terminationGracePeriodSeconds", 30))

    def _pod_needs_kubelet(self, pod: Obj, grace_seconds: int | None) -> bool:
        """A running pod deleted gracefully waits for its kubelet to stop it."""
        if self._grace(pod, grace_seconds) <= 0:
            return False
        return bool(pod.get("spec", {}).get("nodeName")) and (
            pod.get("status", {}).get("phase") not in _TERMINAL_PHASES
        )

    def _awaits_kubelet(self, resource: str, obj: Obj) -> bool:
        if resource != "pods":
            return False
        return bool(obj.get("spec", {}).get("nodeName")) and obj.get("status", {}).get("phase") not in _TERMINAL_PHASES


def _spec_changed(old: Obj, new: Obj) -> bool:
    ignored = ("metadata", "status", "resourceVersion")
    return any(
        (a := old.get(k)) is not (b := new.get(k)) and a != b for k in set(old) | set(new) if k not in ignored
    )


def _parse_rv(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise BadRequest(f"invalid resource version: {text!r}") from None
