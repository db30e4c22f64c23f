"""The CLI's pure pieces: flags into a Pod manifest, result lines, exit codes, suggestions, one-message errors."""

from __future__ import annotations

import pytest

from gateway import cli
from gateway.client import types as t
from gateway.client.errors import PlacementFailed, PreconditionViolation
from gateway.commands import common, pods, podspec, streams
from gateway.commands.common import CommandError


def manifest(*argv: str) -> dict[str, object]:
    return podspec.pod_manifest(cli.build_parser().parse_args(["run", *argv]))


def test_flags_build_the_main_container_and_the_pod() -> None:
    pod = manifest(
        "--image", "python:3.12", "--cpu", "500m", "--memory", "1Gi", "--gpus", "2", "--gpu-type", "A100",
        "--node-selector", "pool=x", "--toleration", "dedicated=gpu:NoSchedule", "--toleration", "spot",
        "--label", "a=b", "--annotation", "c=d", "--name", "job", "--namespace", "airflow", "--env", "K=V",
    )  # fmt: skip
    assert pod["metadata"] == {"name": "job", "namespace": "airflow", "labels": {"a": "b"}, "annotations": {"c": "d"}}
    spec = pod["spec"]
    assert isinstance(spec, dict)
    assert spec["nodeSelector"] == {"pool": "x", "nvidia.com/gpu.product": "A100"}
    assert spec["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"},
        {"key": "spot", "operator": "Exists"},
    ]
    assert spec["containers"] == [{
        "name": "base", "image": "python:3.12", "env": [{"name": "K", "value": "V"}],
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"nvidia.com/gpu": "2"}},
    }]  # fmt: skip


@pytest.mark.parametrize(
    "image", ["python:3.12", "busybox", "ghcr.io/acme/app:1.0", "localhost:5000/a/b", "a/b@sha256:" + "0" * 64]
)
def test_image_references_accepted(image: str) -> None:
    assert podspec.check_image(image) == image


@pytest.mark.parametrize("image", ["", " ", "Python", "a b", "python:", ":tag", "a//b"])
def test_image_references_refused(image: str) -> None:
    with pytest.raises(CommandError):
        podspec.check_image(image)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90.0), ("90s", 90.0), ("5m", 300.0), ("1h", 3600.0), ("250ms", 0.25)]
)
def test_durations(text: str, seconds: float) -> None:
    assert podspec.duration(text, "--x") == seconds


@pytest.mark.parametrize(
    ("result", "line", "code"),
    [
        (t.PodResult(phase=t.PodPhase.SUCCEEDED, exit_code=0, reason="Completed"), "Succeeded: exit code 0 (Completed)", 0),
        (t.PodResult(phase=t.PodPhase.FAILED, exit_code=3, reason="Error"), "Failed: exit code 3 (Error)", 3),
        (
            t.PodResult(phase=t.PodPhase.FAILED, exit_code=0, reason="XComError", message="bad json"),
            "Failed (XComError): the command exited 0, but bad json",
            127,
        ),
        (
            t.PodResult(phase=t.PodPhase.FAILED, exit_code=-1, reason="ImagePullBackOff", message="no image"),
            "Failed (ImagePullBackOff): no image",
            127,
        ),
        (t.PodResult(phase=t.PodPhase.CANCELLED, reason="Cancelled", message="bye"), "Cancelled: bye", 130),
    ],
)
def test_result_lines_and_exit_codes(result: t.PodResult, line: str, code: int) -> None:
    assert (streams.result_line(result), streams.exit_code(result)) == (line, code)


def test_placement_failure_lists_each_reason_once() -> None:
    violations = [PreconditionViolation("placement", "a", "too small"), PreconditionViolation("placement", "b", "far")]
    error = PlacementFailed("no cluster fits: a: too small; b: far", rpc="RunPod", violations=violations)
    assert common.message_of(error) == "no cluster fits:\n  - a: too small\n  - b: far"
    assert common.exit_code_of(error) == common.Exit.PLACEMENT


def test_suggestions() -> None:
    assert common.did_you_mean("eu-west1", ["eu-west-1", "us-east-1"]) == " Did you mean 'eu-west-1'?"
    assert common.did_you_mean("zzz", ["eu-west-1"]) == ""


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ("a=b", {"a": "b"}, True),
        ("a=b", {"a": "c"}, False),
        ("a!=b", {}, True),
        ("a", {"a": ""}, True),
        ("a,c==d", {"a": "x", "c": "d"}, True),
        ("a,c==d", {"c": "d"}, False),
    ],
)
def test_label_filter(selector: str, labels: dict[str, str], matches: bool) -> None:
    assert pods.labels_match(labels, pods.label_filter(selector)) is matches
