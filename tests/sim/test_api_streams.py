"""pods/log and pods/exec through the API server into the kubelet's real processes: the official client
(follow, kubernetes.stream exec with exit codes) and kubectl (logs -f, exec, exec -i)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.stream import stream

from tests.conftest import clean_env
from tests.fixtures_sim import SimThread, kube_client
from tests.sim.leaks import no_leaks  # noqa: F401 - module-scoped check: no process or mount left

CLUSTER = "local-eu-cpu"
SCRIPT = "echo one; sleep 0.4; echo two; echo '{\"rows\": 3}' > /airflow/xcom/return.json; sleep {rest}"


def xcom_pod(name: str, rest: float) -> dict:
    return {
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "volumes": [{"name": "xcom", "emptyDir": {}}],
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "command": ["sh", "-c", SCRIPT.replace("{rest}", str(rest))],
                    "volumeMounts": [{"name": "xcom", "mountPath": "/airflow/xcom"}],
                }
            ],
        },
    }


@pytest.fixture
def core(sim_thread: SimThread) -> Iterator[client.CoreV1Api]:
    with kube_client(sim_thread.clusters[CLUSTER]) as api:
        yield client.CoreV1Api(api)


def exec_in(core: client.CoreV1Api, pod: str, command: list[str], **options: Any) -> Any:
    """kubernetes.stream's exec into the pod's container in "default": stdout and stderr, no stdin, no tty."""
    return stream(
        core.connect_get_namespaced_pod_exec,
        pod,
        "default",
        command=command,
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        **options,
    )


def wait_phase(core: client.CoreV1Api, name: str, phases: tuple[str, ...]) -> client.V1Pod:
    deadline = time.monotonic() + 60  # bounds a failure only: a pod starts in well under a second when quiet
    while time.monotonic() < deadline:
        pod = core.read_namespaced_pod(name, "default")
        if pod.status.phase in phases:
            return pod
        time.sleep(0.05)
    pytest.fail(f"pod {name} never reached {phases}: {pod.status}")


def running(core: client.CoreV1Api, pattern: str) -> bool:
    """Whether a process matching `pattern` runs in the pod's container (pgrep, through exec). pgrep must
    answer: an exec cut off by its wait would read as "not running" and let a command that outlived its
    session pass."""
    found = stream(
        core.connect_get_namespaced_pod_exec,
        "streams",
        "default",
        command=["pgrep", "-f", pattern],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        _preload_content=False,
    )
    found.run_forever(timeout=60)  # bounds a failure only
    assert found.returncode is not None, "pgrep did not answer within 60 s"
    return found.returncode == 0


def kubectl(sim_thread: SimThread, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    kubeconfig = str(sim_thread.clusters[CLUSTER].kubeconfig_path)
    return subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, *args],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
    )


def test_follow_logs_and_exec_with_the_official_client(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod("default", xcom_pod("streams", rest=120))  # outlives the test's execs under load
    wait_phase(core, "streams", ("Running",))
    response = core.read_namespaced_pod_log("streams", "default", follow=True, _preload_content=False)
    lines = []
    for chunk in response.stream(16):
        lines += chunk.decode().splitlines()
        if "two" in lines:
            break
    response.release_conn()
    assert lines == ["one", "two"]
    deadline = time.monotonic() + 30  # the script writes the file just after "two": under load, a while after
    while True:
        out = exec_in(core, "streams", ["cat", "/airflow/xcom/return.json"])
        if out == '{"rows": 3}\n' or time.monotonic() > deadline:
            break
        assert "No such file" in out, out  # not written yet is the only other answer
        time.sleep(0.1)
    assert out == '{"rows": 3}\n'
    failing = exec_in(core, "streams", ["sh", "-c", "echo oops >&2; exit 3"], _preload_content=False)
    failing.run_forever(timeout=60)  # bounds a failure only
    assert failing.returncode == 3 and failing.read_stderr() == "oops\n"
    sleeper = exec_in(core, "streams", ["sleep", "300"], _preload_content=False)
    # the exec's answer comes once nsenter is started, not once it has entered the container and started the
    # command: under load pgrep, right after, could run first (seen twice in the suite at load 15)
    deadline = time.monotonic() + 30
    while not running(core, "sleep 300"):
        assert time.monotonic() < deadline, "the exec'd command never ran"
        time.sleep(0.1)
    sleeper.close()  # the client goes away: the command must not outlive its session
    deadline = time.monotonic() + 10
    while running(core, "sleep 300"):
        assert time.monotonic() < deadline, "the exec'd command outlived the closed session"
        time.sleep(0.1)
    timestamps = core.read_namespaced_pod_log("streams", "default", timestamps=True, tail_lines=1)
    assert timestamps.rstrip().endswith(" two") and timestamps[:4].isdigit()
    core.delete_namespaced_pod("streams", "default")


def test_logs_of_a_pending_pod_and_unknown_container_are_400(core: client.CoreV1Api) -> None:
    pending = xcom_pod("stuck", rest=0)
    pending["spec"]["nodeSelector"] = {"nowhere": "true"}
    core.create_namespaced_pod("default", pending)
    with pytest.raises(client.ApiException) as waiting:
        core.read_namespaced_pod_log("stuck", "default")
    assert waiting.value.status == 400 and "is waiting to start" in waiting.value.body
    with pytest.raises(client.ApiException) as unknown:
        core.read_namespaced_pod_log("stuck", "default", container="nope")
    assert unknown.value.status == 400 and "container nope is not valid for pod stuck" in unknown.value.body


# The container waits (up to 60 s) until the test releases it: three kubectl execs take well over a second
# on a loaded machine, and a pod that had ended by then made the third one fail.
RELEASE = "i=0; while [ ! -f /airflow/xcom/release ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done"


def test_kubectl_logs_follow_and_exec(sim_thread: SimThread, core: client.CoreV1Api) -> None:
    pod = xcom_pod("kubectl-streams", rest=0)
    pod["spec"]["containers"][0]["command"][-1] += "; " + RELEASE
    core.create_namespaced_pod("default", pod)
    wait_phase(core, "kubectl-streams", ("Running",))
    time.sleep(0.6)
    cat = kubectl(sim_thread, "exec", "kubectl-streams", "--", "cat", "/airflow/xcom/return.json")
    assert cat.returncode == 0 and cat.stdout == '{"rows": 3}\n', cat.stderr
    piped = kubectl(sim_thread, "exec", "-i", "kubectl-streams", "--", "cat", stdin="through stdin\n")
    assert piped.stdout == "through stdin\n", piped.stderr
    failed = kubectl(sim_thread, "exec", "kubectl-streams", "--", "sh", "-c", "exit 4")
    assert failed.returncode == 4 and "command terminated with exit code 4" in failed.stderr
    released = kubectl(sim_thread, "exec", "kubectl-streams", "--", "touch", "/airflow/xcom/release")
    assert released.returncode == 0, released.stderr
    followed = kubectl(sim_thread, "logs", "-f", "kubectl-streams")
    assert followed.returncode == 0 and followed.stdout == "one\ntwo\n", followed.stderr
    assert wait_phase(core, "kubectl-streams", ("Succeeded", "Failed")).status.phase == "Succeeded"
