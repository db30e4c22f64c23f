"""The client and Airflow side import without server-only dependencies (enforced by import blocking)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT, clean_env

SERVER_ONLY = ["kubernetes", "boto3", "botocore", "google.auth", "azure.identity", "sqlalchemy", "aiohttp", "yaml"]

BLOCKER = """
import importlib.abc, sys
BLOCKED = {blocked!r}
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ImportError(f"server-only dependency imported: {{name}}")
        return None
sys.meta_path.insert(0, Blocker())
import {module}
loaded = sorted(m for m in sys.modules if any(m == b or m.startswith(b + ".") for b in BLOCKED))
assert not loaded, loaded
print("ok")
"""


def _import_blocked(module: str, blocked: list[str] = SERVER_ONLY) -> subprocess.CompletedProcess[str]:
    code = BLOCKER.format(blocked=blocked, module=module)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=60
    )


def test_client_imports_without_server_dependencies() -> None:
    done = _import_blocked("gateway.client")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_airflow_side_imports_without_server_dependencies() -> None:
    done = _import_blocked("gateway.airflow")
    assert done.returncode == 0, done.stderr


def test_cli_imports_without_server_dependencies() -> None:
    done = _import_blocked("gateway.cli")
    assert done.returncode == 0, done.stderr


def test_the_blocker_really_blocks() -> None:
    done = _import_blocked("kubernetes")
    assert done.returncode != 0
    assert "server-only dependency imported" in done.stderr


SERVER_MODULES = sorted(
    "gateway." + ".".join(p.relative_to(ROOT / "gateway").with_suffix("").parts).removesuffix(".__init__")
    for p in (ROOT / "gateway").rglob("*.py")
    if not {"airflow", "_proto", "migrations"} & set(p.relative_to(ROOT / "gateway").parts)  # alembic scripts
)


def test_the_server_and_simulator_import_without_the_kubernetes_package() -> None:
    """`kubernetes` is a [dev] dependency (test oracle, benchmarks): no server or simulator module may
    import it, or `pip install podgate[server]` would break at run time."""
    assert "gateway.credentials.kubeconfig" in SERVER_MODULES and "gateway.sim.apiserver" in SERVER_MODULES
    done = _import_blocked(f"importlib\nfor m in {SERVER_MODULES!r}: importlib.import_module(m)", ["kubernetes"])
    assert done.returncode == 0, done.stderr
