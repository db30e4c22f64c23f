"""The CLI against `podgate serve` (what `make run` starts), all as real processes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BIN, ROOT, clean_env, podgate_serve

XCOM = 'print(42); open("/airflow/xcom/return.json","w").write("{\\"v\\": 42}")'


@pytest.fixture(scope="module")
def gateway_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with podgate_serve(tmp_path_factory.mktemp("state")) as served:
        yield served.address


def podgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "podgate"), *args], cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=120
    )


def test_run_lands_on_the_eu_gpu_cluster_prints_logs_and_writes_xcom(gateway_address: str, tmp_path: Path) -> None:
    out = tmp_path / "xcom.json"
    done = podgate(
        "run",
        "--gateway",
        gateway_address,
        "--region",
        "eu-west-1",
        "--gpus",
        "1",
        "--xcom-out",
        str(out),
        "--image",
        "python:3.12",
        "--",
        "python",
        "-c",
        XCOM,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["42"]
    assert "placed on local-eu-gpu (eu-west-1)" in done.stderr
    assert json.loads(out.read_text()) == {"v": 42}


def test_run_exits_with_the_pod_exit_code(gateway_address: str) -> None:
    done = podgate(
        "run",
        "--gateway",
        gateway_address,
        "--image",
        "python:3.12",
        "--",
        "python",
        "-c",
        "import sys; print('failing'); sys.exit(7)",
    )
    assert done.returncode == 7
    assert done.stdout.splitlines() == ["failing"]
    assert "Failed" in done.stderr


def test_run_with_an_impossible_placement_explains_and_fails(gateway_address: str) -> None:
    done = podgate(
        "run",
        "--gateway",
        gateway_address,
        "--region",
        "eu-central-1",
        "--gpus",
        "1",
        "--image",
        "python:3.12",
        "--",
        "python",
        "-c",
        "print(1)",
    )
    assert done.returncode == 126  # placement, not a pod's exit code
    assert "local-eu-cpu" in done.stderr and "region" in done.stderr
    assert done.stderr.count("local-eu-cpu:") == 1  # each cluster's reason once, not again in the headline


def test_run_passes_env(gateway_address: str) -> None:
    done = podgate(
        "run",
        "--gateway",
        gateway_address,
        "--env",
        "GREETING=hej",
        "--image",
        "python:3.12",
        "--",
        "python",
        "-c",
        "import os; print(os.environ['GREETING'])",
    )
    assert (done.returncode, done.stdout.strip()) == (0, "hej")


def test_explain_shows_every_cluster_with_verdict_and_reason(gateway_address: str) -> None:
    done = podgate("explain", "--gateway", gateway_address, "--region", "eu-west-1", "--gpus", "1")
    assert done.returncode == 0, done.stderr
    rows = {line.split()[1] if line.startswith("*") else line.split()[0]: line for line in done.stdout.splitlines()[2:]}
    assert set(rows) == {"local-eu-gpu", "local-eu-cpu", "local-us-gpu"}
    assert rows["local-eu-gpu"].startswith("* ") and "eligible" in rows["local-eu-gpu"].lower()
    assert "rejected" in rows["local-us-gpu"].lower() and "eu-west-1" in rows["local-us-gpu"]


def test_clusters_list_shows_health_and_free_gpus(gateway_address: str) -> None:
    done = podgate("clusters", "list", "--gateway", gateway_address)
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines()[1:]}
    assert set(lines) == {"local-eu-gpu", "local-eu-cpu", "local-us-gpu"}
    assert "Healthy" in lines["local-eu-gpu"] and "NVIDIA-A100-SXM4-40GB:2" in lines["local-eu-gpu"]


def test_cordon_and_uncordon_from_the_cli(gateway_address: str) -> None:
    assert podgate("clusters", "cordon", "--gateway", gateway_address, "local-us-gpu").returncode == 0
    listed = podgate("clusters", "list", "--gateway", gateway_address).stdout
    assert "(cordoned)" in next(line for line in listed.splitlines() if line.startswith("local-us-gpu"))
    described = podgate("clusters", "describe", "--gateway", gateway_address, "local-us-gpu").stdout
    assert "Cordoned:     yes: cordoned with podgate clusters cordon" in described
    assert podgate("clusters", "uncordon", "--gateway", gateway_address, "local-us-gpu").returncode == 0
    listed = podgate("clusters", "list", "--gateway", gateway_address).stdout
    assert "(cordoned)" not in next(line for line in listed.splitlines() if line.startswith("local-us-gpu"))


def test_unreachable_gateway_is_a_clear_error() -> None:
    done = podgate("clusters", "list", "--gateway", "127.0.0.1:1")
    assert done.returncode == 125
    assert done.stderr.startswith("podgate clusters list: cannot reach the gateway at 127.0.0.1:1")
    assert len(done.stderr.splitlines()) == 1


def test_kubeconfig_is_written_private_and_works_with_kubectl(gateway_address: str, tmp_path: Path) -> None:
    path = tmp_path / "issued.kubeconfig"
    done = podgate(
        "kubeconfig",
        "--gateway",
        gateway_address,
        "--cluster",
        "local-eu-cpu",
        "--namespace",
        "airflow",
        "--ttl",
        "15m",
        "-o",
        str(path),
    )
    assert done.returncode == 0, done.stderr
    assert "local-eu-cpu/airflow/" in done.stderr and done.stdout == ""
    assert path.stat().st_mode & 0o777 == 0o600
    listed = subprocess.run(
        [str(BIN / "kubectl"), "--kubeconfig", str(path), "get", "pods"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr


def test_kubeconfig_ttl_below_the_minimum_is_refused(gateway_address: str) -> None:
    done = podgate(
        "kubeconfig", "--gateway", gateway_address, "--cluster", "local-eu-cpu", "--namespace", "airflow", "--ttl", "1m"
    )
    assert done.returncode == 125 and "ttl" in done.stderr


def test_dev_certs_give_a_working_mtls_gateway_and_client(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    made = podgate("dev-certs", "--dir", str(certs), "--client", "admin")
    assert made.returncode == 0, made.stderr
    assert (certs / "ca.key").stat().st_mode & 0o777 == 0o600
    exports = dict(
        item.split("=", 1) for item in made.stdout.split("export ", 1)[1].split() if item.startswith("PODGATE_")
    )
    assert podgate("dev-certs", "--dir", str(certs)).returncode == 125  # refuses to overwrite without --force
    with podgate_serve(tmp_path / "state", "--config", str(certs / "podgate.yaml")) as served:
        env = {**exports, "PODGATE_GATEWAY": served.address.replace("127.0.0.1", "localhost")}
        listed = subprocess.run([str(BIN / "podgate"), "clusters", "list", "-o", "json"], cwd=ROOT,
                                env=clean_env(**env), capture_output=True, text=True, timeout=60)  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        assert len(json.loads(listed.stdout)) == 3
        ran = subprocess.run([str(BIN / "podgate"), "run", "--request-id", "mtls-1", "--image", "python:3.12", "--",
                              "python", "-c", "print(1)"], cwd=ROOT, env=clean_env(**env), capture_output=True,
                             text=True, timeout=120)  # fmt: skip
        assert ran.returncode == 0, ran.stderr
        for tenant, expected in (("admin", ["mtls-1"]), ("other", [])):
            mine = subprocess.run([str(BIN / "podgate"), "pods", "list", "--tenant", tenant, "-o", "name"], cwd=ROOT,
                                  env=clean_env(**env), capture_output=True, text=True, timeout=60)  # fmt: skip
            assert mine.stdout.split() == expected, mine.stderr
        no_cert = {**env, "PODGATE_CERT_FILE": "", "PODGATE_KEY_FILE": ""}
        refused = subprocess.run([str(BIN / "podgate"), "clusters", "list"], cwd=ROOT,
                                 env=clean_env(**no_cert), capture_output=True, text=True, timeout=60)  # fmt: skip
        assert refused.returncode == 125 and "TLS handshake" in refused.stderr
