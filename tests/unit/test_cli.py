"""The CLI frame: every sub-command has help; unfinished ones fail clearly, naming what is missing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gateway import cli
from tests.conftest import ROOT

COMMANDS = [
    ["serve"],
    ["sim"],
    ["run"],
    ["explain"],
    ["clusters"],
    ["clusters", "list"],
    ["clusters", "register"],
    ["clusters", "deregister"],
    ["clusters", "cordon"],
    ["clusters", "uncordon"],
    ["clusters", "describe"],
    ["kubeconfig"],
    ["kubeconfig", "revoke"],
    ["pods"],
    ["pods", "list"],
    ["pods", "get"],
    ["logs"],
    ["attach"],
    ["cancel"],
    ["dev-certs"],
]


@pytest.mark.parametrize("command", [[], *COMMANDS], ids=lambda c: " ".join(c) or "podgate")
def test_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main([*command, "--help"])
    assert done.value.code == 0
    assert "usage: podgate" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error_with_podgates_own_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["frobnicate"])
    assert done.value.code == 125  # never 2, which a pod may exit with
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--image", "busybox", "--names", "x"],  # --namespace abbreviated
        ["pods", "list", "--sel", "a=b"],
        ["serve", "--conf", "x.yaml"],
        ["kubeconfig", "--cluster", "x", "--names", "y"],
    ],
)
def test_abbreviations_are_refused_everywhere(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.build_parser().parse_args(argv)
    assert done.value.code == 125
    err = capsys.readouterr().err
    assert "unrecognized arguments" in err or "invalid choice: 'y'" in err  # kubeconfig: 'y' is no action


def test_name_is_not_namespace() -> None:
    args = cli.build_parser().parse_args(["run", "--image", "busybox", "--name", "myjob"])
    assert (args.name, args.namespace) == ("myjob", None)


def test_make_run_installs_the_server_not_the_development_toolchain(tmp_path: Path) -> None:
    planned = subprocess.run(
        ["make", "-n", "run", f"VENV={tmp_path / 'venv'}"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert planned.returncode == 0, planned.stderr
    installs = [line for line in planned.stdout.splitlines() if "pip install" in line and " -e " in line]
    assert installs and all("'.[server]'" in line for line in installs), installs
