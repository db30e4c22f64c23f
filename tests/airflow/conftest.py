"""Real Airflow 3 from .venv-airflow (`make test-airflow`): a temporary AIRFLOW_HOME on SQLite migrated once per
session, DAG files in its DAGs folder, `airflow dags test` runs, and a live gateway with its embedded simulated
clusters started from the main .venv (the server's dependencies never enter the Airflow environment)."""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, clean_env

if importlib.util.find_spec("airflow") is None:
    if os.environ.get("PODGATE_REQUIRE_AIRFLOW"):
        raise RuntimeError("tests/airflow needs Airflow: run them with `make test-airflow` (.venv-airflow)")
    # The main .venv has no Airflow; `make test` runs these with .venv-airflow right after.
    collect_ignore_glob = ["test_*.py"]
else:
    # Airflow reads its settings at import: point it at a fresh home before anything imports it.
    HOME = Path(tempfile.mkdtemp(prefix="podgate-airflow-"))
    atexit.register(shutil.rmtree, HOME, ignore_errors=True)  # each run left its home (database, logs) in /tmp
    os.environ.update(
        AIRFLOW_HOME=str(HOME),
        AIRFLOW__CORE__DAGS_FOLDER=str(HOME / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{HOME / 'airflow.db'}",
        AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
    )
    (HOME / "dags").mkdir(parents=True, exist_ok=True)

AIRFLOW_BIN = Path(sys.executable).parent
MAIN_VENV = Path(os.environ.get("PODGATE_MAIN_VENV", ROOT / ".venv"))
DAGS = ROOT / "tests" / "airflow" / "dags"


def airflow_env(**extra: str) -> dict[str, str]:
    env = clean_env(**extra)
    env["PATH"] = f"{AIRFLOW_BIN}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    done = subprocess.run(
        [str(AIRFLOW_BIN / "airflow"), "db", "migrate"], env=airflow_env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return Path(os.environ["AIRFLOW_HOME"])


@dataclass
class LiveGateway:
    address: str
    process: subprocess.Popen[str]
    log: Path

    @property
    def connection(self) -> str:
        host, port = self.address.rsplit(":", 1)
        return json.dumps({"conn_type": "podgate", "host": host, "port": int(port)})


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    """`podgate serve` with the embedded simulated clusters of clusters/local.yaml, on a free port."""
    state = tmp_path_factory.mktemp("gateway")
    log_path = state / "gateway.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [str(MAIN_VENV / "bin" / "podgate"), "serve", "--listen", "127.0.0.1:0", "--state-dir", str(state)],
            cwd=ROOT,
            env=clean_env(PATH=f"{MAIN_VENV / 'bin'}{os.pathsep}{os.environ['PATH']}"),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    deadline = time.monotonic() + 60
    while not (match := re.search(r"serving on (127\.0\.0\.1:\d+)", log_path.read_text())):
        assert proc.poll() is None and time.monotonic() < deadline, "gateway did not start:\n" + log_path.read_text()
        time.sleep(0.2)
    yield LiveGateway(match.group(1), proc, log_path)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


@dataclass
class DagRun:
    returncode: int
    output: str
    states: dict[str, str]
    xcoms: dict[str, dict[str, Any]]

    def lines_of(self, text: str) -> list[str]:
        return [line for line in self.output.splitlines() if text in line]


def install_dag(airflow_home: Path, name: str) -> None:
    source = (DAGS / name).read_text()
    (airflow_home / "dags" / name).write_text(source)


def dags_test(dag_id: str, *args: str) -> list[str]:
    return [str(AIRFLOW_BIN / "airflow"), "dags", "test", dag_id, *args]


def run_dag(
    airflow_home: Path,
    gateway: LiveGateway,
    dag_id: str,
    *args: str,
    timeout: float = 240,
    connection: str = "",
    **env: str,
) -> DagRun:
    """`airflow dags test DAG_ID [LOGICAL_DATE]`, then the run's task states and XComs from Airflow's database.
    `connection`: the podgate_default connection instead of the gateway's own."""
    done = subprocess.run(
        dags_test(dag_id, *args),
        env=airflow_env(AIRFLOW_CONN_PODGATE_DEFAULT=connection or gateway.connection, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    states, xcoms = run_record(dag_id)
    return DagRun(done.returncode, done.stdout + done.stderr, states, xcoms)


def latest_run_id(dag_id: str) -> str:
    from airflow.models import DagRun as DagRunModel
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRunModel).filter_by(dag_id=dag_id).order_by(DagRunModel.id.desc()).first()
        assert run is not None, f"no run of {dag_id}"
        return str(run.run_id)


def run_record(dag_id: str) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """Task states and XComs of the DAG's latest run (map indexes appended to task ids when mapped)."""
    from airflow.models import DagRun as DagRunModel
    from airflow.models import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRunModel).filter_by(dag_id=dag_id).order_by(DagRunModel.id.desc()).first()
        assert run is not None, f"no run of {dag_id}"
        states = {}
        for ti in session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run.run_id):
            key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
            states[key] = str(ti.state.value if hasattr(ti.state, "value") else ti.state)
        xcoms: dict[str, dict[str, Any]] = {}
        for x in session.query(XComModel).filter_by(dag_id=dag_id, run_id=run.run_id):
            key = x.task_id if x.map_index < 0 else f"{x.task_id}[{x.map_index}]"
            xcoms.setdefault(key, {})[x.key] = XComModel.deserialize_value(x)
    return states, xcoms


async def pods_of(address: str, dag_id: str) -> dict[str, str]:
    """The gateway's pods of a DAG: name -> phase."""
    from gateway.client import ChannelSpec, GatewayClient

    async with GatewayClient(ChannelSpec(address=address)) as client:
        page = await client.list_pods(dag_id=dag_id)
    return {p.name: str(p.phase) for p in page.pods}
