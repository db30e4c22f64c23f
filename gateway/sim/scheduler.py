"""The simulated kube-scheduler: binds pending pods to nodes, one at a time, in arrival order.

It follows pods and nodes through the store's in-process subscription (no polling) and keeps node usage
up to date incrementally, so scheduling a pod costs O(nodes), not O(pods). A pod that fits nowhere gets
`PodScheduled=False/Unschedulable` and a FailedScheduling event (see `fit.py` for the wording) and waits
in an unschedulable set until something could change the answer: a node added or changed, or a bound
pod deleted or finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from gateway.sim.errors import NotFound
from gateway.sim.events import EventRecorder
from gateway.sim.fit import TERMINAL_PHASES, Resources, add_usage, choose_node, node_allocatable, pod_requests
from gateway.sim.podstatus import now
from gateway.sim.quantity import QuantityError
from gateway.sim.store import ObjectStore

log = logging.getLogger(__name__)
Obj = dict[str, Any]
Key = tuple[str, str]
SCHEDULER_NAME = "default-scheduler"


def _key(pod: Obj) -> Key:
    return pod["metadata"].get("namespace", ""), pod["metadata"]["name"]


def _wants_scheduling(pod: Obj, name: str) -> bool:
    spec, meta = pod.get("spec") or {}, pod["metadata"]
    return (
        not spec.get("nodeName")
        and spec.get("schedulerName", SCHEDULER_NAME) == name
        and not meta.get("deletionTimestamp")
        and (pod.get("status") or {}).get("phase", "Pending") == "Pending"
    )


class Scheduler:
    def __init__(
        self, store: ObjectStore, clock: Callable[[], datetime] | None = None, *, name: str = SCHEDULER_NAME
    ) -> None:
        self._store = store
        self._clock = clock
        self.name = name
        self._events = EventRecorder(store, name, clock)
        self._nodes: dict[str, Obj] = {}
        self._allocatable: dict[str, Resources] = {}
        self._latest: dict[Key, Obj] = {}  # the stored (read-only) version of each pod waiting to be scheduled
        self._usage: dict[str, Resources] = {}
        self._bound: dict[Key, tuple[str, Resources]] = {}
        self._active: OrderedDict[Key, None] = OrderedDict()
        self._unschedulable: set[Key] = set()
        self._wakeup = asyncio.Event()
        self._unsubscribe: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        nodes, _ = self._store.list("nodes", None)
        for node in nodes:
            self._set_node(node)
        pods, _ = self._store.list("pods", None)
        for pod in pods:
            self._track(pod)
        self._unsubscribe = [self._store.subscribe("pods", self._on_pod), self._store.subscribe("nodes", self._on_node)]
        self._task = asyncio.create_task(self._loop(), name=f"scheduler {self.name}")

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # --- following the store (synchronous callbacks: only bookkeeping, no writes) -----------------

    def _on_pod(self, kind: str, pod: Obj, old: Obj | None) -> None:
        if old is not None and old.get("spec") != pod.get("spec"):
            self._unschedulable.discard(_key(pod))  # e.g. a toleration added: worth another try
        freed = self._untrack(_key(pod)) if kind == "DELETED" or _terminal(pod) else False
        if kind != "DELETED":
            self._track(pod)
        if freed:
            self._retry_unschedulable()

    def _on_node(self, kind: str, node: Obj, old: Obj | None) -> None:
        name = node["metadata"]["name"]
        if kind == "DELETED":
            self._nodes.pop(name, None)
            self._allocatable.pop(name, None)
            return
        self._set_node(node)
        if old is None or _schedulable_shape(old) != _schedulable_shape(node):
            self._retry_unschedulable()

    def _set_node(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        self._nodes[name] = node
        try:
            self._allocatable[name] = node_allocatable(node)
        except QuantityError:
            log.warning("node %s has an invalid allocatable quantity; nothing fits it", name)
            self._allocatable[name] = {}

    def _track(self, pod: Obj) -> None:
        key = _key(pod)
        self._latest.pop(key, None)
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            self._unschedulable.discard(key)
            self._active.pop(key, None)
            if not _terminal(pod) and key not in self._bound:
                try:
                    requests = pod_requests(pod["spec"])
                except QuantityError:
                    return
                self._bound[key] = (node, requests)
                add_usage(self._usage.setdefault(node, {}), requests)
        elif _wants_scheduling(pod, self.name):
            self._latest[key] = pod
            if key not in self._unschedulable:
                self._active[key] = None
                self._wakeup.set()
        else:
            self._unschedulable.discard(key)
            self._active.pop(key, None)

    def _untrack(self, key: Key) -> bool:
        self._latest.pop(key, None)
        self._unschedulable.discard(key)
        self._active.pop(key, None)
        bound = self._bound.pop(key, None)
        if bound is None:
            return False
        add_usage(self._usage.setdefault(bound[0], {}), bound[1], -1)
        return True

    def _retry_unschedulable(self) -> None:
        for key in sorted(self._unschedulable):
            self._active[key] = None
        self._unschedulable.clear()
        if self._active:
            self._wakeup.set()

    # --- the scheduling loop -----------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch = 0
            while self._active:
                key, _ = self._active.popitem(last=False)
                try:
                    self._schedule(key)
                except Exception:
                    log.exception("scheduling %s/%s failed", *key)
                batch += 1
                if batch % 100 == 0:
                    await asyncio.sleep(0)  # let the API server breathe under a burst of creates

    def _schedule(self, key: Key) -> None:
        pod = self._latest.get(key)
        if pod is None or not _wants_scheduling(pod, self.name):
            return
        decision = choose_node(pod, self._nodes.values(), self._usage, self._allocatable)
        with contextlib.suppress(NotFound):  # deleted meanwhile
            if decision.node is None:
                self._unschedulable.add(key)
                self._mark_unschedulable(pod, decision.message)
            else:
                self._bind(pod, decision.node)

    def _bind(self, pod: Obj, node: str) -> None:
        at = now(self._clock)

        def bind(obj: Obj) -> None:
            obj["spec"]["nodeName"] = node
            _set_scheduled(
                obj, {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": at}
            )

        namespace, name = _key(pod)
        bound = self._store.mutate("pods", namespace, name, bind)
        self._events.record(bound, "Normal", "Scheduled", f"Successfully assigned {namespace}/{name} to {node}")

    def _mark_unschedulable(self, pod: Obj, message: str) -> None:
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "lastProbeTime": None,
            "lastTransitionTime": now(self._clock),
            "reason": "Unschedulable",
            "message": message,
        }
        current = next(
            (c for c in (pod.get("status") or {}).get("conditions") or [] if c["type"] == "PodScheduled"), None
        )
        if current is None or current.get("message") != message or current.get("status") != "False":
            namespace, name = _key(pod)
            pod = self._store.mutate("pods", namespace, name, lambda obj: _set_scheduled(obj, condition))
        self._events.record(pod, "Warning", "FailedScheduling", message)


def _terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in TERMINAL_PHASES


def _schedulable_shape(node: Obj) -> tuple[Any, ...]:
    """What of a node can change a scheduling answer (not heartbeats)."""
    return (
        (node["metadata"].get("labels") or {}),
        (node.get("spec") or {}).get("taints"),
        (node.get("spec") or {}).get("unschedulable"),
        (node.get("status") or {}).get("allocatable"),
    )


def _set_scheduled(pod: Obj, condition: Obj) -> None:
    status = pod.setdefault("status", {})
    others = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
    status["conditions"] = [*others, condition]
    status.setdefault("phase", "Pending")
