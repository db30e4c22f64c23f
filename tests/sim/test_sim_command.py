"""`podgate sim` in the foreground: prints each cluster's URL and kubeconfig, serves kubectl, stops on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import yaml

from tests.conftest import ROOT, clean_env


def test_podgate_sim_serves_every_cluster_until_terminated(tmp_path: Path) -> None:
    kubeconfigs = tmp_path / "kc"
    process = subprocess.Popen(
        ["podgate", "sim", "--config", str(ROOT / "clusters" / "local.yaml"), "--kubeconfig-dir", str(kubeconfigs)],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(4)]
        assert lines[0].split() == ["CLUSTER", "URL", "KUBECONFIG"]
        names = [line.split()[0] for line in lines[1:]]
        assert names == ["local-eu-gpu", "local-eu-cpu", "local-us-gpu"]
        assert "URL and bearer token in" in process.stdout.readline() + process.stdout.readline()
        assert process.stdout.readline().startswith("event loop: asyncio")  # local.yaml's nodes run processes
        control = kubeconfigs / "control.yaml"
        assert control.stat().st_mode & 0o777 == 0o600
        assert (kubeconfigs / "local-eu-gpu.kubeconfig").stat().st_mode & 0o777 == 0o600
        assert yaml.safe_load(control.read_text())["url"].startswith("http://127.0.0.1:")
        merged = yaml.safe_load((kubeconfigs / "kubeconfig").read_text())
        assert [c["name"] for c in merged["contexts"]] == names
        result = subprocess.run(
            [
                "kubectl",
                "--kubeconfig",
                str(kubeconfigs / "kubeconfig"),
                "--context",
                "local-us-gpu",
                "get",
                "nodes",
                "-o",
                "name",
            ],
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.stdout.split() == ["node/us-cpu-1", "node/us-gpu-h100-1"], result.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err


VIRTUAL_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "virtual",
        "annotations": {
            "sim.podgate.io/duration": "3",
            "sim.podgate.io/log-lines": "first\nsecond",
            "sim.podgate.io/xcom": '{"answer": 42}',
        },
    },
    "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox:1.36"}]},
}


def test_podgate_sim_on_virtual_nodes_runs_on_uvloop_and_serves_kubectl(tmp_path: Path) -> None:
    """Every node virtual (bench/clusters_virtual.yaml): uvloop, with kubectl's HTTP/2 (ALPN), its watch
    (`kubectl wait`), a followed log and an exec over WebSocket served as on the standard loop."""
    kubeconfigs = tmp_path / "kc"
    config = ROOT / "bench" / "clusters_virtual.yaml"
    process = subprocess.Popen(
        ["podgate", "sim", "--config", str(config), "--kubeconfig-dir", str(kubeconfigs)],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    kubectl = ["kubectl", "--kubeconfig", str(kubeconfigs / "kubeconfig"), "--context", "local-eu-cpu"]

    def run(*args: str, stdin: str | None = None) -> str:
        done = subprocess.run([*kubectl, *args], env=clean_env(), input=stdin, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(7)]
        assert lines[-1].startswith("event loop: uvloop"), lines
        run("apply", "-f", "-", stdin=json.dumps(VIRTUAL_POD))
        run("wait", "--for=condition=Ready", "pod/virtual", "--timeout=60s")
        assert run("exec", "virtual", "--", "cat", "/airflow/xcom/return.json") == '{"answer": 42}'
        assert run("logs", "-f", "virtual").splitlines() == ["first", "second"]
        assert run("get", "pod", "virtual", "-o", "jsonpath={.status.phase}") == "Succeeded"
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err


def test_podgate_sim_rejects_a_bad_config_clearly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("clusters:\n  - name: x\n    sim:\n      nodes: [{labels: {}}]\n")
    result = subprocess.run(
        ["podgate", "sim", "--config", str(bad)], env=clean_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "clusters[0] x.sim.nodes[0]: a node needs a name" in result.stderr
