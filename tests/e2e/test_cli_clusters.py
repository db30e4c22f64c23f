"""`podgate clusters ...` against `podgate serve` over real gRPC: describe, list -o and --watch, register
(--replace), deregister (--force), cordon --reason. Its own gateway: these tests change the registry."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import BIN, ROOT, Served, clean_env, podgate_serve


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with podgate_serve(tmp_path_factory.mktemp("state")) as served:
        yield served


@pytest.fixture(scope="module")
def gw(served: Served) -> str:
    return served.address


def podgate(gw: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "podgate"), *args], cwd=ROOT, env=clean_env(PODGATE_GATEWAY=gw),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_describe_shows_health_capacity_per_node_taints_and_pods(gw: str) -> None:
    done = podgate(gw, "clusters", "describe", "local-us-gpu")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "Health:       Healthy" in text and "Region:       us-east-1 (us-east-1b)" in text
    assert "Free:         cpu 20, memory 80.0Gi" in text
    assert "GPUs:         NVIDIA-H100-80GB-HBM3: 4 of 4 free" in text
    assert "Last probe:   20" in text  # a time, not "not yet"
    node = next(line for line in text.splitlines() if "us-gpu-h100-1" in line)
    assert node.split()[1:] == ["yes", "16/16", "64.0Gi/64.0Gi", "4/4", "NVIDIA-H100-80GB-HBM3"]
    assert "Pods:         0 in flight (at most 50)" in text
    as_json = json.loads(podgate(gw, "clusters", "describe", "local-us-gpu", "-o", "json").stdout)
    assert as_json["cluster"]["name"] == "local-us-gpu" and len(as_json["status"]["nodes"]) == 2


def test_describe_shows_why_a_cluster_is_unhealthy(gw: str, served: Served, tmp_path: Path) -> None:
    source = next(Path(p) for p in _state_kubeconfigs(served) if p.endswith("local-eu-cpu.kubeconfig"))
    document = yaml.safe_load(source.read_text())
    for entry in document["clusters"]:
        entry["cluster"]["server"] = "https://127.0.0.1:1"  # nothing listens there
    dead = tmp_path / "dead.kubeconfig"
    dead.write_text(yaml.safe_dump(document))
    path = tmp_path / "dead.yaml"
    path.write_text(yaml.safe_dump({
        "apiVersion": "podgate.io/v1", "kind": "Cluster", "name": "dead", "provider": "kubeconfig",
        "region": "eu-central-1", "credentials": {"kubeconfig": {"path": str(dead)}},
    }))  # fmt: skip
    assert podgate(gw, "clusters", "register", str(path)).returncode == 0
    for _ in range(100):
        health = next(line for line in podgate(gw, "clusters", "describe", "dead").stdout.splitlines()
                      if line.startswith("Health:"))  # fmt: skip
        if "Unreachable" in health:
            break
    assert health.startswith("Health:       Unreachable: ") and "127.0.0.1:1" in health
    assert health.count("'dead'") <= 1  # the cluster named once
    assert podgate(gw, "clusters", "deregister", "dead").returncode == 0


def test_list_outputs(gw: str) -> None:
    wide = podgate(gw, "clusters", "list", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[-6:] == ["PROVIDER", "ZONE", "NODES", "TAINTS", "HEALTH", "MESSAGE"]
    assert len(wide) == 4
    listed = json.loads(podgate(gw, "clusters", "list", "-o", "json").stdout)
    assert sorted(c["cluster"]["name"] for c in listed) == ["local-eu-cpu", "local-eu-gpu", "local-us-gpu"]
    # The same clusters in the same fields; the probe time moves between the two calls on a busy machine.
    as_yaml = yaml.safe_load(podgate(gw, "clusters", "list", "-o", "yaml").stdout)
    assert [_without_probe_time(c) for c in as_yaml] == [_without_probe_time(c) for c in listed]
    assert all(isinstance(c["status"]["last_seen"], str) for c in [*as_yaml, *listed])


def _without_probe_time(listed: dict[str, Any]) -> dict[str, Any]:
    return {**listed, "status": {k: v for k, v in listed["status"].items() if k != "last_seen"}}


def test_watch_prints_a_cluster_when_it_is_cordoned(gw: str) -> None:
    watcher = subprocess.Popen(
        [str(BIN / "podgate"), "clusters", "list", "--watch"], cwd=ROOT, env=clean_env(PODGATE_GATEWAY=gw),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert watcher.stdout is not None
    first = [watcher.stdout.readline() for _ in range(4)]
    assert first[0].startswith("NAME")
    cordoned = podgate(gw, "clusters", "cordon", "local-eu-cpu", "--reason", "node upgrade")
    assert cordoned.stdout == "local-eu-cpu cordoned: node upgrade\n"
    changed = watcher.stdout.readline()
    assert changed.startswith("local-eu-cpu") and "(cordoned)" in changed
    watcher.send_signal(signal.SIGINT)
    assert watcher.wait(timeout=30) == 130
    assert "Cordoned:     yes: node upgrade" in podgate(gw, "clusters", "describe", "local-eu-cpu").stdout
    assert podgate(gw, "clusters", "uncordon", "local-eu-cpu").returncode == 0


def test_register_refuses_an_existing_name_unless_replace_and_deregister_needs_force(
    gw: str, served: Served, tmp_path: Path
) -> None:
    kubeconfig = next(Path(p) for p in _state_kubeconfigs(served) if p.endswith("local-eu-cpu.kubeconfig"))
    entry = {
        "apiVersion": "podgate.io/v1", "kind": "Cluster", "name": "extra", "provider": "kubeconfig",
        "region": "eu-central-1", "labels": {"env": "extra"},
        "credentials": {"kubeconfig": {"path": str(kubeconfig)}},
    }  # fmt: skip
    path = tmp_path / "extra.yaml"
    path.write_text(yaml.safe_dump(entry))
    assert podgate(gw, "clusters", "register", str(path)).stdout == "registered extra\n"
    again = podgate(gw, "clusters", "register", str(path))
    assert again.returncode == 125 and "--replace" in again.stderr
    path.write_text(yaml.safe_dump({**entry, "labels": {"env": "changed"}}))
    assert podgate(gw, "clusters", "register", "--replace", str(path)).stdout == "updated extra\n"
    assert "env=changed" in podgate(gw, "clusters", "describe", "extra").stdout

    code = "import time\nprint('up', flush=True)\ntime.sleep(120)"
    run = podgate(gw, "run", "-d", "--request-id", "on-extra", "--cluster", "extra",
                  "--image", "python:3.12", "--", "python", "-c", code)  # fmt: skip
    assert run.returncode == 0, run.stderr
    refused = podgate(gw, "clusters", "deregister", "extra")
    assert refused.returncode == 125 and "force" in refused.stderr
    assert podgate(gw, "clusters", "deregister", "--force", "extra").stdout == "deregistered extra\n"
    assert "extra" not in podgate(gw, "clusters", "list", "-o", "json").stdout
    podgate(gw, "cancel", "on-extra")


def _state_kubeconfigs(served: Served) -> list[str]:
    """The kubeconfigs the embedded simulator wrote for `podgate serve` (its state directory)."""
    state = Path(served.process.args[served.process.args.index("--state-dir") + 1])  # type: ignore[union-attr]
    return [str(p) for p in (state / "kubeconfigs").glob("*.kubeconfig")]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("apiVersion: podgate.io/v1\nkind: Cluster\nname: x\nprovider: sim\nregion: r\nlabel: {a: b}\n",
         "unknown key 'label'. Did you mean 'labels'?"),
        ("apiVersion: podgate.io/v1\nname: x\nprovider: sim\nregion: r\n", "kind must be Cluster or ClusterList"),
        ("apiVersion: podgate.io/v1\nkind: Cluster\nname: [x\n", "is not valid YAML (line "),
        ("apiVersion: podgate.io/v1\nkind: Cluster\nprovider: sim\nregion: r\n", "name is required"),
    ],
)
def test_a_bad_registration_file_is_one_line(gw: str, tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(content)
    done = podgate(gw, "clusters", "register", str(path))
    assert done.returncode == 125 and message in done.stderr, done.stderr
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
    missing = podgate(gw, "clusters", "register", str(tmp_path / "absent.yaml"))
    assert missing.returncode == 125 and "cannot read" in missing.stderr and len(missing.stderr.splitlines()) == 1


def test_the_shipped_sim_example_registers(gw: str, served: Served, tmp_path: Path) -> None:
    """clusters/examples/sim.yaml names kubeconfigDir; the kubeconfigs of this gateway live in its state dir."""
    document = yaml.safe_load((ROOT / "clusters" / "examples" / "sim.yaml").read_text())
    assert document["credentials"]["sim"] == {"kubeconfigDir": ".podgate/kubeconfigs"}
    state = Path(_state_kubeconfigs(served)[0]).parent
    document["credentials"]["sim"]["kubeconfigDir"] = str(state)
    document["name"] = "local-eu-cpu"  # a cluster whose kubeconfig this gateway's simulator wrote
    path = tmp_path / "sim.yaml"
    path.write_text(yaml.safe_dump(document))
    done = podgate(gw, "clusters", "register", "--replace", str(path))
    assert (done.returncode, done.stdout) == (0, "updated local-eu-cpu\n"), done.stderr
    # As shipped, kubeconfigDir resolves to the file `make run` writes (relative to the gateway's directory):
    shipped = podgate(gw, "clusters", "register", str(ROOT / "clusters" / "examples" / "sim.yaml"))
    assert "file '.podgate/kubeconfigs/local-eu-gpu.kubeconfig' does not exist" in shipped.stderr
    assert "kubeconfigDir" not in shipped.stderr and len(shipped.stderr.splitlines()) == 1


def test_an_airflow_connection_id_runs_once_it_is_an_alias(gw: str, served: Served, tmp_path: Path) -> None:
    request = ["run", "--cluster", "k8s_conn", "--image", "python:3.12", "--", "python", "-c", "print('hello')"]
    before = podgate(gw, *request)
    assert before.returncode == 125 and "unknown cluster 'k8s_conn'" in before.stderr
    kubeconfig = next(p for p in _state_kubeconfigs(served) if p.endswith("local-eu-gpu.kubeconfig"))
    path = tmp_path / "gpu.yaml"
    path.write_text(yaml.safe_dump({
        "apiVersion": "podgate.io/v1", "kind": "Cluster", "name": "local-eu-gpu", "provider": "sim",
        "region": "eu-west-1", "labels": {"env": "local", "tier": "dev", "accelerator": "nvidia"},
        "allowedNamespaces": ["default", "airflow"], "aliases": ["k8s_conn"],
        "credentials": {"sim": {"path": kubeconfig}},
    }))  # fmt: skip
    assert podgate(gw, "clusters", "register", "--replace", str(path)).returncode == 0
    assert "Aliases:      k8s_conn" in podgate(gw, "clusters", "describe", "local-eu-gpu").stdout
    after = podgate(gw, *request)
    assert (after.returncode, after.stdout) == (0, "hello\n"), after.stderr
    assert "placed on local-eu-gpu" in after.stderr
    clash = tmp_path / "clash.yaml"
    clash.write_text(yaml.safe_dump({
        "apiVersion": "podgate.io/v1", "kind": "Cluster", "name": "local-us-gpu", "provider": "sim",
        "region": "us-east-1", "aliases": ["k8s_conn"], "credentials": {"sim": {"path": kubeconfig}},
    }))  # fmt: skip
    refused = podgate(gw, "clusters", "register", "--replace", str(clash))
    assert refused.returncode == 125 and "'k8s_conn' already names cluster 'local-eu-gpu'" in refused.stderr


def test_a_cluster_taint_needs_a_cluster_toleration(gw: str, served: Served, tmp_path: Path) -> None:
    kubeconfig = next(p for p in _state_kubeconfigs(served) if p.endswith("local-eu-cpu.kubeconfig"))
    path = tmp_path / "tainted.yaml"
    path.write_text(yaml.safe_dump({
        "apiVersion": "podgate.io/v1", "kind": "Cluster", "name": "tainted", "provider": "kubeconfig",
        "region": "eu-central-1", "taints": ["team=finance:NoSelect"],
        "credentials": {"kubeconfig": {"path": kubeconfig}},
    }))  # fmt: skip
    assert podgate(gw, "clusters", "register", str(path)).returncode == 0
    refused = podgate(gw, "explain", "--cluster", "tainted")
    assert refused.returncode == 126 and "team=finance" in refused.stdout
    tolerated = podgate(gw, "explain", "--cluster", "tainted", "--cluster-toleration", "team=finance:NoSelect")
    assert tolerated.returncode == 0 and tolerated.stdout.startswith("would be placed on tainted"), tolerated.stdout
    assert podgate(gw, "clusters", "deregister", "--force", "tainted").returncode == 0  # shares a cluster with others
