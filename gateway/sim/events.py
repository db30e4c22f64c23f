"""Events as Kubernetes components record them: one Event object per (object, type, reason, message),
whose `count` and `lastTimestamp` grow when the same thing happens again (client-go's aggregation)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from gateway.sim.errors import NotFound
from gateway.sim.podstatus import now
from gateway.sim.store import ObjectStore

Obj = Mapping[str, Any]
_KEPT_KEYS = 4096


class EventRecorder:
    """Writes Events into the store as `component` (e.g. "kubelet", "default-scheduler") on `host`."""

    def __init__(self, store: ObjectStore, component: str, clock: Callable[[], datetime] | None = None) -> None:
        self._store = store
        self._component = component
        self._clock = clock
        self._names: OrderedDict[tuple[str, ...], tuple[str, str]] = OrderedDict()

    def record(
        self, involved: Obj, kind: str, reason: str, message: str, *, field_path: str = "", host: str = ""
    ) -> None:
        """`involved` is the object (or a dict with kind, metadata.name/namespace/uid); `kind` Normal or Warning."""
        meta = involved.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        key = (meta.get("uid", ""), field_path, kind, reason, message, host)
        at = now(self._clock)
        known = self._names.get(key)
        if known is not None:
            self._names.move_to_end(key)
            try:
                self._store.mutate("events", known[0], known[1], lambda e: _repeat(e, at))
                return
            except NotFound:
                del self._names[key]
        name = f"{meta.get('name', 'unknown')}.{time.time_ns():x}"
        self._store.create(
            "events", self._event(involved, namespace, name, kind, reason, message, field_path, host, at), adopt=True
        )
        self._names[key] = (namespace, name)
        if len(self._names) > _KEPT_KEYS:
            self._names.popitem(last=False)

    def _event(
        self,
        involved: Obj,
        namespace: str,
        name: str,
        kind: str,
        reason: str,
        message: str,
        field_path: str,
        host: str,
        at: str,
    ) -> dict[str, Any]:
        meta = involved.get("metadata") or {}
        reference = {
            "kind": involved.get("kind", "Pod"),
            "namespace": meta.get("namespace", ""),
            "name": meta.get("name", ""),
            "uid": meta.get("uid", ""),
            "apiVersion": involved.get("apiVersion", "v1"),
            "resourceVersion": meta.get("resourceVersion", ""),
        }
        if field_path:
            reference["fieldPath"] = field_path
        source = {"component": self._component, **({"host": host} if host else {})}
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": reference,
            "reason": reason,
            "message": message,
            "type": kind,
            "count": 1,
            "firstTimestamp": at,
            "lastTimestamp": at,
            "source": source,
            "reportingComponent": self._component,
            "reportingInstance": host,
            "eventTime": None,
        }


def _repeat(event: dict[str, Any], at: str) -> None:
    event["count"] = int(event.get("count", 1)) + 1
    event["lastTimestamp"] = at
