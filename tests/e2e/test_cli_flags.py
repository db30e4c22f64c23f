"""`podgate run`'s workload flags, exit codes and messages, against `podgate serve` over real gRPC."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BIN, ROOT, clean_env, podgate_serve

SHOW_ENV = "import json, os; print(json.dumps({k: v for k, v in os.environ.items() if k in ('A', 'B')}))"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with podgate_serve(tmp_path_factory.mktemp("state")) as served:
        yield served.address


def podgate(gw: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "podgate"), *args], cwd=ROOT, env=clean_env(PODGATE_GATEWAY=gw),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def rid() -> str:
    return f"f-{uuid.uuid4().hex[:12]}"


def pod(gw: str, request: str) -> dict[str, object]:
    got: dict[str, object] = json.loads(podgate(gw, "pods", "get", request, "-o", "json").stdout)
    return got


def test_gpu_type_and_toleration_reach_the_tainted_h100_node(gw: str) -> None:
    request = rid()
    done = podgate(
        gw, "run", "--request-id", request, "--gpus", "1", "--gpu-type", "NVIDIA-H100-80GB-HBM3",
        "--toleration", "dedicated=gpu:NoSchedule", "--image", "python:3.12", "--", "python", "-c", "print('h100')",
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (0, "h100\n"), done.stderr
    assert "placed on local-us-gpu (us-east-1)" in done.stderr and "us-gpu-h100-1" in done.stderr
    untolerated = podgate(gw, "explain", "--gpus", "1", "--gpu-type", "NVIDIA-H100-80GB-HBM3")
    assert untolerated.returncode == 126 and "dedicated" in untolerated.stdout


def test_node_selector_and_prefer_steer_placement(gw: str) -> None:
    on_node = podgate(gw, "explain", "--node-selector", "kubernetes.io/hostname=eu-central-cpu-2")
    assert on_node.returncode == 0 and on_node.stdout.startswith("would be placed on local-eu-cpu"), on_node.stdout
    preferred = podgate(gw, "explain", "--cpu", "1", "--prefer", "100:accelerator=nvidia", "--region", "eu-central-1",
                        "--region", "eu-west-1")  # fmt: skip
    assert preferred.stdout.startswith("would be placed on local-eu-gpu"), preferred.stdout
    bad = podgate(gw, "explain", "--prefer", "500:tier=dev")
    assert bad.returncode == 125 and "weight of 1..100" in bad.stderr


def test_keep_pod_leaves_the_pod_for_kubectl(gw: str, tmp_path: Path) -> None:
    request = rid()
    done = podgate(gw, "run", "--request-id", request, "--keep-pod", "--cluster", "local-eu-cpu",
                   "--image", "python:3.12", "--", "python", "-c", "print(1)")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert kept_pod(gw, request, tmp_path)["status"]["phase"] == "Succeeded"


def kept_pod(gw: str, request: str, tmp_path: Path) -> dict[str, Any]:
    """The Kubernetes Pod a `--keep-pod --cluster local-eu-cpu` run left, read with kubectl and a kubeconfig
    the gateway issued."""
    kubeconfig = tmp_path / "kc"
    issued = podgate(gw, "kubeconfig", "--cluster", "local-eu-cpu", "--namespace", "default", "-o", str(kubeconfig))
    assert issued.returncode == 0, issued.stderr
    name = str(pod(gw, request)["name"])
    got = subprocess.run([str(BIN / "kubectl"), "--kubeconfig", str(kubeconfig), "get", "pod", name, "-o", "json"],
                         env=clean_env(), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert got.returncode == 0, got.stderr
    manifest: dict[str, Any] = json.loads(got.stdout)
    return manifest


def test_kubeconfig_revoke_stops_it_working(gw: str, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kc"
    issued = podgate(gw, "kubeconfig", "--cluster", "local-eu-cpu", "--namespace", "airflow", "-o", str(kubeconfig))
    credential = issued.stderr.rsplit("podgate kubeconfig revoke ", 1)[1].strip().rstrip("`")
    kubectl = [str(BIN / "kubectl"), "--kubeconfig", str(kubeconfig), "get", "pods"]
    assert subprocess.run(kubectl, env=clean_env(), capture_output=True, timeout=60).returncode == 0
    revoked = podgate(gw, "kubeconfig", "revoke", credential)
    assert (revoked.returncode, revoked.stdout) == (0, f"revoked {credential}\n"), revoked.stderr
    assert subprocess.run(kubectl, env=clean_env(), capture_output=True, timeout=60).returncode != 0


def test_sidecar_xcom_carries_more_than_a_termination_message(gw: str, tmp_path: Path) -> None:
    out = tmp_path / "xcom.json"
    code = "import json; json.dump({'blob': 'x' * 10000}, open('/airflow/xcom/return.json', 'w'))"
    done = podgate(gw, "run", "--xcom-mode", "sidecar", "--xcom-out", str(out),
                   "--image", "python:3.12", "--", "python", "-c", code)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text()) == {"blob": "x" * 10000}


def test_sidecar_image_is_the_one_asked_for(gw: str, tmp_path: Path) -> None:
    request, out = rid(), tmp_path / "xcom.json"
    code = "import json; json.dump([1, 2], open('/airflow/xcom/return.json', 'w'))"
    done = podgate(gw, "run", "--request-id", request, "--keep-pod", "--cluster", "local-eu-cpu", "--xcom-mode", "sidecar",
                   "--xcom-sidecar-image", "busybox:1.36", "--xcom-out", str(out),
                   "--image", "python:3.12", "--", "python", "-c", code)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text()) == [1, 2]
    containers = kept_pod(gw, request, tmp_path)["spec"]["containers"]
    assert [c["image"] for c in containers] == ["python:3.12", "busybox:1.36"]


def test_select_places_by_cluster_labels(gw: str) -> None:
    without = podgate(gw, "explain", "--select", "!accelerator")
    assert without.stdout.startswith("would be placed on local-eu-cpu ("), without.stderr
    nvidia = podgate(gw, "explain", "--select", "accelerator in (nvidia)", "--region", "us-east-1")
    assert nvidia.stdout.startswith("would be placed on local-us-gpu ("), nvidia.stderr
    nowhere = podgate(gw, "explain", "--select", "tier=prod")
    assert nowhere.returncode == 126 and "does not match tier in (prod)" in nowhere.stdout
    request = rid()
    ran = podgate(gw, "run", "--request-id", request, "--select", "!accelerator",
                  "--image", "python:3.12", "--", "python", "-c", "print(1)")  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert pod(gw, request)["cluster"] == "local-eu-cpu"


def test_timeouts_are_durations(gw: str) -> None:
    done = podgate(gw, "run", "--placement-timeout", "2m", "--startup-timeout", "90s",
                   "--image", "python:3.12", "--", "python", "-c", "print(1)")  # fmt: skip
    assert done.returncode == 0, done.stderr
    bad = podgate(gw, "run", "--startup-timeout", "soon", "--image", "busybox")
    assert bad.returncode == 125 and "--startup-timeout wants a duration" in bad.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "--image", ""), "--image is empty"),
        (("run", "--", "true"), "--image is empty"),
        (("run", "--image", "Not An Image"), "is not an image reference"),
        (("run", "--image", "busybox", "--cpu", "lots"), "--cpu wants a Kubernetes quantity"),
        (("run", "--image", "busybox", "--env", "NOEQUALS"), "--env wants KEY=VALUE"),
        (("run", "--image", "busybox", "--request-id", "has space"), "--request-id"),
        (("run", "--image", "busybox", "--region", "eu-west1"), "Did you mean 'eu-west-1'?"),
        (("explain", "--region", "eu-west1"), "Did you mean 'eu-west-1'?"),
        (("run", "--image", "busybox", "--cluster", "local-eu-gp"), "Did you mean 'local-eu-gpu'?"),
        (("run", "--image", "busybox", "--namesp", "x"), "unrecognized arguments: --namesp"),
        (("pods", "list", "--phase", "Runing"), "Did you mean 'Running'?"),
        (("clusters", "describe", "local-eu-gp"), "Did you mean 'local-eu-gpu'?"),
    ],
)
def test_mistakes_are_one_message_and_exit_125(gw: str, args: tuple[str, ...], message: str) -> None:
    done = podgate(gw, *args)
    assert done.returncode == 125, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_explain_says_would_be_and_version_prints(gw: str) -> None:
    done = podgate(gw, "explain", "--region", "eu-west-1", "--gpus", "1")
    assert done.stdout.startswith("would be placed on local-eu-gpu (eu-west-1)")
    version = podgate(gw, "--version")
    assert version.returncode == 0 and version.stdout.startswith("podgate ")
    helped = podgate(gw, "--help")
    assert "125" in helped.stdout and "126" in helped.stdout


def test_the_pods_own_codes_pass_through_and_a_pod_that_never_ran_is_127(gw: str) -> None:
    assert podgate(gw, "run", "--image", "python:3.12", "--", "python", "-c", "raise SystemExit(2)").returncode == 2
    not_found = podgate(gw, "run", "--image", "python:3.12", "--", "no-such-binary")
    assert not_found.returncode == 128 and "Failed: exit code 128 (StartError)" in not_found.stderr  # Kubernetes' code
    bad_xcom = "open('/airflow/xcom/return.json', 'w').write('{not json')"
    failed_after = podgate(gw, "run", "--image", "python:3.12", "--", "python", "-c", bad_xcom)
    assert failed_after.returncode == 127, failed_after.stderr
    assert "Failed (XComError): the command exited 0, but the XCom result" in failed_after.stderr


def test_gpu_pods_see_their_devices(gw: str) -> None:
    show = "import os; print(os.environ.get('NVIDIA_VISIBLE_DEVICES', 'none'))"
    gpu = podgate(gw, "run", "--region", "eu-west-1", "--gpus", "2", "--image", "python:3.12", "--",
                  "python", "-c", show)  # fmt: skip
    assert gpu.returncode == 0, gpu.stderr
    devices = gpu.stdout.strip().split(",")
    assert len(devices) == 2 and len(set(devices)) == 2 and all(d.startswith("GPU-") for d in devices)
    cpu = podgate(gw, "run", "--image", "python:3.12", "--", "python", "-c", show)
    assert cpu.stdout == "none\n"


def test_kubectl_run_and_wait_against_the_simulator(gw: str, tmp_path: Path) -> None:
    """`kubectl run --image=busybox -- sh -c ...` passes args (the image's CMD replaced, as Kubernetes does), and
    `kubectl wait` (a watch-list: it needs the initial-events-end bookmark) sees the pod Ready and Running."""
    kubeconfig = tmp_path / "kc"
    issued = podgate(gw, "kubeconfig", "--cluster", "local-eu-cpu", "--namespace", "airflow", "--access", "edit",
                     "-o", str(kubeconfig))  # fmt: skip
    assert issued.returncode == 0, issued.stderr

    def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "kubectl"), "--kubeconfig", str(kubeconfig), *args],
                              env=clean_env(), capture_output=True, text=True, timeout=60)  # fmt: skip

    name = f"wait-{uuid.uuid4().hex[:6]}"
    created = kubectl("run", name, "--image=busybox", "--restart=Never", "--", "sh", "-c", "echo started; sleep 20")
    assert created.returncode == 0, created.stderr
    ready = kubectl("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=30s")
    assert ready.returncode == 0, ready.stderr
    running = kubectl("wait", "--for=jsonpath={.status.phase}=Running", f"pod/{name}", "--timeout=30s")
    assert running.returncode == 0, running.stderr
    assert kubectl("logs", name).stdout == "started\n"
    kubectl("delete", "pod", name, "--wait=false")
