"""The process runtime with real processes: namespaces, mounts, logs, termination files, OOM, exec."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.sim.logstore import ContainerLog, LogOptions
from gateway.sim.runtime.base import ContainerSpec, ExitStatus, Mount
from gateway.sim.runtime.process import ProcessContainer, ProcessRuntime, ProcessSandbox
from tests.sim.leaks import no_leaks as no_leaks

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[ProcessRuntime]:
    rt = ProcessRuntime(tmp_path / "podgate-sim")
    await rt.start()
    assert rt.isolated, rt.degraded_reason
    yield rt
    await rt.close()


@pytest.fixture
async def sandbox(runtime: ProcessRuntime) -> AsyncIterator[ProcessSandbox]:
    box = await runtime.create_sandbox("uid-1", ["xcom", "shared"], share_pid=False)
    yield box
    await runtime.remove_sandbox(box)


def exists(path: str | Path) -> bool:
    return Path(path).exists()


def read(path: str | Path) -> str:
    return Path(path).read_text()


def spec(name: str, script: str, *mounts: Mount, memory: int | None = None, **env: str) -> ContainerSpec:
    return ContainerSpec(
        namespace="default",
        pod="pod-1",
        pod_uid="uid-1",
        name=name,
        argv=("sh", "-c", script),
        env={"PATH": PATH, **env},
        working_dir="/work/dir",
        mounts=mounts,
        memory_limit=memory,
        hostname="pod-1",
    )


async def run(rt: ProcessRuntime, box: ProcessSandbox, s: ContainerSpec) -> tuple[ExitStatus, ContainerLog]:
    log = ContainerLog()
    container = await rt.run(box, s, log)
    status = await asyncio.wait_for(container.wait(), 20)
    log.close()
    return status, log


async def text(log: ContainerLog, **options: object) -> str:
    return b"".join([chunk async for chunk in log.read(LogOptions(**options))]).decode()  # type: ignore[arg-type]


async def test_env_workdir_hostname_exit_code_and_logs_after_exit(
    runtime: ProcessRuntime, sandbox: ProcessSandbox
) -> None:
    status, log = await run(
        runtime, sandbox, spec("main", "echo $GREETING; pwd; hostname; echo oops >&2; exit 3", GREETING="hi")
    )
    assert status == ExitStatus(exit_code=3)
    assert await text(log) == "hi\n/work/dir\npod-1\noops\n"
    stamped = (await text(log, timestamps=True)).splitlines()
    assert (
        len(stamped) == 4
        and stamped[0].endswith("Z hi")
        and len(stamped[0].split(" ")[0]) == len("2026-11-24T13:00:00.123456789Z")
    )
    assert not exists("/work/dir"), "the container's writable layer must not reach the host"


async def test_empty_dir_is_shared_between_containers_and_termination_file_reaches_host(
    runtime: ProcessRuntime, sandbox: ProcessSandbox
) -> None:
    shared = Mount(sandbox.volumes["shared"], "/data")
    xcom = Mount(sandbox.volumes["xcom"], "/airflow/xcom")
    term = sandbox.termination_file("writer")
    term.parent.mkdir(parents=True, exist_ok=True)
    term.touch()
    script = "echo payload > /data/f; echo '{\"a\": 1}' > /airflow/xcom/return.json; printf bye > /dev/termination-log"
    status, _ = await run(
        runtime, sandbox, spec("writer", script, shared, xcom, Mount(str(term), "/dev/termination-log"))
    )
    assert status.exit_code == 0
    assert read(term) == "bye"
    assert read(Path(sandbox.volumes["xcom"], "return.json")) == '{"a": 1}\n'
    status, log = await run(runtime, sandbox, spec("reader", "cat /data/f; ls /airflow 2>&1 || true", shared))
    assert await text(log) == "payload\nls: cannot access '/airflow': No such file or directory\n"
    assert not exists("/airflow")


async def test_a_mount_under_a_symlinked_directory_stays_in_the_container(
    runtime: ProcessRuntime, sandbox: ProcessSandbox
) -> None:
    """/var/run -> /run (absolute) must resolve inside the container's root, never create host paths."""
    volume = Mount(sandbox.volumes["shared"], "/var/run/podgate-test/volume")
    status, log = await run(
        runtime, sandbox, spec("main", "echo in > /var/run/podgate-test/volume/f; ls /run/podgate-test", volume)
    )
    assert status.exit_code == 0 and await text(log) == "volume\n"
    assert read(Path(sandbox.volumes["shared"], "f")) == "in\n"
    assert not exists("/run/podgate-test") and not exists("/var/run/podgate-test")


async def test_pid_namespace_shows_and_reaches_only_the_container(
    runtime: ProcessRuntime, sandbox: ProcessSandbox
) -> None:
    outsider = await asyncio.create_subprocess_exec("sleep", "30")
    try:
        script = f"ps -e -o pid= -o comm=; kill -9 {outsider.pid} 2>/dev/null && echo reached || echo unreachable"
        _, log = await run(runtime, sandbox, spec("main", script))
        lines = (await text(log)).split("\n")
        assert [line.split() for line in lines[:2]] == [["1", "sh"], [lines[1].split()[0], "ps"]]
        assert lines[2] == "unreachable"
        assert outsider.returncode is None
    finally:
        outsider.kill()
        await outsider.wait()


async def test_memory_limit_is_oom_killed(runtime: ProcessRuntime, sandbox: ProcessSandbox) -> None:
    if not runtime.cgroups.available:
        pytest.fail("this machine has a writable memory cgroup; the runtime must find it")
    script = "exec python3 -c 'x = bytearray(300 * 1024 * 1024); print(len(x))'"
    status, _ = await run(runtime, sandbox, spec("main", script, memory=64 * 1024 * 1024))
    assert status.oom_killed and status.exit_code == 137 and status.signal == signal.SIGKILL


async def test_pid_1_ignores_sigterm_without_a_handler_but_not_sigkill(
    runtime: ProcessRuntime, sandbox: ProcessSandbox
) -> None:
    log = ContainerLog()
    container = await runtime.run(sandbox, spec("main", "echo up; while true; do sleep 0.05; done"), log)
    trapping = await runtime.run(
        sandbox, spec("trap", "trap 'echo bye; exit 0' TERM; echo up; while true; do sleep 0.05; done"), ContainerLog()
    )
    await asyncio.sleep(0.3)
    container.signal(signal.SIGTERM)
    trapping.signal(signal.SIGTERM)
    assert (await asyncio.wait_for(trapping.wait(), 5)).exit_code == 0
    await asyncio.sleep(0.2)
    container.signal(signal.SIGKILL)
    assert await asyncio.wait_for(container.wait(), 5) == ExitStatus(exit_code=137, signal=signal.SIGKILL)


async def test_command_not_found_is_a_start_error(runtime: ProcessRuntime, sandbox: ProcessSandbox) -> None:
    bad = ContainerSpec(
        namespace="default", pod="p", pod_uid="uid-1", name="main", argv=("no-such-binary",), env={"PATH": PATH}
    )
    status, _ = await run(runtime, sandbox, bad)
    assert status.exit_code == 128
    assert status.start_error == 'exec: "no-such-binary": executable file not found in $PATH'


async def exec_output(container: ProcessContainer, *command: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    process = await container.exec(list(command), stdin=stdin is not None, tty=False)
    if stdin is not None:
        await process.write_stdin(stdin)
        process.close_stdin()
    out = b"".join([c async for c in process.stdout])
    err = b"".join([c async for c in process.stderr])
    return await process.wait(), out.decode(), err.decode()


async def test_exec_joins_the_container(runtime: ProcessRuntime, sandbox: ProcessSandbox) -> None:
    xcom = Mount(sandbox.volumes["xcom"], "/airflow/xcom")
    script = "echo '{\"k\": [1]}' > /airflow/xcom/return.json; echo $SECRET > /tmp/private; sleep 30"
    container = await runtime.run(sandbox, spec("main", script, xcom, SECRET="s"), ContainerLog())
    try:
        for _ in range(50):
            if exists(Path(sandbox.volumes["xcom"], "return.json")):
                break
            await asyncio.sleep(0.05)
        assert await exec_output(container, "cat", "/airflow/xcom/return.json") == (0, '{"k": [1]}\n', "")
        assert await exec_output(container, "sh", "-c", "cat /tmp/private; echo $SECRET; pwd; hostname") == (
            0,
            "s\ns\n/work/dir\npod-1\n",
            "",
        )
        code, out, _ = await exec_output(container, "ps", "-e", "-o", "comm=")
        assert code == 0 and out.split() == ["sh", "sleep", "ps"]
        assert await exec_output(container, "cat", stdin=b"round trip") == (0, "round trip", "")
        assert (await exec_output(container, "sh", "-c", "echo e >&2; exit 7")) == (7, "", "e\n")
        assert not exists("/tmp/private")
    finally:
        container.signal(signal.SIGKILL)
        await container.wait()


async def test_exec_with_a_tty_and_kill(runtime: ProcessRuntime, sandbox: ProcessSandbox) -> None:
    container = await runtime.run(sandbox, spec("main", "sleep 30"), ContainerLog())
    try:
        # The resize is asynchronous to the command: wait (bounded) until the terminal has a size.
        script = 'tty; for i in $(seq 100); do [ "$(stty size)" != "0 0" ] && break; sleep 0.05; done; stty size'
        process = await container.exec(["sh", "-c", script], stdin=True, tty=True)
        process.resize(100, 40)
        out = b"".join([c async for c in process.stdout]).decode()
        assert await process.wait() == 0
        assert out.replace("\r", "").split("\n")[:2] == [out.split()[0], "40 100"] and out.startswith("/dev/pts/")
        hanging = await container.exec(["sleep", "30"], stdin=False, tty=False)
        hanging.kill()
        assert await asyncio.wait_for(hanging.wait(), 5) == 137
    finally:
        container.signal(signal.SIGKILL)
        await container.wait()


async def test_share_process_namespace_puts_containers_in_one_pid_namespace(runtime: ProcessRuntime) -> None:
    box = await runtime.create_sandbox("uid-2", [], share_pid=True)
    try:
        first = await runtime.run(box, spec("first", "exec sleep 30"), ContainerLog())
        status, log = await run(runtime, box, spec("second", "ps -e -o pid= -o comm="))
        assert status.exit_code == 0
        rows = [line.split() for line in (await text(log)).splitlines()]
        assert rows[0][0] == "1" and rows[0][1].startswith("python")  # the pause process is PID 1
        assert [r[1] for r in rows if r[1] == "sleep"] == ["sleep"]
        first.signal(signal.SIGKILL)
        assert (await first.wait()).exit_code == 137
        status, log = await run(runtime, box, spec("leaver", "sleep 30 & echo left"))  # must not hang on its child
        assert status.exit_code == 0 and await text(log) == "left\n"
    finally:
        await runtime.remove_sandbox(box)


async def test_without_isolation_containers_still_run_and_say_so(tmp_path: Path) -> None:
    rt = ProcessRuntime(tmp_path / "podgate-sim", isolate=False)
    await rt.start()
    try:
        assert not rt.isolated and rt.degraded_reason == "isolation disabled in the runtime configuration"
        box = await rt.create_sandbox("uid-3", [], share_pid=False)
        status, log = await run(rt, box, spec("main", "sleep 30 & echo $X; exit 2", X="plain"))
        assert status.exit_code == 2 and await text(log) == "plain\n"  # and its background child is gone
        container = await rt.run(box, spec("sleeper", "sleep 30", X="env"), ContainerLog())
        assert await exec_output(container, "sh", "-c", "echo $X; pwd") == (
            0,
            f"env\n{box.dir}/containers/sleeper\n",
            "",
        )
        container.signal(signal.SIGKILL)
        await container.wait()
        await rt.remove_sandbox(box)
    finally:
        await rt.close()
    assert exists(tmp_path) and not exists(tmp_path / "podgate-sim")


async def test_a_failing_probe_container_degrades_with_the_reason(tmp_path: Path) -> None:
    rt = ProcessRuntime(tmp_path / "podgate-sim", python="/bin/false")  # the launcher cannot run at all
    await rt.start()
    try:
        assert not rt.isolated
        assert rt.degraded_reason == (
            "a probe container failed: the container process ended before its command started"
        )
    finally:
        await rt.close()
