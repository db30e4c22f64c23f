"""The CLI frame: every sub-command has help; unfinished ones fail clearly, naming what is missing."""

from __future__ import annotations

import pytest

from gateway import cli

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
    ["kubeconfig"],
]


@pytest.mark.parametrize("command", [[], *COMMANDS], ids=lambda c: " ".join(c) or "podgate")
def test_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main([*command, "--help"])
    assert done.value.code == 0
    assert "usage: podgate" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["frobnicate"])
    assert done.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
