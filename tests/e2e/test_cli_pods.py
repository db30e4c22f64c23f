"""The CLI's pod verbs against `podgate serve` over real gRPC: run (detached, interrupted, from a manifest),
pods list/get, logs, attach and cancel, each as a real process."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from gateway.client import AirflowContext, ChannelSpec, GatewayClient, PodSpecRequest
from tests.conftest import BIN, ROOT, clean_env, podgate_serve

COUNT = "import time\nfor i in range(5): print(i, flush=True); time.sleep(0.05)"
SLEEP = "import time\nprint('up', flush=True)\ntime.sleep(120)"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with podgate_serve(tmp_path_factory.mktemp("state")) as served:
        yield served.address


def podgate(gw: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "podgate"), *args], cwd=ROOT, env=clean_env(PODGATE_GATEWAY=gw, **env),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def start(gw: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(BIN / "podgate"), *args], cwd=ROOT, env=clean_env(PODGATE_GATEWAY=gw),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def rid() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def python(code: str) -> tuple[str, ...]:
    return ("--image", "python:3.12", "--", "python", "-c", code)


def test_detached_run_is_found_again_by_list_get_logs_and_attach(gw: str) -> None:
    request = rid()
    done = podgate(
        gw, "run", "--detach", "--request-id", request, "--name", "counter", "--namespace", "airflow",
        "--label", "team=ml", "--annotation", "note=cli", "--cpu", "250m", "--memory", "64Mi", *python(COUNT),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[0] == f"request {request}"
    assert "pod airflow/counter-" in done.stderr and f"podgate attach {request}" in done.stderr

    attached = podgate(gw, "attach", request)
    assert (attached.returncode, attached.stdout.split()) == (0, ["0", "1", "2", "3", "4"]), attached.stderr
    assert "Succeeded: exit code 0" in attached.stderr

    names = podgate(gw, "pods", "list", "-o", "name", "-l", "team=ml", "--namespace", "airflow", "--phase", "succeeded")
    assert names.stdout.split() == [request]
    assert podgate(gw, "pods", "list", "-o", "name", "-l", "team!=ml").stdout.split().count(request) == 0
    assert podgate(gw, "pods", "list", "-o", "name", "--namespace", "default").stdout.split().count(request) == 0
    wide = podgate(gw, "pods", "list", "-o", "wide", "-l", "team=ml").stdout.splitlines()
    assert wide[0].split()[:3] == ["REQUEST", "ID", "PHASE"] and "LABELS" in wide[0]
    assert request in wide[1] and "team=ml" in wide[1] and "Completed" in wide[1]
    listed = json.loads(podgate(gw, "pods", "list", "-o", "json", "-l", "team=ml").stdout)
    assert [(p["request_id"], p["phase"], p["namespace"]) for p in listed] == [(request, "Succeeded", "airflow")]
    assert yaml.safe_load(podgate(gw, "pods", "list", "-o", "yaml", "-l", "team=ml").stdout) == listed

    shown = podgate(gw, "pods", "get", request)
    assert shown.returncode == 0, shown.stderr
    assert "Phase:     Succeeded" in shown.stdout and "Labels:    team=ml" in shown.stdout
    assert "Placement: placed on" in shown.stdout and "Started container" in shown.stdout
    got = json.loads(podgate(gw, "pods", "get", request, "-o", "json").stdout)
    assert got["result"]["exit_code"] == 0 and any(e["reason"] == "Scheduled" for e in got["events"])

    assert podgate(gw, "logs", request).stdout.split() == ["0", "1", "2", "3", "4"]
    assert podgate(gw, "logs", "-f", request, "--container", "base").stdout.split() == ["0", "1", "2", "3", "4"]
    other = podgate(gw, "logs", request, "--container", "sidecar")
    assert other.returncode == 125 and "--logs all" in other.stderr


def test_logs_follow_and_cancel_of_a_running_pod(gw: str) -> None:
    request = rid()
    assert podgate(gw, "run", "-d", "--request-id", request, *python(SLEEP)).returncode == 0
    follower = start(gw, "logs", "-f", request)
    assert follower.stdout is not None and follower.stdout.readline() == "up\n"
    assert podgate(gw, "logs", request).stdout == "up\n"  # without -f: what is there now, then exit
    cancelled = podgate(gw, "cancel", request, "--reason", "enough")
    assert cancelled.returncode == 0 and f"cancelled {request} (pod default/" in cancelled.stdout
    assert follower.wait(timeout=60) == 0
    again = podgate(gw, "cancel", request)
    assert again.returncode == 0 and "already finished (Cancelled)" in again.stdout
    attached = podgate(gw, "attach", request)
    assert attached.returncode == 130 and "Cancelled: enough" in attached.stderr
    assert podgate(gw, "pods", "get", "no-such-request").returncode == 125


def test_interrupted_run_says_what_it_cancelled(gw: str) -> None:
    request = rid()
    proc = start(gw, "run", "--request-id", request, *python(SLEEP))
    assert proc.stdout is not None and proc.stdout.readline() == "up\n"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.splitlines()[0] == f"request {request}"
    assert f"interrupted; cancelled {request} (pod default/podgate-run-" in err
    assert json.loads(podgate(gw, "pods", "get", request, "-o", "json").stdout)["phase"] == "Cancelled"


def test_pods_list_watch_prints_a_new_pod(gw: str) -> None:
    watcher = start(gw, "pods", "list", "--watch", "-o", "name", "-l", "watch=me")
    request = rid()
    assert podgate(gw, "run", "--request-id", request, "--label", "watch=me", *python(COUNT)).returncode == 0
    assert watcher.stdout is not None
    assert watcher.stdout.readline().strip() == request
    watcher.send_signal(signal.SIGINT)
    assert watcher.wait(timeout=30) == 130


def test_attach_detaches_on_ctrl_c_and_resumes_from_its_cursor(gw: str) -> None:
    request = rid()
    # Long enough that the Ctrl-C below lands while attach is streaming: with 2 s, under load the pod had
    # finished by then and the interrupt met a CLI already exiting (killed by SIGINT: rc -2, not 130).
    code = "import time\nprint('up', flush=True)\ntime.sleep(6)\nprint('done')"
    assert podgate(gw, "run", "-d", "--request-id", request, *python(code)).returncode == 0
    first = start(gw, "attach", request)
    assert first.stdout is not None and first.stdout.readline() == "up\n"
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=30)
    assert first.returncode == 130
    hint = next(line for line in err.splitlines() if line.startswith("detached from"))
    cursor = hint.rsplit("--cursor ", 1)[1]
    resumed = podgate(gw, "attach", request, "--cursor", cursor)
    assert (resumed.returncode, resumed.stdout) == (0, "done\n"), resumed.stderr


def test_run_from_a_manifest_with_flags_overriding(gw: str, tmp_path: Path) -> None:
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "from-file", "namespace": "airflow", "labels": {"origin": "file"}},
        "spec": {"containers": [{
            "name": "main", "image": "busybox",
            "command": ["python", "-c", "import os; print(os.environ['A'], os.environ['B'])"],
            "env": [{"name": "A", "value": "file"}, {"name": "B", "value": "file"}],
        }]},
    }))  # fmt: skip
    request = rid()
    done = podgate(
        gw, "run", "-f", str(manifest), "--image", "python:3.12", "--env", "B=flag", "--request-id", request,
        "--label", "extra=yes",
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (0, "file flag\n"), done.stderr
    assert "pod airflow/from-file-" in done.stderr
    got = json.loads(podgate(gw, "pods", "get", request, "-o", "json").stdout)
    assert got["labels"] == {"origin": "file", "extra": "yes"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("kind: Deployment\n", "kind: Pod"),
        ("kind: Pod\nspec: {containers: []}\n", "at least one container"),
        ("kind: Pod\nspec: [\n", "not valid YAML"),
    ],
)
def test_a_bad_manifest_is_one_line(gw: str, tmp_path: Path, content: str, message: str) -> None:
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(content)
    done = podgate(gw, "run", "-f", str(manifest))
    assert done.returncode == 125 and message in done.stderr and len(done.stderr.splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_logs_all_streams_every_container_and_logs_picks_one(gw: str, tmp_path: Path) -> None:
    manifest = tmp_path / "two.yaml"
    manifest.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "two"},
        "spec": {"containers": [
            {"name": "main", "image": "python:3.12", "command": ["python", "-c", "print('from main')"]},
            {"name": "side", "image": "python:3.12", "command": ["python", "-c", "print('from side')"]},
        ]},
    }))  # fmt: skip
    request = rid()
    done = podgate(gw, "run", "-f", str(manifest), "--logs", "all", "--request-id", request)
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == ["from main", "from side"]
    assert podgate(gw, "logs", request, "--container", "side").stdout == "from side\n"
    only_main = podgate(gw, "run", "-f", str(manifest))
    assert only_main.stdout == "from main\n"  # the default: the main container's lines


def test_a_detached_pod_nobody_reattaches_to_is_cancelled_after_its_grace(gw: str) -> None:
    request = rid()
    assert podgate(gw, "run", "-d", "--reattach-grace", "1s", "--request-id", request, *python(SLEEP)).returncode == 0
    follower = start(gw, "attach", request)
    assert follower.stdout is not None and follower.stdout.readline() == "up\n"
    follower.send_signal(signal.SIGINT)  # detaches: the last client leaves, the 1 s grace starts
    assert follower.wait(timeout=30) == 130
    for _ in range(100):
        got = json.loads(podgate(gw, "pods", "get", request, "-o", "json").stdout)
        if got["phase"] == "Cancelled":
            break
    assert got["phase"] == "Cancelled" and "no client reattached" in got["result"]["message"]


def test_pods_list_by_cluster_dag_and_limit(gw: str) -> None:
    label = f"batch={uuid.uuid4().hex[:8]}"
    on_cpu, on_gpu, from_dag = rid(), rid(), rid()
    for request, cluster in ((on_cpu, "local-eu-cpu"), (on_gpu, "local-eu-gpu")):
        placed = podgate(gw, "run", "-d", "--request-id", request, "--cluster", cluster, "--label", label, *python("print(1)"))
        assert placed.returncode == 0, placed.stderr
    dag = f"dag_{uuid.uuid4().hex[:8]}"
    asyncio.run(_submit_from_airflow(gw, from_dag, dag))

    def names(*filters: str) -> list[str]:
        listed = podgate(gw, "pods", "list", "-o", "name", *filters)
        assert listed.returncode == 0, listed.stderr
        return listed.stdout.split()

    assert names("-l", label, "--cluster", "local-eu-cpu") == [on_cpu]
    assert names("-l", label, "--cluster", "local-eu-gpu") == [on_gpu]
    assert names("-l", label) == [on_gpu, on_cpu]  # newest first
    assert names("-l", label, "--limit", "1") == [on_gpu]
    assert names("--dag", dag) == [from_dag]
    assert names("--dag", "no_such_dag") == []


async def _submit_from_airflow(gw: str, request_id: str, dag: str) -> None:
    """A pod as the Airflow operator submits it: with its task instance (the CLI cannot set one)."""
    container = {"name": "base", "image": "python:3.12", "command": ["python", "-c", "print(1)"]}
    request = PodSpecRequest.build(
        request_id=request_id,
        pod={"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "task"}, "spec": {"containers": [container]}},
        airflow=AirflowContext(dag_id=dag, task_id="t", run_id="manual__1"),
    )
    async with GatewayClient(ChannelSpec(address=gw)) as client:
        await client.submit_pod(request)
