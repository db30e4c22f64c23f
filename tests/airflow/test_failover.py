"""An Airflow connection listing several gateway replicas: the deferrable task's trigger (which gets the
connection as a serialised ChannelSpec) and the worker both reach the live replica past a dead one."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from tests.airflow.conftest import LiveGateway, install_dag, run_dag


def test_a_connection_listing_a_dead_replica_first_runs_the_deferrable_task(
    airflow_home: Path, gateway: LiveGateway
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"  # closed on leaving: connections to it are refused
    connection = json.dumps({"conn_type": "podgate", "host": f"{dead},{gateway.address}"})
    install_dag(airflow_home, "podgate_deferrable.py")
    run = run_dag(airflow_home, gateway, "podgate_deferrable", connection=connection)
    assert run.returncode == 0, run.output[-6000:]
    assert run.states == {"deferred": "success"}
    assert run.xcoms["deferred"]["return_value"] == {"ticks": 6}
    assert run.lines_of("[DAG TEST] running trigger in line")
    for i in range(1, 7):
        assert len(run.lines_of(f"[base] tick {i}")) == 1, (i, run.output[-6000:])
