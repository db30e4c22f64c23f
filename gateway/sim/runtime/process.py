"""The `process` runtime: each container is a real process tree in its own mount, UTS and PID namespaces.

Per pod, a directory under the runtime's root holds the emptyDir volumes and one termination-message
file per container; `launcher.py` mounts them where the pod asks inside the container's private root.
A pod with `shareProcessNamespace` gets a pause process whose PID namespace its containers join.
Where namespaces cannot be made (not root, no `unshare`, no overlayfs), containers run as plain host
processes: `isolated` is then False and `degraded_reason` says why, for the kubelet to report.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gateway.sim.logstore import ContainerLog
from gateway.sim.runtime.base import ContainerSpec, ExitStatus
from gateway.sim.runtime.cgroups import MemoryCgroups
from gateway.sim.runtime.exec import ProcessExec

log = logging.getLogger(__name__)

LAUNCHER = str(Path(__file__).with_name("launcher.py"))
START_TIMEOUT = 30.0
START_ERROR_EXIT = 128
_PROBED: dict[str, str | None] = {}  # launcher python -> why isolation is unavailable (None: it works)
TERMINATION_LOG = "termination-log"


class ProcessSandbox:
    """A pod's directory, its volume directories and, for a shared PID namespace, its pause process."""

    def __init__(self, uid: str, directory: Path, volumes: Mapping[str, str]) -> None:
        self.uid = uid
        self.dir = directory
        self.volumes = dict(volumes)
        self.pause: asyncio.subprocess.Process | None = None
        self.pause_status: _StatusPipe | None = None
        self.pause_pid: int | None = None

    def termination_file(self, container: str) -> Path:
        return self.dir / "containers" / container / TERMINATION_LOG


class ProcessContainer:
    """One running container: its host PID (the container's PID 1), logs and exit."""

    def __init__(
        self,
        runtime: ProcessRuntime,
        spec: ContainerSpec,
        proc: asyncio.subprocess.Process,
        status: _StatusPipe,
        pumps: list[asyncio.Task[None]],
        cgroup: str | None,
    ) -> None:
        self.spec = spec
        self._runtime = runtime
        self._proc = proc
        self._status = status
        self.host_dir: str | None = None
        self.mount_ns = ""  # set when the pod shares a PID namespace (see wait())
        self._pumps = pumps
        self._cgroup = cgroup
        self._exit: ExitStatus | None = None

    @property
    def pid(self) -> int:
        """The host PID of the container's main process (0 until known)."""
        return self._status.pid

    @property
    def start_error(self) -> str | None:
        return self._status.error

    def signal(self, sig: int) -> None:
        """Signals the container's main process (its whole group when running unisolated); once it has
        been reaped, nothing (its PID may belong to another process by then)."""
        if self._exit is not None or self._proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self._runtime.isolated:
                os.kill(self.pid or self._proc.pid, sig)
            else:
                os.killpg(self._proc.pid, sig)

    def kill_all(self) -> None:
        """SIGKILL for the container and for the launcher that holds its namespaces."""
        self.signal(signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self._proc.kill()

    async def wait(self) -> ExitStatus:
        if self._exit is None:
            # Process.wait() also waits for stdout/stderr to close, which a leftover child would hold open:
            # wait for the exit itself, end what the container left behind, then collect.
            await _exited(self._proc.pid)
            if self.mount_ns:  # a shared PID namespace outlives the container
                _kill_namespace_members(self.mount_ns)
            if not self._runtime.isolated:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self._proc.pid, signal.SIGKILL)
            code = await self._proc.wait()
            await asyncio.gather(*self._pumps, self._status.finished())
            if self._status.code is not None:
                code = self._status.code
            oom = bool(self._cgroup) and self._runtime.cgroups.oom_killed(self._cgroup or "")
            if self._cgroup:
                self._runtime.cgroups.remove(self._cgroup)
            signum = -code if code < 0 else None
            error = self.start_error if code == START_ERROR_EXIT or not self._status.execed else None
            self._exit = ExitStatus(
                exit_code=128 + signum if signum else code, signal=signum, oom_killed=oom, start_error=error
            )
        return self._exit

    async def exec(self, command: list[str], *, stdin: bool, tty: bool) -> ProcessExec:
        """Runs `command` inside this container's namespaces and root, with the container's env."""
        if self._runtime.isolated:
            argv = ["nsenter", "--target", str(self.pid), "--mount", "--uts", "--pid", "--root", "--wd", "--", *command]
            cwd = None
        else:
            argv, cwd = list(command), self.host_dir  # unisolated: where the container itself runs
        return await ProcessExec.start(argv, dict(self.spec.env), stdin=stdin, tty=tty, cwd=cwd)


class ProcessRuntime:
    """Runs containers as processes. `await start()` once before use, `await close()` at the end."""

    def __init__(
        self,
        root_dir: Path | None = None,
        *,
        isolate: bool = True,
        python: str = sys.executable,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        self.root = root_dir or Path(tempfile.gettempdir()) / "podgate-sim" / f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.python = python
        self.aliases = dict(aliases or {})  # command -> target, made in a container that lacks the command
        self.isolated = isolate
        self.degraded_reason: str | None = None if isolate else "isolation disabled in the runtime configuration"
        self.cgroups = MemoryCgroups(f"podgate-sim-{os.getpid()}-{uuid.uuid4().hex[:6]}")
        self._warned_rlimit = False

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.isolated:
            if self.python not in _PROBED:  # what the machine allows does not change while we run
                _PROBED[self.python] = await _probe_namespaces() or await self._probe_container()
                if _PROBED[self.python]:
                    log.warning(
                        "process runtime degraded: %s; containers run as plain host processes", _PROBED[self.python]
                    )
            self.degraded_reason = _PROBED[self.python]
            self.isolated = self.degraded_reason is None

    async def _probe_container(self) -> str | None:
        """Runs `true` as a container, the whole way (namespaces, overlay root, mounts): why it fails, if it does."""
        sandbox = await self.create_sandbox(f"probe-{uuid.uuid4().hex[:8]}", [], share_pid=False)
        try:
            spec = ContainerSpec(
                namespace="", pod="probe", pod_uid=sandbox.uid, name="probe", argv=("true",), env={"PATH": os.defpath}
            )
            output = ContainerLog()
            status = await (await self.run(sandbox, spec, output)).wait()
        finally:
            await self.remove_sandbox(sandbox)
        if status.start_error or status.exit_code != 0:
            lines = b"".join(chunk for _, chunk in output.entries()).decode(errors="replace").strip()
            return f"a probe container failed: {status.start_error or lines or f'exit code {status.exit_code}'}"
        return None

    async def close(self) -> None:
        self.cgroups.close()
        shutil.rmtree(self.root, ignore_errors=True)

    async def create_sandbox(self, uid: str, volumes: list[str], *, share_pid: bool) -> ProcessSandbox:
        """The pod's directory with one empty directory per volume name; a pause process if `share_pid`."""
        directory = self.root / uid
        paths = {}
        for name in volumes:
            path = directory / "volumes" / name
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o777)  # emptyDir is world-writable, so a container with runAsUser can use it
            paths[name] = str(path)
        directory.mkdir(parents=True, exist_ok=True)
        sandbox = ProcessSandbox(uid, directory, paths)
        if share_pid and self.isolated:
            await self._start_pause(sandbox)
        return sandbox

    async def remove_sandbox(self, sandbox: ProcessSandbox) -> None:
        if sandbox.pause is not None and sandbox.pause_status is not None:
            with contextlib.suppress(ProcessLookupError):
                sandbox.pause.kill()
            await sandbox.pause.wait()
            await sandbox.pause_status.finished()
        await asyncio.to_thread(shutil.rmtree, sandbox.dir, True)

    async def _start_pause(self, sandbox: ProcessSandbox) -> None:
        read, write = os.pipe()
        sandbox.pause = await asyncio.create_subprocess_exec(
            self.python,
            "-I",
            "-S",
            LAUNCHER,
            "--pause",
            str(write),
            stdin=asyncio.subprocess.DEVNULL,
            pass_fds=(write,),
            start_new_session=True,
        )
        os.close(write)
        sandbox.pause_status = _StatusPipe(read)
        status = sandbox.pause_status
        await asyncio.wait_for(status.wait_for(lambda: bool(status.pid)), START_TIMEOUT)
        sandbox.pause_pid = status.pid

    async def run(self, sandbox: ProcessSandbox, spec: ContainerSpec, output: ContainerLog) -> ProcessContainer:
        """Starts a container; returns once its command is exec'd (or failed to start: see `wait()`)."""
        cdir = sandbox.dir / "containers" / spec.name
        shutil.rmtree(cdir / "rootfs", ignore_errors=True)
        for sub in ("rootfs", "layer"):
            (cdir / sub).mkdir(parents=True, exist_ok=True)
        cgroup = self._cgroup(spec)
        read, write = os.pipe()
        spec_file = cdir / "spec.json"
        spec_file.write_text(json.dumps(self._launch_spec(sandbox, spec, cdir, cgroup, write)))
        spec_file.chmod(0o600)
        proc = await asyncio.create_subprocess_exec(
            *self._argv(sandbox, str(spec_file)),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            pass_fds=(write,),
            start_new_session=True,
        )
        os.close(write)
        assert proc.stdout is not None and proc.stderr is not None
        pumps = [
            asyncio.create_task(_pump(proc.stdout, output, "stdout")),
            asyncio.create_task(_pump(proc.stderr, output, "stderr")),
        ]
        status = _StatusPipe(read)
        container = ProcessContainer(self, spec, proc, status, pumps, cgroup)
        container.host_dir = str(cdir)
        try:
            await asyncio.wait_for(status.wait_for(lambda: status.execed or status.error is not None), START_TIMEOUT)
        except TimeoutError:
            status.error = f"container did not start within {START_TIMEOUT:.0f}s"
            container.kill_all()
        if sandbox.pause_pid:
            container.mount_ns = status.mount_ns
        return container

    def _argv(self, sandbox: ProcessSandbox, spec_file: str) -> list[str]:
        launch = [self.python, "-I", "-S", LAUNCHER, spec_file]
        if self.isolated and sandbox.pause_pid:
            return ["nsenter", "--target", str(sandbox.pause_pid), "--pid", "--", *launch]
        return launch

    def _cgroup(self, spec: ContainerSpec) -> str | None:
        if not spec.memory_limit or not self.cgroups.available:
            return None
        return self.cgroups.create(f"{spec.pod_uid}-{spec.name}", spec.memory_limit)

    def _launch_spec(
        self, sandbox: ProcessSandbox, spec: ContainerSpec, cdir: Path, cgroup: str | None, status_fd: int
    ) -> dict[str, Any]:
        rlimit = None
        if spec.memory_limit and not cgroup:
            rlimit = spec.memory_limit
            if not self._warned_rlimit:
                log.warning("no writable memory cgroup: memory limits use RLIMIT_AS, and OOM shows as Error")
                self._warned_rlimit = True
        return {
            "argv": list(spec.argv),
            "env": dict(spec.env),
            "working_dir": spec.working_dir if self.isolated else str(cdir),
            "hostname": spec.hostname,
            "aliases": dict(self.aliases),
            "run_as_user": spec.run_as_user,
            "run_as_group": spec.run_as_group,
            "mounts": [{"source": m.source, "target": m.target, "read_only": m.read_only} for m in spec.mounts],
            "layer_dir": str(cdir / "layer"),
            "rootfs": str(cdir / "rootfs"),
            "sim_root": str(self.root),
            "isolated": self.isolated,
            "new_pid_namespace": sandbox.pause_pid is None,
            "cgroup": cgroup,
            "rlimit_as": rlimit,
            "status_fd": status_fd,
        }


async def _pump(stream: asyncio.StreamReader, output: ContainerLog, name: str) -> None:
    while chunk := await stream.read(65536):
        output.write(chunk, name)


class _StatusPipe:
    """Reads the launcher's status lines (see launcher.py) in the background."""

    def __init__(self, fd: int) -> None:
        self.pid = 0
        self.error: str | None = None
        self.code: int | None = None
        self.mount_ns = ""
        self.execed = False
        self._progress = asyncio.Event()
        self._task = asyncio.create_task(self._read(fd))

    async def _read(self, fd: int) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb"))
        try:
            while line := (await reader.readline()).decode().rstrip("\n"):
                word, _, rest = line.partition(" ")
                if word == "pid":
                    self.pid = int(rest)
                elif word == "mntns":
                    self.mount_ns = rest
                elif word == "exec":
                    self.execed = True
                elif word == "error":
                    self.error = rest
                elif word == "status":
                    self.code = int(rest)
                self._progress.set()
        finally:
            transport.close()
            if not self.execed and self.error is None:
                self.error = "the container process ended before its command started"
            self._progress.set()

    async def wait_for(self, ready: Callable[[], bool]) -> None:
        while not ready() and not self._task.done():
            self._progress.clear()
            await self._progress.wait()

    async def finished(self) -> None:
        await self._task


async def _exited(pid: int) -> None:
    """Until process `pid` (our child) has exited, through a pidfd (no polling)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return  # already reaped
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def _mount_namespace(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return ""


def _kill_namespace_members(namespace: str) -> None:
    """SIGKILL for every process in that mount namespace (a container's, in a shared PID namespace)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _mount_namespace(int(entry)) == namespace:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry), signal.SIGKILL)


async def _probe_namespaces() -> str | None:
    """Why namespaces cannot be used here, or None when they can."""
    if os.geteuid() != 0:
        return "not running as root: no mount/PID namespaces"
    if not shutil.which("unshare") or not shutil.which("nsenter"):
        return "`unshare`/`nsenter` (util-linux) not found"
    if not _has_overlayfs():
        return "the kernel has no overlayfs"
    proc = await asyncio.create_subprocess_exec(
        "unshare", "--mount", "--uts", "--pid", "--fork", "true", stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        return f"unshare failed: {err.decode().strip()}"
    return None


def _has_overlayfs() -> bool:
    return "overlay" in Path("/proc/filesystems").read_text()
