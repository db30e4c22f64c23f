"""The hints `podgate serve` prints run as pasted, whatever the listener asks of its clients (issue 15).

Each mode starts `podgate serve` as after `make run` (the venv not on PATH, so the hints name
.venv/bin/podgate) and pastes its hints the way a shell runs them: `export` lines set the environment,
a note in parentheses asks for what only the user holds (done here as it says), every other line is split
with shlex and run as it stands. Plain loopback, TLS (dev-certs' server certificate), mTLS (dev-certs'
configuration as written), tokens (examples/local.yaml as shipped, with the token its comment names).
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BIN, ROOT, clean_env

TOKEN = "ml-dev.not-a-secret-ml"  # examples/local.yaml's development token for tenant ml
PROGRAM = os.path.relpath(BIN / "podgate", ROOT)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("certs")
    made = subprocess.run([str(BIN / "podgate"), "dev-certs", "--dir", str(out), "--force"],
                          env=clean_env(), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert made.returncode == 0, made.stderr
    (out / "tls-only.yaml").write_text("tls: {cert_file: server.crt, key_file: server.key}\n")
    return out


def _without_venv_on_path() -> dict[str, str]:
    env = clean_env()
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if Path(p) != BIN)
    return env


MODES = ("plain", "tls", "mtls", "token")


def _config(mode: str, certs: Path) -> list[str]:
    return {
        "plain": [],
        "tls": ["--config", str(certs / "tls-only.yaml")],
        "mtls": ["--config", str(certs / "podgate.yaml")],
        "token": ["--config", str(ROOT / "examples" / "local.yaml")],
    }[mode]


@pytest.fixture(scope="module")
def printed(certs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, list[str]]]:
    """One `podgate serve` per mode, started together (startup is most of the time); what each printed
    up to its last hint."""
    states = {mode: tmp_path_factory.mktemp(mode) for mode in MODES}
    procs = {mode: (_serve(_config(mode, certs), state), state) for mode, state in states.items()}
    try:
        yield {mode: _until_the_last_hint(proc, state / "serve.log") for mode, (proc, state) in procs.items()}
    finally:
        for proc, _ in procs.values():
            proc.terminate()
        for proc, _ in procs.values():
            proc.wait(timeout=30)


def _serve(config: list[str], state: Path) -> subprocess.Popen[str]:
    """`podgate serve`; its log goes to a file (a pipe nobody reads would fill and stall it)."""
    with (state / "serve.log").open("w") as log:
        return subprocess.Popen(
            [PROGRAM, "serve", *config, "--listen", "127.0.0.1:0", "--metrics-listen", "off", "--state-dir", str(state)],
            cwd=ROOT, env=_without_venv_on_path(), stdout=subprocess.PIPE, stderr=log, text=True,
        )  # fmt: skip


def _until_the_last_hint(proc: subprocess.Popen[str], log: Path) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    while not (lines and "print(42)" in lines[-1]):
        line = proc.stdout.readline()
        assert line, "".join(lines) + log.read_text()[-3000:]
        lines.append(line)
    return lines


@pytest.mark.parametrize("mode", MODES)
def test_the_hints_serve_prints_run_as_pasted(mode: str, printed: dict[str, list[str]]) -> None:
    lines = printed[mode]
    start = next(i for i, line in enumerate(lines) if line.startswith("  try: "))
    hints = [line.removeprefix("  try: ").strip() for line in lines[start:]]
    needs = [line.strip() for line in lines if line.startswith("podgate: callers need")]
    assert needs == (["podgate: callers need a tenant token: export PODGATE_TOKEN=ID.SECRET (or PODGATE_TOKEN_FILE=FILE)"]
                     if mode == "token" else [])  # fmt: skip
    env = _without_venv_on_path()
    if needs:
        env["PODGATE_TOKEN"] = TOKEN  # what the line asks the user to do
    ran: list[subprocess.CompletedProcess[str]] = []
    for hint in hints:
        words = shlex.split(hint)
        if words[0] == "export":
            env.update(word.split("=", 1) for word in words[1:])
        else:
            ran.append(subprocess.run(words, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120))
    assert [r.args[:2] for r in ran] == [[PROGRAM, "clusters"], [PROGRAM, "run"]]
    for done in ran:
        assert done.returncode == 0, (done.args, done.stderr)
    assert "local-eu-gpu" in ran[0].stdout
    assert ran[1].stdout == "42\n" and "placed on local-eu-gpu" in ran[1].stderr
    if mode in ("plain", "token"):  # plain text on loopback: the address is all a client needs to be told
        assert ran[0].args[2:4] == ["list", "--gateway"] and ran[0].args[4].startswith("127.0.0.1:")
    else:
        assert "--gateway" not in ran[0].args  # the export line says where, and how
    secure = {"PODGATE_CA_FILE", "PODGATE_CERT_FILE", "PODGATE_KEY_FILE"}
    assert secure & set(env) == {"plain": set(), "tls": {"PODGATE_CA_FILE"}, "mtls": secure, "token": set()}[mode]


def _serving_port(lines: list[str]) -> str:
    return next(line for line in lines if line.startswith("podgate: serving on ")).split()[3].rpartition(":")[2]


def test_each_connection_flag_has_its_environment_default(
    printed: dict[str, list[str]], certs: Path, tmp_path: Path
) -> None:
    """The variables the hints do not need: PODGATE_TOKEN_FILE, PODGATE_SERVER_NAME and PODGATE_TLS (the
    system's roots: gRPC's own root file stands in for the machine's store), each with a wrong value failing."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    tokened = f"127.0.0.1:{_serving_port(printed['token'])}"
    tls = f"127.0.0.1:{_serving_port(printed['tls'])}"
    ca = str(certs / "ca.crt")
    cases = [
        ({"PODGATE_GATEWAY": tokened, "PODGATE_TOKEN_FILE": str(token_file)}, 0),
        ({"PODGATE_GATEWAY": tokened}, 125),
        ({"PODGATE_GATEWAY": tls, "PODGATE_CA_FILE": ca, "PODGATE_SERVER_NAME": "localhost"}, 0),
        ({"PODGATE_GATEWAY": tls, "PODGATE_CA_FILE": ca, "PODGATE_SERVER_NAME": "elsewhere.example"}, 125),
        ({"PODGATE_GATEWAY": tls, "PODGATE_TLS": "1", "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": ca}, 0),
        ({"PODGATE_GATEWAY": tls}, 125),  # plain text to a TLS listener
    ]
    for extra, code in cases:
        done = subprocess.run([PROGRAM, "clusters", "list"], cwd=ROOT, env={**_without_venv_on_path(), **extra},
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == code, (extra, done.stderr)
        assert ("local-eu-gpu" in done.stdout) == (code == 0), (extra, done.stdout)
        assert TOKEN not in done.stderr
