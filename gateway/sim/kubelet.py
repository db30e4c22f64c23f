"""The simulated kubelet of one cluster's nodes: runs the pods bound to them and reports their status.

One object serves every node of a cluster (each node keeps its own runtime, pod IP range and failure
state). It follows pods through the store's in-process subscription, never by polling; each pod is run
by a runner of its node's runtime (`runtime/process_pod.py`, `runtime/virtual.py`) and its status is
written back through `ObjectStore.set_status`. It serves what the API server delegates: `logs()` for
`pods/log` and `exec()` for `pods/exec`, and takes node failures from the faults (`fail_node`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, Protocol

from gateway.sim.errors import BadRequest, NotFound
from gateway.sim.events import EventRecorder
from gateway.sim.logstore import ContainerLog, LogOptions, LogStore
from gateway.sim.podstatus import PodState, now
from gateway.sim.runtime.base import ExecError, ExecProcess
from gateway.sim.runtime.config import RuntimeConfig, RuntimeConfigError
from gateway.sim.runtime.process import ProcessRuntime
from gateway.sim.runtime.process_pod import ProcessPod
from gateway.sim.runtime.spec import ApiAccess, wants_api_access
from gateway.sim.runtime.virtual import VirtualPod
from gateway.sim.store import ObjectStore

log = logging.getLogger(__name__)
Obj = dict[str, Any]
Key = tuple[str, str]
RUNTIME_ANNOTATION = "sim.podgate.io/runtime"
RUNTIMES = ("process", "virtual")
TokenMinter = Callable[[str, str], str]  # (namespace, serviceaccount) -> bearer token
_PULLING = ("ErrImagePull", "ImagePullBackOff")
EVICTION_MESSAGE = "The node was low on resource: memory. "


class _Runner(Protocol):
    state: PodState

    def terminate(self, grace: float) -> None: ...

    def kill(self) -> None: ...

    def fail(self, reason: str, message: str, grace: float) -> None: ...

    async def exec(self, container: str, command: list[str], *, stdin: bool, tty: bool) -> ExecProcess: ...


class Kubelet:
    def __init__(
        self,
        store: ObjectStore,
        node_names: list[str],
        runtime_config: Mapping[str, Any] | None = None,
        clock: Callable[[], datetime] | None = None,
        *,
        node_runtimes: Mapping[str, str] | None = None,
    ) -> None:
        self.config = RuntimeConfig.from_mapping(runtime_config)
        self.log_store = LogStore()
        self._store = store
        self._clock = clock
        self._node_names = list(node_names)
        self._node_runtimes = {**self.config.node_runtimes, **(node_runtimes or {})}
        self._events = EventRecorder(store, "kubelet", clock)
        self._pods: dict[Key, _Runner] = {}
        self._retiring: set[_Runner] = set()
        self._failed: set[str] = set()
        self._host_ips: dict[str, str] = {}
        self._pod_ips: dict[str, Iterator[str]] = {}
        self._process: ProcessRuntime | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._running = False
        self._api: tuple[str, int, bytes, TokenMinter] | None = None

    # --- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        for index, name in enumerate(self._node_names):
            node = self._node(name)
            annotations = (node or {}).get("metadata", {}).get("annotations") or {}
            runtime = self._node_runtimes.setdefault(name, annotations.get(RUNTIME_ANNOTATION, "process"))
            if runtime not in RUNTIMES:
                raise RuntimeConfigError(f"node {name}: runtime {runtime!r} is not one of {', '.join(RUNTIMES)}")
            self._host_ips[name] = _internal_ip(node)
            self._pod_ips[name] = _addresses(f"10.244.{index}.")
        if "process" in (self._node_runtimes[n] for n in self._node_names):
            self._process = ProcessRuntime(
                self.config.root_dir, isolate=self.config.isolation, aliases=self.config.aliases
            )
            await self._process.start()
        self._running = True
        self._unsubscribe = self._store.subscribe("pods", self._on_pod)
        pods, _ = self._store.list("pods", None)
        for pod in pods:
            self._handle("ADDED", pod)

    async def stop(self) -> None:
        """Kills every container at once (no status is written) and removes what the runtime made."""
        self._running = False
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        runners = [*self._pods.values(), *self._retiring]
        for runner in runners:
            runner.kill()
        await asyncio.gather(*(_done(r) for r in runners), return_exceptions=True)
        self._pods.clear()
        self._retiring.clear()
        if self._process is not None:
            await self._process.close()
            self._process = None

    def configure_api_access(self, host: str, port: int, ca_pem: bytes, mint_token: TokenMinter) -> None:
        """Gives pods started from now on an in-cluster view of their API server: KUBERNETES_SERVICE_* env
        vars and /var/run/secrets/kubernetes.io/serviceaccount (token from `mint_token(namespace,
        serviceaccount)`, ca.crt, namespace), unless a pod sets automountServiceAccountToken: false."""
        self._api = (host, port, ca_pem, mint_token)

    def fail_node(self, name: str) -> None:
        """The node stops: its containers are killed and it reports nothing more (the faults mark the
        node NotReady and its pods NodeLost); pods bound to it later are not run until `recover_node`."""
        self._failed.add(name)
        for runner in [r for r in self._pods.values() if r.state.node == name]:
            runner.kill()

    def recover_node(self, name: str) -> None:
        self._failed.discard(name)

    def evict(self, namespace: str, name: str, message: str = EVICTION_MESSAGE, grace: float = 0) -> None:
        """Evicts a pod as the kubelet does under node pressure: Failed, reason Evicted, an Evicted event,
        its containers stopped (SIGTERM, SIGKILL after `grace`). NotFound when this kubelet does not run it."""
        runner = self._pods.get((namespace, name))
        if runner is None:
            raise NotFound("pods", name)
        runner.fail("Evicted", message, grace)

    # --- following pods --------------------------------------------------------------------------------

    def _node(self, name: str) -> Obj | None:
        try:
            return self._store.get("nodes", "", name)
        except NotFound:
            return None

    def _on_pod(self, kind: str, pod: Obj, old: Obj | None) -> None:
        """Store callback (inside a mutation): defer the work to the loop, keeping the order of events."""
        if (pod.get("spec") or {}).get("nodeName") in self._host_ips:
            asyncio.get_running_loop().call_soon(self._handle, kind, pod)

    def _handle(self, kind: str, pod: Obj) -> None:
        if not self._running:
            return
        node = (pod.get("spec") or {}).get("nodeName")
        if node not in self._host_ips:
            return
        meta = pod["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        runner = self._pods.get(key)
        if runner is not None and runner.state.uid != meta.get("uid"):
            self._forget(key)
            runner = None
        if kind == "DELETED":
            self._forget(key)
        elif runner is None:
            self._admit(key, pod, node)
        elif meta.get("deletionTimestamp"):
            runner.terminate(float(meta.get("deletionGracePeriodSeconds") or 0))

    def _admit(self, key: Key, pod: Obj, node: str) -> None:
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") or node in self._failed:
            return
        if pod["metadata"].get("deletionTimestamp"):
            self._store.finalize_delete("pods", *key)
            return
        state = PodState.from_pod(pod, self._host_ips[node], next(self._pod_ips[node]))
        if self._node_runtimes.get(node) == "virtual":
            self._pods[key] = VirtualPod(self, pod, state)
        else:
            assert self._process is not None
            self._pods[key] = ProcessPod(self, self._process, pod, state)

    def _forget(self, key: Key) -> None:
        runner = self._pods.pop(key, None)
        if runner is not None:
            runner.kill()
            self._retiring.add(runner)
            _waitable(runner).add_done_callback(lambda _: self._retiring.discard(runner))
        self.log_store.drop_pod(*key)

    # --- services for the runners (see runtime/services.py) ---------------------------------------

    def publish(self, state: PodState) -> bool:
        """Writes the pod's status; False when the pod is gone (or another one of the same name is stored)."""
        pod = self._store.peek("pods", state.namespace, state.name)
        if pod is None or pod["metadata"].get("uid") != state.uid:
            return False
        self._store.set_status("pods", state.namespace, state.name, state.render(pod.get("status") or {}, self.now()))
        return True

    def event(self, state: PodState, kind: str, reason: str, message: str, field_path: str = "") -> None:
        involved = {"kind": "Pod", "metadata": {"name": state.name, "namespace": state.namespace, "uid": state.uid}}
        self._events.record(involved, kind, reason, message, field_path=field_path, host=state.node)

    def lookup(self, resource: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self._store.peek(resource, namespace, name)

    def now(self) -> str:
        return now(self._clock)

    def api_access(self, state: PodState, pod: Mapping[str, Any]) -> ApiAccess | None:
        if self._api is None:
            return None
        host, port, ca_pem, mint = self._api
        account = (pod.get("spec") or {}).get("serviceAccountName") or "default"
        try:
            token = mint(state.namespace, account) if wants_api_access(pod) else None
        except Exception as e:  # e.g. the ServiceAccount does not exist: the pod runs without a token
            self.event(state, "Warning", "FailedMount", f"MountVolume.SetUp failed for volume kube-api-access: {e}")
            return None
        return ApiAccess(host, port, ca_pem, token, state.namespace)

    def finished(self, state: PodState) -> None:
        """A runner stopped everything: a terminating pod can now go (the store may have removed it already)."""
        pod = self._store.peek("pods", state.namespace, state.name)
        if pod is not None and pod["metadata"].get("uid") == state.uid and pod["metadata"].get("deletionTimestamp"):
            self._store.finalize_delete("pods", state.namespace, state.name)

    # --- pods/log and pods/exec ----------------------------------------------------------------------

    def logs(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        follow: bool = False,
        timestamps: bool = False,
        since_time: datetime | None = None,
        since_seconds: int | None = None,
        tail_lines: int | None = None,
        limit_bytes: int | None = None,
        previous: bool = False,
    ) -> AsyncIterator[bytes]:
        """The container's log as the kubelet serves it; BadRequest, raised here and not at the first chunk,
        for a container with no log yet (the API server can still answer it as a Status)."""
        output = self._container_log(namespace, pod, container, previous)
        since = None
        if since_time is not None:
            since = int(since_time.timestamp() * 1_000_000) * 1000
        elif since_seconds is not None:
            since = time.time_ns() - since_seconds * 1_000_000_000
        return output.read(LogOptions(follow, timestamps, since, tail_lines, limit_bytes))

    def _container_log(self, namespace: str, pod: str, container: str, previous: bool) -> ContainerLog:
        output = self.log_store.get(namespace, pod, container, previous)
        if output is not None:
            return output
        if previous:
            raise BadRequest(f'previous terminated container "{container}" in pod "{pod}" not found')
        runner = self._pods.get((namespace, pod))
        cs = runner.state.container(container) if runner is not None else None
        reason = (
            next(iter(cs.state.values())).get("reason", "ContainerCreating") if cs is not None else "ContainerCreating"
        )
        if reason in _PULLING:
            reason = "trying and failing to pull image"
        raise BadRequest(f'container "{container}" in pod "{pod}" is waiting to start: {reason}')

    async def exec(
        self, namespace: str, pod: str, container: str, command: list[str], stdin: bool, tty: bool
    ) -> ExecProcess:
        """Runs `command` in the container's namespaces; BadRequest when it is not running."""
        runner = self._pods.get((namespace, pod))
        if runner is None:
            raise BadRequest(f'unable to upgrade connection: container not found ("{container}")')
        try:
            return await runner.exec(container, command, stdin=stdin, tty=tty)
        except ExecError as e:
            raise BadRequest(f"unable to upgrade connection: {e}") from e


def _addresses(prefix: str) -> Iterator[str]:
    """Pod IPs of one node's /24, reused round-robin."""
    return (f"{prefix}{n}" for n in itertools.cycle(range(2, 255)))


def _internal_ip(node: Obj | None) -> str:
    for address in ((node or {}).get("status") or {}).get("addresses") or []:
        if address.get("type") == "InternalIP":
            return str(address.get("address"))
    return "127.0.0.1"


def _waitable(runner: _Runner) -> asyncio.Future[None]:
    """What completes when the runner has cleaned up: a ProcessPod's task, a VirtualPod's future."""
    waitable: asyncio.Future[None] = getattr(runner, "task", None) or runner.done  # type: ignore[attr-defined]
    return waitable


async def _done(runner: _Runner) -> None:
    await _waitable(runner)
