"""Regenerate gateway/_proto from protos/ (or, with --check, fail if it is stale).

Generated modules import each other as ``podgate.v1``; they are rewritten to
``gateway._proto.podgate.v1`` so the generated tree lives inside our package.
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
OUT = ROOT / "gateway" / "_proto"
IMPORT_RE = re.compile(r"^(from|import) podgate\.v1", re.MULTILINE)


def generate(into: Path, protos: Path = PROTOS) -> None:
    import grpc_tools

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    into.mkdir(parents=True, exist_ok=True)
    sources = sorted(str(p.relative_to(protos)) for p in protos.rglob("*.proto"))
    args = [
        "protoc",
        f"-I{protos}",
        f"-I{well_known}",
        f"--python_out={into}",
        f"--pyi_out={into}",
        f"--grpc_python_out={into}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for path in into.rglob("*.py*"):
        text = IMPORT_RE.sub(r"\1 gateway._proto.podgate.v1", path.read_text())
        path.write_text(text)
    for pkg in {p.parent for p in into.rglob("*_pb2.py")} | {into / "podgate", into}:
        (pkg / "__init__.py").touch()


def stale_files(fresh: Path, out: Path = OUT) -> list[str]:
    def files(root: Path) -> set[str]:
        return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}

    ours, theirs = files(out), files(fresh)
    stale = sorted(ours ^ theirs)
    stale += sorted(f for f in ours & theirs if not filecmp.cmp(out / f, fresh / f, shallow=False))
    return stale


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if gateway/_proto is not up to date")
    check = parser.parse_args().check
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        if check:
            stale = stale_files(fresh)
            if stale:
                print("gateway/_proto is stale; run `make proto`. Differs:", *stale, sep="\n  ")
                return 1
            print("gateway/_proto is up to date")
            return 0
        shutil.rmtree(OUT, ignore_errors=True)
        shutil.copytree(fresh, OUT)
    print(f"generated {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
