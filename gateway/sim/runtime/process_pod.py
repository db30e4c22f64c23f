"""One pod on a `process` node, from sandbox to cleanup: init containers in order, then the containers,
restarts per restartPolicy with CrashLoopBackOff, image pull failures, activeDeadlineSeconds, and graceful
termination (SIGTERM, then SIGKILL after the grace period)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gateway.sim.podstatus import (
    DEADLINE_MESSAGE,
    MAX_TERMINATION_MESSAGE,
    ContainerState,
    PodState,
    exit_reason,
    pulled_events,
)
from gateway.sim.runtime import probes
from gateway.sim.runtime import spec as specs
from gateway.sim.runtime.base import ContainerSpec, ExecError, ExecProcess, ExitStatus, Mount
from gateway.sim.runtime.exec import ProcessExec
from gateway.sim.runtime.process import ProcessContainer, ProcessRuntime, ProcessSandbox
from gateway.sim.runtime.services import PodServices, field_path

log = logging.getLogger(__name__)
Obj = Mapping[str, Any]
FALLBACK_LOG_LINES = 80


class ProcessPod:
    """Runs one pod as a task; `terminate()` stops it gracefully, `kill()` at once and silently."""

    def __init__(self, services: PodServices, runtime: ProcessRuntime, pod: Obj, state: PodState) -> None:
        self.pod = pod
        self.state = state
        self._services = services
        self._runtime = runtime
        self._sandbox: ProcessSandbox | None = None
        self._running: dict[str, ProcessContainer] = {}
        self._starting: dict[str, asyncio.Future[None]] = {}  # containers whose process is being started
        self._api_env: dict[str, str] = {}
        self._api_mount: Mount | None = None
        self._stop = asyncio.Event()
        self._grace_over = False  # set once containers are to be SIGKILLed (kill, or the grace period ended)
        self._silent = False
        self._killer: asyncio.TimerHandle | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self.task = asyncio.create_task(self._run(), name=f"pod {state.namespace}/{state.name}")

    # --- control from the kubelet --------------------------------------------------------------------

    def terminate(self, grace: float) -> None:
        """SIGTERM to every running container, SIGKILL after `grace` seconds; nothing restarts."""
        if self._stop.is_set():
            return
        self._stop.set()
        for name, container in self._running.items():
            self._services.event(
                self.state, "Normal", "Killing", f"Stopping container {name}", field_path(self.state, name)
            )
            container.signal(signal.SIGTERM if grace > 0 else signal.SIGKILL)
        self._killer = asyncio.get_running_loop().call_later(max(grace, 0), self._kill_running)

    def kill(self) -> None:
        """Stops at once and writes no more status (node lost, simulator shutting down)."""
        self._silent = True
        self._stop.set()
        self._kill_running()

    def _kill_running(self) -> None:
        """SIGKILL for every running container, and for any that starts from now on."""
        self._grace_over = True
        for container in self._running.values():
            container.kill_all()

    async def exec(self, container: str, command: list[str], *, stdin: bool, tty: bool) -> ProcessExec:
        """Runs a command in a running container (one that is being started is waited for)."""
        starting = self._starting.get(container)
        if starting is not None:
            await starting
        running = self._running.get(container)
        if running is None:
            raise ExecError(f"container {container} is not running")
        return await running.exec(command, stdin=stdin, tty=tty)

    # --- the pod's life ------------------------------------------------------------------------------

    def _publish(self) -> None:
        if not self._silent and not self._services.publish(self.state):
            self.kill()

    async def _run(self) -> None:
        try:
            await self._lifecycle()
        except Exception:
            log.exception("pod %s/%s failed in the kubelet", self.state.namespace, self.state.name)
            self.state.phase, self.state.reason = "Failed", "KubeletError"
            self._publish()
        finally:
            self._kill_running()
            for handle in (self._killer, self._deadline):
                if handle is not None:
                    handle.cancel()
            if self._sandbox is not None:
                await self._runtime.remove_sandbox(self._sandbox)
            if not self._silent:
                self._services.finished(self.state)

    async def _lifecycle(self) -> None:
        spec = self.pod.get("spec") or {}
        self.state.start_time = self._services.now()
        if self._runtime.degraded_reason:
            self._services.event(self.state, "Warning", "IsolationUnavailable", self._runtime.degraded_reason)
        self._publish()
        self._arm_deadline(spec.get("activeDeadlineSeconds"))
        volumes = [v["name"] for v in spec.get("volumes") or [] if "hostPath" not in v]
        self._sandbox = await self._runtime.create_sandbox(
            self.state.uid, volumes, share_pid=bool(spec.get("shareProcessNamespace"))
        )
        token = self._write_api_access()
        self._write_volume_files(token)
        policy = spec.get("restartPolicy", "Always")
        for container, cs in zip(spec.get("initContainers") or [], self.state.init_containers, strict=True):
            code = await self._keep_running(container, cs, "OnFailure" if policy == "Always" else policy)
            if code != 0 or self._stop.is_set():
                self._end_after_stop() if self._stop.is_set() else self._fail_init()
                return
        self.state.initialized = True
        for cs in self.state.containers:
            cs.wait("ContainerCreating")
        self._publish()
        pairs = zip(spec.get("containers") or [], self.state.containers, strict=True)
        await asyncio.gather(*(self._keep_running(c, cs, policy) for c, cs in pairs))
        self._end_after_stop() if self._stop.is_set() else self.state.settle_phase(policy)
        self._publish()

    def _fail_init(self) -> None:
        self.state.phase = "Failed"
        self._publish()

    def _end_after_stop(self) -> None:
        """After a deletion or a deadline: the pod is over whatever restartPolicy says."""
        if self.state.finished:
            return
        codes = [c.terminated["exitCode"] for c in self.state.containers if c.terminated]
        ok = self.state.initialized and len(codes) == len(self.state.containers) and not any(codes)
        self.state.phase = "Succeeded" if ok else "Failed"
        self._publish()

    def _arm_deadline(self, seconds: Any) -> None:
        if seconds:
            self._deadline = asyncio.get_running_loop().call_later(float(seconds), self._deadline_exceeded)

    def _deadline_exceeded(self) -> None:
        self.fail(
            "DeadlineExceeded",
            DEADLINE_MESSAGE,
            float((self.pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)),
        )

    def fail(self, reason: str, message: str, grace: float) -> None:
        """The kubelet ends the pod (deadline, eviction): Failed with this reason, containers stopped."""
        if self.state.finished or self._stop.is_set():
            return
        self.state.phase, self.state.reason, self.state.message = "Failed", reason, message
        self._services.event(self.state, "Warning", reason, message)
        self.terminate(grace)
        self._publish()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _keep_running(self, container: Obj, cs: ContainerState, policy: str) -> int | None:
        """Runs a container, restarting it per `policy`; returns its last exit code (None: never ran)."""
        code: int | None = None
        while not self._stop.is_set():
            code = await self._run_once(container, cs)
            if code is None or self._stop.is_set():
                return code
            if not (policy == "Always" or (policy == "OnFailure" and code != 0)):
                return code
            self.state.settle_phase(policy)
            delay = self._services.config.backoff(cs.restart_count + 1)
            cs.restart()
            who = f"{self.state.name}_{self.state.namespace}({self.state.uid})"
            cs.wait("CrashLoopBackOff", f"back-off {delay:g}s restarting failed container={cs.name} pod={who}")
            self._services.event(
                self.state,
                "Warning",
                "BackOff",
                f"Back-off restarting failed container {cs.name} in pod {who}",
                field_path(self.state, cs.name),
            )
            self._publish()
            await self._pause(delay)
        return code

    async def _run_once(self, container: Obj, cs: ContainerState) -> int | None:
        path = field_path(self.state, cs.name)
        if not await self._pull(cs, path):
            return None
        try:
            spec = self._container_spec(container)
        except specs.ContainerConfigError as e:
            cs.wait("CreateContainerConfigError", str(e))
            self._services.event(self.state, "Warning", "Failed", f"Error: {e}", path)
            self._publish()
            await self._pause(self._services.config.image_pull_backoff)
            return None
        assert self._sandbox is not None
        termination = self._sandbox.termination_file(cs.name)
        output = self._services.log_store.open(self.state.namespace, self.state.name, cs.name)
        starting: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._starting[cs.name] = starting
        try:
            running = await self._runtime.run(self._sandbox, spec, output)
        finally:
            del self._starting[cs.name]
            starting.set_result(None)
        if running.start_error:
            self._services.event(
                self.state, "Warning", "Failed", f"Error: failed to start container: {running.start_error}", path
            )
        else:
            cs.start(self._services.now())
            self._services.event(self.state, "Normal", "Created", f"Created container: {cs.name}", path)
            self._services.event(self.state, "Normal", "Started", f"Started container {cs.name}", path)
            self._running[cs.name] = running
            cs.ready = False if container.get("readinessProbe") else None  # not ready before its first pass
            if self._grace_over:  # killed while it was starting
                running.kill_all()
            elif self._stop.is_set():  # deleted while it was starting: it gets its SIGTERM too
                running.signal(signal.SIGTERM)
            self.state.settle_phase("Always")
            self._publish()
        watchers = [] if running.start_error else self._start_probes(container, cs, running)
        status = await running.wait()
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        cs.ready = None
        self._running.pop(cs.name, None)
        output.close()
        self._finish(container, cs, status, termination)
        self._publish()
        return status.exit_code

    def _start_probes(self, container: Obj, cs: ContainerState, running: ProcessContainer) -> list[asyncio.Task[None]]:
        """Readiness gates the container's `ready`; a failing liveness probe restarts it (see probes.py)."""
        path = field_path(self.state, cs.name)

        async def run(command: list[str]) -> ExecProcess:
            return await running.exec(command, stdin=False, tty=False)

        def unhealthy(kind: str) -> Callable[[str], None]:
            return lambda output: self._services.event(
                self.state, "Warning", "Unhealthy", f"{kind} probe failed: {output}".rstrip(), path
            )

        def readiness(passed: bool) -> None:
            cs.ready = passed
            self._publish()

        def liveness(passed: bool) -> None:
            if not passed and cs.running:
                message = f"Container {cs.name} failed liveness probe, will be restarted"
                self._services.event(self.state, "Normal", "Killing", message, path)
                running.signal(signal.SIGTERM)
                grace = float((self.pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
                asyncio.get_running_loop().call_later(grace, running.kill_all)

        watchers = []
        for key, kind, initial, changed in (
            ("readinessProbe", "Readiness", False, readiness),
            ("livenessProbe", "Liveness", True, liveness),
        ):
            if not container.get(key):
                continue
            try:
                probe = probes.parse(container[key], container)
            except specs.ContainerConfigError as e:
                self._services.event(self.state, "Warning", "Unhealthy", f"{kind} probe is invalid: {e}", path)
                if key == "readinessProbe":
                    cs.ready = None  # an unusable probe does not hold the container back
                continue
            watch = probes.watch(probe, run, initial=initial, changed=changed, failed=unhealthy(kind))
            watchers.append(asyncio.create_task(watch, name=f"{kind} probe {self.state.name}/{cs.name}"))
        return watchers

    async def _pull(self, cs: ContainerState, path: str) -> bool:
        """Images are never pulled; a missing one fails like a registry would (ErrImagePull, then back-off)."""
        image = cs.image
        if not self._services.config.image_missing(image):
            for reason, message in pulled_events(image, cs.pull_policy):
                self._services.event(self.state, "Normal", reason, message, path)
            return True
        self._services.event(self.state, "Normal", "Pulling", f'Pulling image "{image}"', path)
        why = f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": not found'
        self._services.event(self.state, "Warning", "Failed", f'Failed to pull image "{image}": {why}', path)
        self._services.event(self.state, "Warning", "Failed", "Error: ErrImagePull", path)
        cs.wait("ErrImagePull", why)
        self._publish()
        await self._pause(self._services.config.image_pull_backoff)
        while not self._stop.is_set():
            cs.wait("ImagePullBackOff", f'Back-off pulling image "{image}"')
            self._services.event(self.state, "Normal", "BackOff", f'Back-off pulling image "{image}"', path)
            self._services.event(self.state, "Warning", "Failed", "Error: ImagePullBackOff", path)
            self._publish()
            await self._pause(300)
        return False

    def _container_spec(self, container: Obj) -> ContainerSpec:
        assert self._sandbox is not None
        config = self._services.config
        env = {
            **self._api_env,
            **specs.environment(
                self.pod, container, self._services.lookup, self.state.pod_ip, self.state.host_ip, config
            ),
        }
        termination = self._sandbox.termination_file(container["name"])
        termination.parent.mkdir(parents=True, exist_ok=True)
        termination.write_bytes(b"")
        termination.chmod(0o666)
        mounts = specs.mounts(self.pod, container, self._sandbox.volumes, str(termination))
        if self._api_mount is not None and all(m.target != self._api_mount.target for m in mounts):
            mounts = (*mounts, self._api_mount)
        for mount in mounts:
            if mount.source.startswith(str(self._sandbox.dir)) and not Path(mount.source).exists():
                Path(mount.source).mkdir(parents=True)  # a subPath the container has not made yet
        return ContainerSpec(
            namespace=self.state.namespace,
            pod=self.state.name,
            pod_uid=self.state.uid,
            name=container["name"],
            argv=specs.argv(container, env, config),
            env=env,
            working_dir=container.get("workingDir") or "",
            mounts=mounts,
            memory_limit=specs.memory_limit(container),
            hostname=(self.pod.get("spec") or {}).get("hostname") or self.state.name,
            run_as_user=specs.security(self.pod, container, "runAsUser"),
            run_as_group=specs.security(self.pod, container, "runAsGroup"),
        )

    def _finish(self, container: Obj, cs: ContainerState, status: ExitStatus, termination: Path) -> None:
        message = _read_message(termination)
        policy = container.get("terminationMessagePolicy", "File")
        if not message and policy == "FallbackToLogsOnError" and status.exit_code != 0:
            message = self._log_tail(cs.name)
        if status.start_error:
            message = status.start_error
        reason = exit_reason(status.exit_code, status.oom_killed, status.start_error)
        cs.finish(status.exit_code, reason, self._services.now(), message, status.signal)

    def _log_tail(self, container: str) -> str:
        output = self._services.log_store.get(self.state.namespace, self.state.name, container)
        if output is None:
            return ""
        lines = output.tail(FALLBACK_LOG_LINES)
        return b"".join(lines).decode(errors="replace")[-2048:]

    def _write_api_access(self) -> str | None:
        """The in-cluster env vars and token files (see Kubelet.configure_api_access); returns the token."""
        assert self._sandbox is not None
        access = self._services.api_access(self.state, self.pod)
        if access is None:
            return None
        self._api_env = access.env()
        files = access.files()
        if files:
            directory = self._sandbox.dir / "kube-api-access"
            _write_projected(directory, files)
            self._api_mount = Mount(str(directory), specs.SERVICE_ACCOUNT_DIR, read_only=True)
        return access.token

    def _write_volume_files(self, token: str | None) -> None:
        assert self._sandbox is not None
        try:
            files = specs.volume_files(self.pod, self._services.lookup, token)
        except specs.ContainerConfigError as e:
            self._services.event(self.state, "Warning", "FailedMount", f"MountVolume.SetUp failed: {e}")
            return
        for volume, entries in files.items():
            for relative, content in entries.items():
                target = Path(self._sandbox.volumes[volume]) / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content)


def _write_projected(directory: Path, files: Mapping[str, str]) -> None:
    """Files laid out as the kubelet's projected volumes are: a timestamped dir, `..data` -> it, and
    each name -> `..data/name` (so readers that follow the kubelet's atomic swaps work unchanged)."""
    stamp = "..data-1"
    (directory / stamp).mkdir(parents=True)
    for name, content in files.items():
        (directory / stamp / name).write_text(content)
        (directory / stamp / name).chmod(0o644)
        (directory / name).symlink_to(Path("..data") / name)
    (directory / "..data").symlink_to(stamp)


def _read_message(path: Path) -> str:
    """The termination message as the kubelet reads it: at most 4096 bytes."""
    try:
        with path.open("rb") as f:
            return f.read(MAX_TERMINATION_MESSAGE).decode(errors="replace")
    except OSError:
        return ""


__all__ = ["ExecError", "ProcessPod"]
