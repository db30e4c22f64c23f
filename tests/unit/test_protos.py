"""The API contract: generated code is fresh, the staleness check really detects drift, buf lint passes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import genproto

from tests.conftest import ROOT


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    genproto.generate(tmp_path)
    assert genproto.stale_files(tmp_path) == []


def test_staleness_check_detects_a_changed_proto(tmp_path: Path) -> None:
    protos = tmp_path / "protos"
    shutil.copytree(genproto.PROTOS, protos)
    common = protos / "podgate" / "v1" / "common.proto"
    common.write_text(common.read_text() + "\nmessage AddedLater {\n  string x = 1;\n}\n")
    fresh = tmp_path / "out"
    genproto.generate(fresh, protos)
    assert "podgate/v1/common_pb2.py" in genproto.stale_files(fresh)


def test_generated_modules_import_inside_our_package() -> None:
    from gateway._proto.podgate.v1 import dispatch_pb2

    assert dispatch_pb2.DESCRIPTOR.package == "podgate.v1"
    assert "DispatchService" in dispatch_pb2.DESCRIPTOR.services_by_name


def test_buf_lint_is_clean() -> None:
    buf = Path(sys.executable).parent / "buf"  # from the buf-bin package in the dev extra
    assert buf.exists(), f"buf not found at {buf}: install the dev extra (make test does)"
    done = subprocess.run([buf, "lint"], cwd=ROOT / "protos", capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
