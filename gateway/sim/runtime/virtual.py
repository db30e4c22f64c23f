"""The `virtual` runtime: pods whose containers run no process, for benchmarks of thousands of pods.

Each container "runs" for a while and ends as its pod's annotations say (a per-container value wins
with the container name appended, e.g. `sim.podgate.io/exit-code.main`):

    sim.podgate.io/duration              seconds the container runs (float, default 0)
    sim.podgate.io/exit-code             its exit code (default 0)
    sim.podgate.io/log-lines             its log, one line per line, spread evenly over its duration
    sim.podgate.io/termination-message   what it leaves in its terminationMessagePath
    sim.podgate.io/xcom                  what `cat /airflow/xcom/return.json` shows through exec

No task per pod: timers are `loop.call_later` handles (the event loop's heap), so 10,000 pods cost
10,000 small objects. Exec is emulated for `cat FILE` (directly or via `sh -c`), which is what reading an
XCom or a termination message needs; other commands exit 126 and say why.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import AsyncIterator, Mapping
from typing import Any

from gateway.sim.podstatus import DEADLINE_MESSAGE, ContainerState, PodState, pulled_events
from gateway.sim.runtime.base import ExecError, ExecProcess
from gateway.sim.runtime.services import PodServices, field_path

Obj = Mapping[str, Any]
PREFIX = "sim.podgate.io/"
XCOM_PATH = "/airflow/xcom/return.json"
SIGTERM_EXIT = 143


class VirtualPod:
    """One pod on a virtual node. Same controls as `ProcessPod`: terminate, kill, exec, done."""

    def __init__(self, services: PodServices, pod: Obj, state: PodState) -> None:
        self.pod = pod
        self.state = state
        self._services = services
        self._loop = asyncio.get_running_loop()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._stopped = False
        self._silent = False
        self.done: asyncio.Future[None] = self._loop.create_future()
        self._loop.call_soon(self._begin_unless_stopped)

    def _annotation(self, key: str, container: str, default: str = "") -> str:
        annotations = (self.pod.get("metadata") or {}).get("annotations") or {}
        return str(annotations.get(f"{PREFIX}{key}.{container}", annotations.get(f"{PREFIX}{key}", default)))

    def _event(self, kind: str, reason: str, message: str, container: str = "") -> None:
        if self._services.config.events:
            path = field_path(self.state, container) if container else ""
            self._services.event(self.state, kind, reason, message, path)

    def _publish(self) -> None:
        if not self._silent and not self._services.publish(self.state):
            self.kill()

    @property
    def _policy(self) -> str:
        return str((self.pod.get("spec") or {}).get("restartPolicy", "Always"))

    # --- the pod's life ------------------------------------------------------------------------------

    def _begin_unless_stopped(self) -> None:
        if not self.done.done():
            self._begin()

    def _begin(self) -> None:
        self.state.start_time = self._services.now()
        deadline = (self.pod.get("spec") or {}).get("activeDeadlineSeconds")
        if deadline:
            self._timers["deadline"] = self._loop.call_later(float(deadline), self._deadline_exceeded)
        missing = [
            c
            for c in [*self.state.init_containers, *self.state.containers]
            if self._services.config.image_missing(c.image)
        ]
        if missing:
            for cs in missing:
                why = f'rpc error: code = NotFound desc = failed to pull and unpack image "{cs.image}": not found'
                self._event("Warning", "Failed", f'Failed to pull image "{cs.image}": {why}', cs.name)
                cs.wait("ImagePullBackOff", f'Back-off pulling image "{cs.image}"')
            self._publish()
            return
        for cs in self.state.init_containers:
            self._start(cs)
            self._end(cs, self._exit_code(cs))
        self.state.initialized = not any(c.terminated and c.terminated["exitCode"] for c in self.state.init_containers)
        if not self.state.initialized:
            self.state.phase = "Failed"
            self._publish()
            return self._complete()
        for cs in self.state.containers:
            self._run(cs)
        self._publish()

    def _exit_code(self, cs: ContainerState) -> int:
        return int(self._annotation("exit-code", cs.name, "0"))

    def _start(self, cs: ContainerState) -> None:
        for reason, message in pulled_events(cs.image, cs.pull_policy):
            self._event("Normal", reason, message, cs.name)
        self._event("Normal", "Created", f"Created container: {cs.name}", cs.name)
        self._event("Normal", "Started", f"Started container {cs.name}", cs.name)
        cs.start(self._services.now())
        output = self._services.log_store.open(self.state.namespace, self.state.name, cs.name)
        lines = self._annotation("log-lines", cs.name).splitlines()
        duration = float(self._annotation("duration", cs.name, "0"))
        for index, line in enumerate(lines):
            data = line.encode() + b"\n"
            if index == 0 or duration <= 0:
                output.write(data)
            else:
                handle = self._loop.call_later(duration * index / len(lines), output.write, data)
                self._timers[f"{cs.name}/log/{index}"] = handle

    def _run(self, cs: ContainerState) -> None:
        self._start(cs)
        self.state.settle_phase("Always")
        duration = float(self._annotation("duration", cs.name, "0"))
        self._timers[cs.name] = self._loop.call_later(duration, self._exited, cs)

    def _end(self, cs: ContainerState, code: int) -> None:
        output = self._services.log_store.get(self.state.namespace, self.state.name, cs.name)
        if output is not None:
            output.close()
        message = self._annotation("termination-message", cs.name)
        cs.finish(code, "Completed" if code == 0 else "Error", self._services.now(), message)

    def _exited(self, cs: ContainerState) -> None:
        self._timers.pop(cs.name, None)
        code = self._exit_code(cs)
        self._end(cs, code)
        policy = self._policy
        if policy == "Always" or (policy == "OnFailure" and code != 0):
            delay = self._services.config.backoff(cs.restart_count + 1)
            cs.restart()
            cs.wait("CrashLoopBackOff", f"back-off {delay:g}s restarting failed container={cs.name}")
            self._event("Warning", "BackOff", f"Back-off restarting failed container {cs.name}", cs.name)
            self._timers[cs.name] = self._loop.call_later(delay, self._run_and_publish, cs)
        self.state.settle_phase(policy)
        self._publish()
        if self.state.finished:
            self._complete()

    def _run_and_publish(self, cs: ContainerState) -> None:
        self._run(cs)
        self._publish()

    def _deadline_exceeded(self) -> None:
        self.fail("DeadlineExceeded", DEADLINE_MESSAGE, 0)

    def fail(self, reason: str, message: str, grace: float) -> None:
        """The kubelet ends the pod (deadline, eviction): Failed with this reason, containers stopped."""
        if self.state.finished:
            return
        self.state.phase, self.state.reason, self.state.message = "Failed", reason, message
        self._event("Warning", reason, message)
        self._stop_containers()
        self._publish()
        self._complete()

    def _stop_containers(self) -> None:
        for cs in self.state.containers:
            if cs.running:
                self._event("Normal", "Killing", f"Stopping container {cs.name}", cs.name)
                self._end(cs, SIGTERM_EXIT)

    def _complete(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        if not self.done.done():
            self.done.set_result(None)
            if not self._silent:
                self._services.finished(self.state)

    # --- control from the kubelet --------------------------------------------------------------------

    def terminate(self, grace: float) -> None:
        """A virtual container stops at once on SIGTERM (exit code 143)."""
        if self._stopped:
            return
        self._stopped = True
        self._stop_containers()
        if not self.state.finished:
            ok = all(c.terminated and c.terminated["exitCode"] == 0 for c in self.state.containers)
            self.state.phase = "Succeeded" if ok and self.state.initialized else "Failed"
        self._publish()
        self._complete()

    def kill(self) -> None:
        self._silent = True
        self._complete()

    async def exec(self, container: str, command: list[str], *, stdin: bool, tty: bool) -> ExecProcess:
        cs = self.state.container(container)
        if cs is None or not cs.running:
            raise ExecError(f"container {container} is not running")
        spec = next(c for c in (self.pod.get("spec") or {}).get("containers") or [] if c["name"] == container)
        files = {XCOM_PATH: self._annotation("xcom", container)}
        message = self._annotation("termination-message", container)
        if message:  # the same file as the XCom when terminationMessagePath points at it
            files[spec.get("terminationMessagePath") or "/dev/termination-log"] = message
        return _emulate(command, {k: v for k, v in files.items() if v})


def _emulate(command: list[str], files: dict[str, str]) -> ExecProcess:
    words = command
    if len(command) == 3 and command[0] in ("sh", "bash", "/bin/sh", "/bin/bash") and command[1] == "-c":
        words = shlex.split(command[2])
    if not words or words[0] not in ("cat", "/bin/cat"):
        why = (
            f"virtual node: cannot run {shlex.join(command)!r}: the virtual runtime runs no process (only `cat FILE`)\n"
        )
        return VirtualExec(b"", why.encode(), 126)
    out, err, code = b"", b"", 0
    for path in words[1:]:
        if path in files:
            out += files[path].encode()
        else:
            err += f"cat: {path}: No such file or directory\n".encode()
            code = 1
    return VirtualExec(out, err, code)


class VirtualExec(ExecProcess):
    """An exec whose output is known in advance."""

    def __init__(self, out: bytes, err: bytes, code: int) -> None:
        self._code = code
        self._stdout = _once(out)
        self._stderr = _once(err)

    async def write_stdin(self, data: bytes) -> None:
        return None

    def close_stdin(self) -> None:
        return None

    async def wait(self) -> int:
        return self._code

    def kill(self) -> None:
        self._code = 137


async def _once(data: bytes) -> AsyncIterator[bytes]:
    if data:
        yield data


__all__ = ["ExecError", "VirtualExec", "VirtualPod"]
