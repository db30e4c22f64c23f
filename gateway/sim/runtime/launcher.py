"""Container launcher: builds one container's root inside fresh namespaces, then execs its command.

Run by path as `python -I -S launcher.py SPEC.json` (stdlib only, so it starts fast), directly or under
`nsenter --target PAUSE --pid` when the pod shares one PID namespace. It unshares the mount and UTS
namespaces (and the PID namespace unless shared) and forks: the child execs the command, which is thus
the container's PID 1, as in Kubernetes (it dies with the launcher); the launcher waits for it and
reports its exact status, which a signal-killed PID 1 could not otherwise give.

The root is an overlay of the host's `/` with a tmpfs upper layer (the container's writable layer: it
never writes to the host), plus a fresh /proc of the container's PID namespace, a minimal /dev, the
host's other filesystems (read-only), and the pod's volumes and termination-message file bind-mounted where the pod
asks. Everything lives in the private mount namespace and disappears with its last process.

Lines on the status fd: "pid <host pid>", "mntns <mount namespace>", then "exec" (the command starts) or "error <text>" (it
could not: exit code 128, like a runtime StartError), then "status <code>" (negative: killed by that
signal). With `--pause` the child only holds a shared PID namespace open and reaps orphans, as
Kubernetes' pause container does. Without isolation (`isolated: false`) the command is exec'd in place.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sys
from typing import Any

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
START_ERROR_EXIT = 128
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWPID = 0x20000000
PR_SET_PDEATHSIG = 1
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
SPECIAL_ROOTS = ("/proc", "/sys", "/dev")

_libc = ctypes.CDLL(None, use_errno=True)


def _encode(text: str | None) -> bytes | None:
    return text.encode() if text is not None else None


def _mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    encode = _encode
    result = _libc.mount(encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data))
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {source or fstype} on {target}: {os.strerror(errno)}")


def _bind(source: str, target: str, read_only: bool = False) -> None:
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target):
            open(target, "a").close()
    _mount(source, target, None, MS_BIND | MS_REC)
    if read_only:
        _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY)


def _host_mounts(exclude: str) -> list[str]:
    """Mount points of the host's other filesystems, parents first, skipping /, /proc, /sys, /dev and ours."""
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if (
                point == "/"
                or point.startswith(exclude)
                or any(point == s or point.startswith(s + "/") for s in SPECIAL_ROOTS)
            ):
                continue
            points.append(point)
    return points


def _make_dev(root: str) -> None:
    dev = os.path.join(root, "dev")
    _mount("tmpfs", dev, "tmpfs", MS_NOSUID, "mode=755")
    for name in DEVICES:
        _bind(f"/dev/{name}", os.path.join(dev, name))
    for sub in ("pts", "shm"):
        os.makedirs(os.path.join(dev, sub), exist_ok=True)
    _mount("/dev/pts", os.path.join(dev, "pts"), None, MS_BIND)
    _mount("tmpfs", os.path.join(dev, "shm"), "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    for index, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{index}", os.path.join(dev, name))
    os.symlink("/proc/self/fd", os.path.join(dev, "fd"))


def _make_root(spec: dict[str, Any]) -> str:
    layer, root = spec["layer_dir"], spec["rootfs"]
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", layer, "tmpfs", 0, "mode=755")
    for sub in ("upper", "work"):
        os.mkdir(os.path.join(layer, sub))
    options = f"lowerdir=/,upperdir={layer}/upper,workdir={layer}/work"
    _mount("overlay", root, "overlay", 0, options)
    for point in _host_mounts(spec["sim_root"]):
        if os.path.isdir(point):
            _bind(point, root + point, read_only=True)  # the host's other filesystems: seen, never written
    _mount("proc", os.path.join(root, "proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _mount("/sys", os.path.join(root, "sys"), None, MS_BIND | MS_REC)
    _make_dev(root)
    return str(root)


def _open_sources(mounts: list[dict[str, Any]]) -> list[tuple[int, str, bool]]:
    """O_PATH descriptors of the volume sources, opened on the host side before chroot."""
    return [(os.open(m["source"], os.O_PATH), m["target"], bool(m.get("read_only"))) for m in mounts]


def _mount_volumes(sources: list[tuple[int, str, bool]]) -> None:
    """Binds the volumes once inside the root, so a target's symlinks (/var/run -> /run) resolve in the
    container, never on the host; the source is reached through its descriptor."""
    for fd, target, read_only in sources:
        _bind(f"/proc/self/fd/{fd}", target, read_only)
        os.close(fd)


def _join_cgroup(path: str | None) -> None:
    if path:
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write("0")


def _limit_memory(limit: int | None) -> None:
    if limit:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _start(spec: dict[str, Any], status: int) -> None:
    os.write(status, f"pid {os.readlink('/proc/self')}\nmntns {os.readlink('/proc/self/ns/mnt')}\n".encode())
    _join_cgroup(spec.get("cgroup"))
    if spec.get("isolated", True):
        root = _make_root(spec)
        hostname = spec.get("hostname")
        if hostname:
            _libc.sethostname(hostname.encode(), len(hostname.encode()))
        sources = _open_sources(spec["mounts"])
        os.chroot(root)
        os.chdir("/")
        _mount_volumes(sources)
    workdir = spec.get("working_dir") or "/"
    os.makedirs(workdir, exist_ok=True)
    os.chdir(workdir)
    _limit_memory(spec.get("rlimit_as"))
    if spec.get("isolated", True):
        _add_aliases(spec.get("aliases") or {}, spec["env"].get("PATH", os.defpath))
    _become(spec.get("run_as_user"), spec.get("run_as_group"))
    executable = _which(spec["argv"][0], spec["env"].get("PATH", os.defpath))
    _default_signals()
    os.write(status, b"exec\n")
    os.execve(executable, spec["argv"], spec["env"])  # noqa: S606 - the container's command, by design


def _default_signals() -> None:
    """Every signal at its default and none blocked, as runc starts a container: a simulator started in
    the background (SIGINT and SIGQUIT ignored, as a shell does for `&`) must not pass that on to pods,
    or a sidecar's `trap ... INT` never fires (the Airflow XCom sidecar ends on SIGINT)."""
    for sig in signal.valid_signals():
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            with contextlib.suppress(OSError, ValueError):
                signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def _run_container(spec: dict[str, Any], status: int) -> None:
    try:
        _start(spec, status)
    except OSError as e:
        name = spec["argv"][0] if spec.get("argv") else "?"
        reason = e.strerror if e.filename is None else f"{e.strerror}: {e.filename}"
        message = f'exec: "{name}": {reason}'.replace("\n", " ")
        os.write(status, f"error {message}\n".encode())
        os._exit(START_ERROR_EXIT)


def _add_aliases(aliases: dict[str, str], path: str) -> None:
    """Commands an image would have (`python` in a python image) as links in the container's own layer."""
    for name, target in aliases.items():
        try:
            _which(name, path)
            continue
        except OSError:
            pass
        try:
            resolved = _which(target, path)
        except OSError:
            continue
        os.makedirs("/usr/local/bin", exist_ok=True)
        os.symlink(resolved, os.path.join("/usr/local/bin", name))


def _become(user: int | None, group: int | None) -> None:
    """securityContext.runAsUser/runAsGroup (the group defaults to the user's id, as with a numeric image user)."""
    if user is None and group is None:
        return
    os.setgroups([])
    os.setgid(group if group is not None else (user or 0))
    if user is not None:
        os.setuid(user)


def _which(name: str, path: str) -> str:
    """The executable `name` resolves to, with the container runtime's error when there is none."""
    if "/" in name:
        if os.access(name, os.X_OK) and not os.path.isdir(name):
            return name
        raise OSError(2, "no such file or directory")
    for directory in path.split(":"):
        candidate = os.path.join(directory or ".", name)
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    raise OSError(2, "executable file not found in $PATH")


def _pause(status: int) -> None:
    """PID 1 of a shared PID namespace: reaps orphans and ends on SIGTERM."""
    os.write(status, f"pid {os.readlink('/proc/self')}\n".encode())
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    while True:
        try:
            os.wait()
        except ChildProcessError:
            signal.pause()


def _unshare(flags: int) -> None:
    if _libc.unshare(flags) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"unshare: {os.strerror(errno)}")


def main() -> None:
    if sys.argv[1] == "--pause":
        spec: dict[str, Any] = {"pause": True, "status_fd": sys.argv[2], "new_pid_namespace": True}
    else:
        with open(sys.argv[1]) as f:
            spec = json.load(f)
    status = int(spec["status_fd"])
    os.set_inheritable(status, False)
    if not spec.get("isolated", True):
        _run_container(spec, status)
    flags = CLONE_NEWPID if spec.get("new_pid_namespace") else 0
    _unshare(flags | (0 if spec.get("pause") else CLONE_NEWNS | CLONE_NEWUTS))
    child = os.fork()
    if child == 0:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if spec.get("pause"):
            _pause(status)
        _run_container(spec, status)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _, raw = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(raw)
    os.write(status, f"status {code}\n".encode())
    sys.exit(128 - code if code < 0 else code)


if __name__ == "__main__":
    main()
