"""A pod's status as the kubelet reports it: container states, conditions and phase (no I/O).

`PodState` is the kubelet's working copy of one pod; runtimes change its `ContainerState`s and call
`render()` for the `status` to store. The wording (reasons, messages) follows the real kubelet.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.sim.store import now_rfc3339

Obj = dict[str, Any]
Clock = Callable[[], datetime]
MAX_TERMINATION_MESSAGE = 4096
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"


def now(clock: Clock | None = None) -> str:
    return now_rfc3339(clock)


def image_id(image: str) -> str:
    """A stable fake digest, so `imageID` looks like a pulled image's."""
    name = image.split("@", 1)[0].rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    if "/" not in name:
        name = f"docker.io/library/{name}"
    return f"{name}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


@dataclass
class ContainerState:
    """One container's state, in the shape of a v1.ContainerStatus."""

    name: str
    image: str
    init: bool = False
    state: Obj = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: Obj = field(default_factory=dict)
    restart_count: int = 0
    container_id: str = ""
    pull_policy: str = "IfNotPresent"
    ready: bool | None = None  # the readiness probe's verdict; None: no probe, running means ready

    @property
    def running(self) -> bool:
        return "running" in self.state

    @property
    def serving(self) -> bool:
        """Running and, with a readiness probe, passing it."""
        return self.running and not self.init and self.ready is not False

    @property
    def terminated(self) -> Obj | None:
        result: Obj | None = self.state.get("terminated")
        return result

    def wait(self, reason: str, message: str = "") -> None:
        self.state = {"waiting": {"reason": reason, **({"message": message} if message else {})}}

    def start(self, at: str) -> None:
        self.container_id = f"containerd://{uuid.uuid4().hex}{uuid.uuid4().hex}"
        self.state = {"running": {"startedAt": at}}

    def finish(self, exit_code: int, reason: str, at: str, message: str = "", signal: int | None = None) -> None:
        started = (self.state.get("running") or {}).get("startedAt", at)
        terminated: Obj = {"exitCode": exit_code, "reason": reason, "startedAt": started, "finishedAt": at}
        if message:
            terminated["message"] = message[-MAX_TERMINATION_MESSAGE:]
        if signal:
            terminated["signal"] = signal
        if self.container_id:
            terminated["containerID"] = self.container_id
        self.state = {"terminated": terminated}

    def restart(self) -> None:
        """Keeps the ended run as lastState; the next run counts one restart."""
        self.last_state = self.state
        self.restart_count += 1

    def render(self) -> Obj:
        status: Obj = {
            "name": self.name,
            "image": self.image,
            "imageID": image_id(self.image) if self.container_id else "",
            "ready": self.serving or bool(self.init and self.terminated and not self.terminated["exitCode"]),
            "started": self.running,
            "restartCount": self.restart_count,
            "state": self.state,
            "lastState": self.last_state,
        }
        if self.container_id:
            status["containerID"] = self.container_id
        return status


def _container_state(container: Mapping[str, Any], *, init: bool) -> ContainerState:
    image = str(container.get("image", ""))
    return ContainerState(
        container["name"], image, init=init, pull_policy=container.get("imagePullPolicy") or default_pull_policy(image)
    )


def default_pull_policy(image: str) -> str:
    """The API server's default: Always for :latest or no tag, else IfNotPresent."""
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    return "Always" if ":" not in last or last.endswith(":latest") else "IfNotPresent"


def pulled_events(image: str, policy: str) -> list[tuple[str, str]]:
    """(reason, message) of the kubelet's events for an image that is there (never really pulled here)."""
    if policy == "Always":
        took = "in 0s (0s including waiting). Image size: 0 bytes."
        return [("Pulling", f'Pulling image "{image}"'), ("Pulled", f'Successfully pulled image "{image}" {took}')]
    return [("Pulled", f'Container image "{image}" already present on machine')]


def exit_reason(code: int, oom_killed: bool, start_error: str | None) -> str:
    if start_error:
        return "StartError"
    if oom_killed:
        return "OOMKilled"
    return "Completed" if code == 0 else "Error"


@dataclass
class PodState:
    """The kubelet's view of one pod; `render()` turns it into `status`."""

    namespace: str
    name: str
    uid: str
    node: str
    host_ip: str
    pod_ip: str
    containers: list[ContainerState]
    init_containers: list[ContainerState]
    start_time: str = ""
    phase: str = "Pending"
    reason: str = ""
    message: str = ""
    initialized: bool = False
    transitions: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_pod(cls, pod: Mapping[str, Any], host_ip: str, pod_ip: str) -> PodState:
        spec = pod.get("spec") or {}
        meta = pod["metadata"]
        init = [_container_state(c, init=True) for c in spec.get("initContainers") or []]
        main = [_container_state(c, init=False) for c in spec.get("containers") or []]
        if init:
            for c in [*init, *main]:
                c.wait("PodInitializing")
        return cls(
            meta.get("namespace", ""),
            meta["name"],
            meta.get("uid", ""),
            spec.get("nodeName", ""),
            host_ip,
            pod_ip,
            main,
            init,
            initialized=not init,
        )

    @property
    def finished(self) -> bool:
        return self.phase in ("Succeeded", "Failed")

    def container(self, name: str) -> ContainerState | None:
        return next((c for c in [*self.init_containers, *self.containers] if c.name == name), None)

    def _conditions(self, at: str) -> list[Obj]:
        ready = not self.finished and all(c.serving for c in self.containers)
        not_ready = "PodCompleted" if self.finished else "ContainersNotReady"
        waiting = [c.name for c in self.containers if not c.serving]
        pending_init = [c.name for c in self.init_containers if not (c.terminated and c.terminated["exitCode"] == 0)]
        values = [
            ("PodReadyToStartContainers", bool(self.start_time) and not self.finished, "", ""),
            (
                "Initialized",
                self.initialized,
                "" if self.initialized else "ContainersNotInitialized",
                "" if self.initialized else f"containers with incomplete status: [{' '.join(pending_init)}]",
            ),
            (
                "Ready",
                ready,
                "" if ready else not_ready,
                "" if ready or self.finished else f"containers with unready status: [{' '.join(waiting)}]",
            ),
            (
                "ContainersReady",
                ready,
                "" if ready else not_ready,
                "" if ready or self.finished else f"containers with unready status: [{' '.join(waiting)}]",
            ),
        ]
        conditions = []
        for kind, value, reason, message in values:
            status = "True" if value else "False"
            key = f"{kind}={status}"
            since = self.transitions.setdefault(key, at)
            for other in ("True", "False"):
                if other != status:
                    self.transitions.pop(f"{kind}={other}", None)
            condition: Obj = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": since}
            if reason:
                condition["reason"] = reason
            if message:
                condition["message"] = message
            conditions.append(condition)
        return conditions

    def render(self, previous: Mapping[str, Any], at: str) -> Obj:
        """The new `status`, keeping what others own (the scheduler's PodScheduled, qosClass)."""
        scheduled = [c for c in previous.get("conditions") or [] if c.get("type") == "PodScheduled"]
        status: Obj = {
            "phase": self.phase,
            "conditions": [*self._conditions(at), *scheduled],
            "hostIP": self.host_ip,
            "hostIPs": [{"ip": self.host_ip}],
            "containerStatuses": [c.render() for c in self.containers],
        }
        if self.pod_ip:
            status.update(podIP=self.pod_ip, podIPs=[{"ip": self.pod_ip}])
        if self.start_time:
            status["startTime"] = self.start_time
        if self.init_containers:
            status["initContainerStatuses"] = [c.render() for c in self.init_containers]
        if self.reason:
            status["reason"] = self.reason
        if self.message:
            status["message"] = self.message
        if "qosClass" in previous:
            status["qosClass"] = previous["qosClass"]
        return status

    def settle_phase(self, restart_policy: str) -> None:
        """Running while a container runs; Succeeded/Failed once none will run again."""
        if self.finished:
            return
        terminated = [c.terminated for c in self.containers]
        if self.initialized and all(terminated):
            codes = [t["exitCode"] for t in terminated if t is not None]
            if restart_policy == "Never" or (restart_policy == "OnFailure" and not any(codes)):
                self.phase = "Succeeded" if not any(codes) else "Failed"
                return
        if self.initialized and any(c.running or c.terminated or c.restart_count for c in self.containers):
            self.phase = "Running"
