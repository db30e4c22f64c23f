"""The node side through real HTTPS: the official kubernetes client and kubectl run pods, follow logs,
exec into containers and read the XCom both through exec and through the termination message."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, watch
from kubernetes.stream import stream

from tests.conftest import clean_env
from tests.fixtures_sim import SimThread, kube_client
from tests.sim.leaks import no_leaks as no_leaks

CLUSTER = "local-eu-cpu"
XCOM_SCRIPT = (
    "import json, time\n"
    "print('starting', flush=True)\n"
    "json.dump({'rows': 42}, open('/airflow/xcom/return.json', 'w'))\n"
    "open('/dev/termination-log', 'w').write(open('/airflow/xcom/return.json').read())\n"
    "print('written', flush=True)\n"
    "time.sleep(float(__import__('os').environ.get('LINGER', '0')))\n"
)


def xcom_pod(name: str, linger: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "base",
                    "image": "python:3.12-slim",
                    "command": ["python3"],
                    "args": ["-c", XCOM_SCRIPT],
                    "env": [{"name": "LINGER", "value": linger}],
                    "volumeMounts": [{"name": "xcom", "mountPath": "/airflow/xcom"}],
                }
            ],
            "volumes": [{"name": "xcom", "emptyDir": {}}],
        },
    }


@pytest.fixture
def core(sim_thread: SimThread) -> Iterator[client.CoreV1Api]:
    with kube_client(sim_thread.clusters[CLUSTER]) as api:
        yield client.CoreV1Api(api)


def wait_phase(core: client.CoreV1Api, name: str, *phases: str) -> client.V1Pod:
    for event in watch.Watch().stream(
        core.list_namespaced_pod, "default", field_selector=f"metadata.name={name}", timeout_seconds=30
    ):
        if event["object"].status.phase in phases:
            return event["object"]
    raise AssertionError(f"pod {name} never reached {phases}")


def wait_logged(core: client.CoreV1Api, name: str, text: str) -> None:
    response = core.read_namespaced_pod_log(name, "default", follow=True, _preload_content=False)
    try:
        for line in response.stream():
            if text.encode() in line:
                return
    finally:
        response.release_conn()
    raise AssertionError(f"{name} never logged {text!r}")


def test_client_follows_logs_execs_and_reads_the_termination_message(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod("default", xcom_pod("xcom", linger="30"))
    wait_phase(core, "xcom", "Running")
    follow = core.read_namespaced_pod_log("xcom", "default", container="base", follow=True, _preload_content=False)
    lines = follow.stream()
    assert next(lines).startswith(b"starting")
    follow.release_conn()
    wait_logged(core, "xcom", "written")  # the XCom file exists from then on
    stamped = core.read_namespaced_pod_log("xcom", "default", timestamps=True, tail_lines=1)
    assert stamped.endswith("Z written\n") and stamped[4] == "-"
    out = stream(
        core.connect_get_namespaced_pod_exec,
        "xcom",
        "default",
        container="base",
        command=["cat", "/airflow/xcom/return.json"],
        stdout=True,
        stderr=True,
        stdin=False,
        tty=False,
    )
    assert json.loads(out) == {"rows": 42}
    session = stream(
        core.connect_get_namespaced_pod_exec,
        "xcom",
        "default",
        command=["sh", "-c", "cat; exit 3"],
        stdout=True,
        stderr=True,
        stdin=True,
        tty=False,
        _preload_content=False,
    )
    session.write_stdin("through stdin")
    session.update(timeout=1)
    session.close_channel(0)  # v5.channel.k8s.io: stdin ends
    session.run_forever(timeout=10)
    assert session.read_stdout() == "through stdin" and session.returncode == 3
    core.delete_namespaced_pod("xcom", "default", grace_period_seconds=0)

    core.create_namespaced_pod("default", xcom_pod("quick", linger="0"))
    done = wait_phase(core, "quick", "Succeeded", "Failed")
    terminated = done.status.container_statuses[0].state.terminated
    assert (done.status.phase, terminated.reason, json.loads(terminated.message)) == (
        "Succeeded",
        "Completed",
        {"rows": 42},
    )
    assert core.read_namespaced_pod_log("quick", "default") == "starting\nwritten\n"
    reasons = [e.reason for e in core.list_namespaced_event("default").items if e.involved_object.name == "quick"]
    assert reasons[:1] == ["Scheduled"] and "Started" in reasons


def kubectl(kubeconfig: Path, *args: str) -> str:
    result = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args], env=clean_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_kubectl_logs_follow_exec_and_delete(sim_thread: SimThread, core: client.CoreV1Api) -> None:
    kubeconfig = sim_thread.clusters[CLUSTER].kubeconfig_path
    manifest = json.dumps(xcom_pod("kx", linger="3"))
    subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), "create", "--validate=false", "-f", "-"],
        input=manifest,
        env=clean_env(),
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    wait_phase(core, "kx", "Running")
    wait_logged(core, "kx", "written")
    row = kubectl(kubeconfig, "get", "pod", "kx", "-o", "wide").splitlines()[1].split()
    assert row[:3] == ["kx", "1/1", "Running"] and row[5].startswith("10.244.") and row[6] == "eu-central-cpu-1"
    described = kubectl(kubeconfig, "describe", "pod", "kx")
    assert "Started container base" in described and "Successfully assigned default/kx to eu-central-cpu-1" in described
    assert json.loads(kubectl(kubeconfig, "exec", "kx", "--", "cat", "/airflow/xcom/return.json")) == {"rows": 42}
    assert kubectl(kubeconfig, "logs", "-f", "kx") == "starting\nwritten\n"  # returns when the container ends
    assert "deleted" in kubectl(kubeconfig, "delete", "pod", "kx", "--wait=true")


WHOAMI = """
import json, os, ssl, urllib.request
d = "/var/run/secrets/kubernetes.io/serviceaccount"
host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
request = urllib.request.Request(
    f"https://{host}:{port}/apis/authentication.k8s.io/v1/selfsubjectreviews",
    data=json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}).encode(),
    headers={"Authorization": "Bearer " + open(d + "/token").read(), "Content-Type": "application/json"},
)
context = ssl.create_default_context(cafile=d + "/ca.crt")
review = json.load(urllib.request.urlopen(request, context=context))
print(review["status"]["userInfo"]["username"], open(d + "/namespace").read())
"""


def test_pods_reach_their_api_server_in_cluster_style(sim_thread: SimThread, core: client.CoreV1Api) -> None:
    cluster = sim_thread.clusters[CLUSTER]
    sim_thread.call(
        cluster.kubelet.configure_api_access,
        "127.0.0.1",
        cluster.port,
        cluster.ca_pem,
        lambda namespace, account: cluster.mint_service_account_token(namespace, account),
    )
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "whoami"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "python:3.12", "command": ["python3"], "args": ["-c", WHOAMI]}],
        },
    }
    core.create_namespaced_pod("default", body)
    done = wait_phase(core, "whoami", "Succeeded", "Failed")
    assert core.read_namespaced_pod_log("whoami", "default") == "system:serviceaccount:default:default default\n", (
        done.status
    )
    body["metadata"]["name"] = "tokenless"
    body["spec"]["automountServiceAccountToken"] = False
    core.create_namespaced_pod("default", body)
    assert wait_phase(core, "tokenless", "Succeeded", "Failed").status.phase == "Failed"
    assert "No such file or directory" in core.read_namespaced_pod_log("tokenless", "default")
