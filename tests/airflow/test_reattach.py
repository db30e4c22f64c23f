"""A worker killed mid-run: the next run of the task reattaches to the same pod (one pod, not two)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

from gateway.client import ChannelSpec, GatewayClient
from tests.airflow.conftest import AIRFLOW_BIN, LiveGateway, airflow_env, dags_test, install_dag, latest_run_id


def _kill_when(proc: subprocess.Popen[str], marker: str, timeout: float = 120) -> list[str]:
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line, "the worker ended before the pod ran:\n" + "".join(seen[-50:])
        seen.append(line)
        if marker in line:
            os.killpg(proc.pid, signal.SIGKILL)  # the worker dies without on_kill: the pod keeps running
            proc.wait(timeout=30)
            return seen
    raise AssertionError("never saw " + marker)


async def _pods(address: str, dag_id: str) -> list[tuple[str, str, str]]:
    async with GatewayClient(ChannelSpec(address=address)) as client:
        page = await client.list_pods(dag_id=dag_id)
    return [(p.name, str(p.phase), p.request_id) for p in page.pods]


def test_a_killed_worker_reattaches_to_its_pod(airflow_home: Path, gateway: LiveGateway) -> None:
    install_dag(airflow_home, "podgate_reattach.py")
    env = airflow_env(AIRFLOW_CONN_PODGATE_DEFAULT=gateway.connection)
    first = subprocess.Popen(
        dags_test("podgate_reattach"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    seen = _kill_when(first, "[base] tick 2")
    assert not any("tick 16" in line for line in seen)
    (running,) = asyncio.run(_pods(gateway.address, "podgate_reattach"))
    assert running[1] in {"Running", "Pending"}

    # The task instance runs again for the same DAG run, as a retry on another worker would.
    run_id = latest_run_id("podgate_reattach")
    again = subprocess.run(
        [str(AIRFLOW_BIN / "airflow"), "tasks", "test", "podgate_reattach", "long", run_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    output = again.stdout + again.stderr
    assert again.returncode == 0, output[-6000:]
    assert "[base] tick 16" in output
    pods = asyncio.run(_pods(gateway.address, "podgate_reattach"))
    assert pods == [(running[0], "Succeeded", running[2])]  # the same pod, and only one
