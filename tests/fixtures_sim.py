"""Fixtures that start the local Kubernetes simulator (gateway.sim) for any test.

- `sim_world` (async tests): a SimWorld of clusters/local.yaml running in the test's own event loop —
  what the async gateway talks to over HTTPS.
- `sim_thread` (sync tests): the same world on its own event loop in a background thread, so blocking
  clients (the official `kubernetes` client, kubectl) can call it; `sim_thread.call(fn, *args)` runs
  `fn` (sync or async) on the simulator's loop and returns its result.
- `kube_client(cluster)`: a `kubernetes.client.ApiClient` for a cluster's written kubeconfig (never the
  global default configuration). Close it (`with kube_client(c) as api:`).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from gateway.sim.cluster import SimCluster, SimWorld

ROOT = Path(__file__).resolve().parent.parent
LOCAL_CLUSTERS = ROOT / "clusters" / "local.yaml"


class SimThread:
    """A SimWorld running on a private event loop in a daemon thread."""

    def __init__(self, world: SimWorld) -> None:
        self.world = world
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="podgate-sim", daemon=True)

    @property
    def clusters(self) -> dict[str, SimCluster]:
        return self.world.clusters

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        async def run() -> Any:
            result = fn(*args, **kwargs)
            return await result if inspect.isawaitable(result) else result

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=60)

    def __enter__(self) -> SimThread:
        self._thread.start()
        try:
            self.call(self.world.start)
        except BaseException:
            self._shutdown()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.call(self.world.stop)
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        async def cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel_rest(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)
        self.loop.close()


def kube_client(cluster: SimCluster, kubeconfig: Path | None = None) -> k8s_client.ApiClient:
    return k8s_config.new_client_from_config(str(kubeconfig or cluster.kubeconfig_path))


@pytest.fixture
async def sim_world(tmp_path: Path) -> AsyncIterator[SimWorld]:
    async with SimWorld.from_file(LOCAL_CLUSTERS, kubeconfig_dir=tmp_path / "kubeconfigs") as world:
        yield world


@pytest.fixture
def sim_thread(tmp_path: Path) -> Iterator[SimThread]:
    with SimThread(SimWorld.from_file(LOCAL_CLUSTERS, kubeconfig_dir=tmp_path / "kubeconfigs")) as world:
        yield world


@pytest.fixture
def sim_thread_api_only(tmp_path: Path) -> Iterator[SimThread]:
    """The API server alone: no scheduler or kubelet, pods stay Pending (deterministic API tests)."""
    world = SimWorld.from_file(LOCAL_CLUSTERS, kubeconfig_dir=tmp_path / "kubeconfigs", node_side=False)
    with SimThread(world) as running:
        yield running
