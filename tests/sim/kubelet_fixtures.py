"""Shared helpers for scheduler/kubelet tests: a store with nodes, a started scheduler and kubelet, waits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from gateway.sim.kubelet import Kubelet
from gateway.sim.scheduler import Scheduler
from gateway.sim.store import ObjectStore

Obj = dict[str, Any]
FAST = {"restartBackoffSeconds": 0.05, "imagePullBackoffSeconds": 0.05, "missingImages": ["ghcr.io/acme/missing*"]}


def node(name: str, runtime: str = "process", *, gpus: int = 0, taints: list[Obj] | None = None, **labels: str) -> Obj:
    allocatable = {"cpu": "4", "memory": "8Gi", "pods": "110"} | ({"nvidia.com/gpu": str(gpus)} if gpus else {})
    return {
        "metadata": {"name": name, "labels": labels, "annotations": {"sim.podgate.io/runtime": runtime}},
        "spec": {"taints": taints or []},
        "status": {"allocatable": allocatable, "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]},
    }


def pod(name: str, *containers: Obj, ns: str = "default", **spec: Any) -> Obj:
    annotations = spec.pop("annotations", {})
    spec.setdefault("restartPolicy", "Never")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    return {
        "metadata": {"name": name, "namespace": ns, "annotations": annotations},
        "spec": {"containers": list(containers), **spec},
        "status": {"phase": "Pending"},
    }


def sh(name: str, script: str, **fields: Any) -> Obj:
    return {"name": name, "image": "busybox:1.36", "command": ["sh", "-c", script], **fields}


@contextlib.asynccontextmanager
async def start(
    store: ObjectStore, nodes: list[Obj], config: Obj | None = None
) -> AsyncIterator[tuple[Scheduler, Kubelet]]:
    for n in nodes:
        store.create("nodes", n)
    scheduler = Scheduler(store)
    kubelet = Kubelet(store, [n["metadata"]["name"] for n in nodes], {**FAST, **(config or {})})
    await scheduler.start()
    await kubelet.start()
    try:
        yield scheduler, kubelet
    finally:
        await kubelet.stop()
        await scheduler.stop()



@pytest.fixture
async def store() -> ObjectStore:
    """An empty object store (a test module imports this fixture as `store as store`)."""
    return ObjectStore()


@pytest.fixture
async def kubelet(store: ObjectStore) -> AsyncIterator[Kubelet]:
    """A scheduler and a kubelet with one process-runtime node, node-1, on `store`."""
    async with start(store, [node("node-1")]) as (_, k):
        yield k

async def wait_pod(
    store: ObjectStore, name: str, ready: Callable[[Obj], bool], ns: str = "default", seconds: float = 15
) -> Obj:
    """The pod once `ready(pod)` holds, watching (no polling); fails with the last version seen."""
    watch = store.watch("pods", ns, field_selector=f"metadata.name={name}")
    last: Obj | None = None
    try:
        async with asyncio.timeout(seconds):
            async for kind, obj in watch:
                last = obj
                if kind != "DELETED" and ready(obj):
                    return obj
    except TimeoutError:
        pass
    finally:
        watch.close()
    raise AssertionError(f"pod {name} never got there; last seen: {last}")


async def wait_gone(store: ObjectStore, name: str, ns: str = "default", seconds: float = 15) -> None:
    watch = store.watch("pods", ns, field_selector=f"metadata.name={name}")
    try:
        async with asyncio.timeout(seconds):
            if not store.exists("pods", ns, name):
                return
            async for kind, _ in watch:
                if kind == "DELETED":
                    return
    finally:
        watch.close()


def phase(*phases: str) -> Callable[[Obj], bool]:
    return lambda p: p.get("status", {}).get("phase") in phases


def events(store: ObjectStore, name: str, ns: str = "default") -> list[tuple[str, str, str]]:
    items, _ = store.list("events", ns)
    return [(e["type"], e["reason"], e["message"]) for e in items if e["involvedObject"]["name"] == name]


def waiting_reason(p: Obj, container: int = 0) -> str | None:
    statuses = p.get("status", {}).get("containerStatuses") or []
    if len(statuses) <= container:
        return None
    reason: str | None = statuses[container]["state"].get("waiting", {}).get("reason")
    return reason


async def read_logs(kubelet: Kubelet, name: str, container: str, **options: Any) -> str:
    return b"".join([c async for c in kubelet.logs("default", name, container, **options)]).decode()


async def first_line(kubelet: Kubelet, name: str, container: str, seconds: float = 10) -> bytes:
    """The container's first log line, following the log until it comes."""
    async with asyncio.timeout(seconds):
        async for line in kubelet.logs("default", name, container, follow=True):
            return line
    raise AssertionError(f"{name}/{container} ended without a line")
