"""deploy/Dockerfile: hadolint (from PyPI) finds nothing, and the image's shape is what the manifests assume.

No Docker engine exists here, so the image is not built in tests; the Deployment's assumptions (numeric
non-root user, exec-form entrypoint, state directory, ports) are checked against the Dockerfile's text.
"""

from __future__ import annotations

import fnmatch
import re
import subprocess
from pathlib import Path

import yaml

from tests.conftest import BIN, ROOT, clean_env

DOCKERFILE = ROOT / "deploy" / "Dockerfile"
IGNORE = ROOT / "deploy" / "Dockerfile.dockerignore"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


def test_hadolint_finds_nothing() -> None:
    out = subprocess.run(
        [str(BIN / "hadolint"), "--no-color", str(DOCKERFILE)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_does_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nUSER root\nENTRYPOINT podgate serve\n")
    out = subprocess.run(
        [str(BIN / "hadolint"), "--no-color", str(bad)], env=clean_env(), capture_output=True, text=True, timeout=60
    )
    assert out.returncode != 0
    assert {"DL3006", "DL3002", "DL3025"} <= set(re.findall(r"DL\d{4}", out.stdout))


def test_multi_stage_with_a_wheel_built_in_the_first() -> None:
    steps = instructions()
    froms = [args for op, args in steps if op == "FROM"]
    assert len(froms) == 2 and froms[0].endswith(" AS build")
    assert any(op == "RUN" and "pip wheel" in args for op, args in steps[: steps.index(("FROM", froms[1]))])
    assert ("COPY", "--from=build /opt/podgate /opt/podgate") in final_stage()


def test_runs_as_the_numeric_non_root_user_the_deployment_names() -> None:
    users = [args for op, args in final_stage() if op == "USER"]
    assert users, "the final stage sets USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0 and gid.isdigit() and int(gid) > 0
    deployment = next(
        d
        for d in yaml.safe_load_all((ROOT / "deploy" / "base" / "deployment.yaml").read_text())
        if d["kind"] == "Deployment"
    )
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(uid)


def test_needs_no_shell_and_writes_nothing_to_its_root() -> None:
    stage = dict(final_stage())
    assert stage["ENTRYPOINT"].startswith("[") and "podgate" in stage["ENTRYPOINT"], "exec form: no shell"
    assert "RUN" not in stage, "the runtime stage runs nothing at build time either"
    assert "PYTHONDONTWRITEBYTECODE=1" in stage["ENV"] and "HOME=/home/podgate" in stage["ENV"]
    assert stage["VOLUME"] == '["/var/lib/podgate"]'
    assert set(stage["EXPOSE"].split()) == {"50051", "9464"}


def test_the_build_context_holds_what_the_dockerfile_copies() -> None:
    patterns = [p for p in (line.strip() for line in IGNORE.read_text().splitlines()) if p and not p.startswith("#")]

    def included(path: str) -> bool:
        keep = True
        for pattern in patterns:
            negate = pattern.startswith("!")
            if fnmatch.fnmatch(path, pattern.lstrip("!").rstrip("/")):
                keep = negate
        return keep

    sources = [
        src
        for op, args in instructions()
        if op == "COPY" and not args.startswith("--from")
        for src in args.split()[:-1]
    ]
    assert sources and all(included(src) for src in sources), sources
    assert not included("tests") and not included(".venv") and not included(".git")
