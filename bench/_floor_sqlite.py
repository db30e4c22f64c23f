"""The SQLite part of bench/floor.py: a pod's 4 writes with sqlite3 alone, in a process of its own.

The statements are those the gateway's writer ran for each pod of a throughput run (its connection traced with
`set_trace_callback` at aed1249): the record's existence check and insert with the journal's first two rows and
the audit row; the Running update with the pod's 4 Kubernetes events and its phase row; the result update with
the log line and the result row; the finished update. 15 statements a pod, every RETURNING row fetched, values
of the captured sizes bound, all built before the clock starts: what sqlite3 costs, not what making the values
costs.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

WRITES_A_TRANSACTION = 50  # the throughput bench's 4.00 writes a pod in 0.08 transactions (the lead's quiet runs)


def self_cpu() -> float:
    from bench._stack import cpu_seconds

    return cpu_seconds(os.getpid())


def sqlite_setup(path: Path, synchronous: str) -> sqlite3.Connection:
    """The gateway's schema (gateway/store/schema.py), then a plain sqlite3 connection configured as the gateway's
    writer connection is (gateway/store/engine.py, `_configure_sqlite`), in autocommit for explicit BEGINs."""
    from sqlalchemy import create_engine

    from gateway.store.schema import metadata

    engine = create_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    engine.dispose()
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("busy_timeout=10000", "journal_mode=WAL", f"synchronous={synchronous.upper()}", "foreign_keys=ON"):
        conn.execute(f"PRAGMA {pragma}")
    return conn


def record_columns() -> str:
    from gateway.store.schema import pod_records

    json_columns = {"request", "decision", "result"}
    return ", ".join(
        f"CAST({c.name} AS TEXT) AS {c.name}" if c.name in json_columns else c.name for c in pod_records.columns
    )


def sqlite_writes(pods: int) -> Iterator[tuple[str, int]]:
    """(write, pod) in the order a steady stream of pods makes them: each transaction holds creates, Running
    updates, results and finishes of different pods, as the group writer's batches do."""
    for t in range(pods + 3):
        for step, write in enumerate(("create", "running", "result", "finished")):
            if 0 <= t - step < pods:
                yield write, t - step


def sqlite_rows(pods: int) -> dict[str, list[tuple[Any, ...]]]:
    """Each pod's values, of the sizes the gateway wrote in a capture (request 1,135 bytes, decision 656, the
    journal's placed row 656, result 214; times as SQLAlchemy writes them): made before the clock starts."""
    from bench._pods import manifest, new_id

    score = "score 110 = free capacity 100 (least-loaded) + weight 10"
    verdicts = [{"cluster": c, "region": r, "verdict": "Eligible", "reason": f"fits on node {n}; {score}", "score": 110.0,
                 "chosen": c == "local-eu-cpu"}
                for c, r, n in (("local-eu-cpu", "eu-central-1", "eu-central-cpu-1"), ("local-eu-gpu", "eu-west-1", "eu-cpu-1"),
                                ("local-us-gpu", "us-east-1", "us-cpu-1"))]  # fmt: skip
    reason = f"placed on local-eu-cpu (eu-central-1): 3 of 3 clusters eligible; fits on node eu-central-cpu-1; {score}"
    decision = json.dumps({"verdicts": verdicts, "cluster": "local-eu-cpu", "region": "eu-central-1", "reason": reason},
                          separators=(",", ":"))  # fmt: skip
    xcom = '{"bench": true}'
    result = json.dumps({"phase": "Succeeded", "exit_code": 0, "reason": "Completed", "message": "", "containers": [
        {"name": "main", "exit_code": 0, "reason": "Completed", "message": xcom}], "xcom_json": xcom, "warning_events": []},
        separators=(",", ":"))  # fmt: skip
    rows: dict[str, list[tuple[Any, ...]]] = {"create": [], "running": [], "result": [], "finished": []}
    now = "2026-12-05 22:58:59.981743"
    for _ in range(pods):
        rid, name = new_id("tp"), new_id("bench")[:14]
        request = json.dumps({"request_id": rid, "pod": manifest(rid, duration=1.0), "placement": {
            "selector": {"requirements": []}, "regions": [], "clusters": [], "tolerations": [], "preferences": [],
            "timeout_seconds": 0.0}, "xcom_mode": "auto", "xcom_sidecar_image": "", "log_selection": "main",
            "log_containers": [], "on_finish": "delete_pod", "startup_timeout_seconds": 600.0, "on_disconnect": "keep_running",
            "reattach_grace_seconds": 300.0, "airflow": None, "tenant": "", "keep_name": False}, separators=(",", ":"))  # fmt: skip
        audit = json.dumps({"time": now, "actor": "anonymous", "action": "pod.submit", "outcome": "accepted",
                            "identity": "anonymous", "namespace": "default", "request_id": rid}, separators=(",", ":"))  # fmt: skip
        events = [json.dumps({"time": "2026-12-05T22:59:00+00:00", "type": "Normal", "reason": r, "message": m, "count": 1})
                  for r, m in (("Scheduled", f"Successfully assigned default/{name} to eu-central-cpu-2"),
                               ("Pulled", 'Container image "busybox:1.36" already present on machine'),
                               ("Created", "Created container: main"), ("Started", "Started container main"))]  # fmt: skip
        rows["create"].append((rid, name, now, request, decision, reason, audit))
        rows["running"].append((rid, now, events, '{"phase":"Running","reason":"","message":""}'))
        line = '{"container":"main","time":"2026-12-05T22:59:00.131056+00:00","text":"line 0"}'
        rows["result"].append((rid, now, result, line))
        rows["finished"].append((rid, now))
    return rows


STATEMENTS = {  # as the gateway's writer ran them (its SQLite trace at aed1249), values bound; COLUMNS: the record's
    "exists": "SELECT COLUMNS FROM pod_records WHERE pod_records.request_id = ?",
    "record": "INSERT INTO pod_records (request_id, phase, cluster, region, namespace, name, dag_id, tenant, created_at, "
    "updated_at, finished_at, request, decision, result, last_seq, reattach_deadline, owner, fence, cancel_requested_at, "
    "cancel_reason) VALUES (?, 'Queued', 'local-eu-cpu', 'eu-central-1', 'default', ?, NULL, NULL, ?, ?, NULL, ?, ?, "
    "'null', 2, NULL, NULL, 0, NULL, NULL) RETURNING COLUMNS",
    "event": "INSERT INTO journal_events (record_id, seq, kind, time, payload) VALUES (?, ?, ?, ?, ?)",
    "audit": "INSERT INTO audit_log (time, action, actor, record) VALUES (?, 'pod.submit', 'anonymous', ?)",
    "running": "UPDATE pod_records SET phase='Running', updated_at=?, last_seq=(pod_records.last_seq + 5) "
    "WHERE pod_records.request_id = ? RETURNING COLUMNS",
    "result": "UPDATE pod_records SET phase='Succeeded', updated_at=?, result=?, last_seq=(pod_records.last_seq + 2) "
    "WHERE pod_records.request_id = ? RETURNING COLUMNS",
    "finished": "UPDATE pod_records SET updated_at=?, finished_at=? WHERE pod_records.request_id = ? RETURNING COLUMNS",
}


def sqlite_floor(pods: int, synchronous: str, per_transaction: int = WRITES_A_TRANSACTION) -> dict[str, Any]:
    """The statements the gateway's writer ran for a pod (its SQLite trace at aed1249), in BEGIN IMMEDIATE ...
    COMMIT of WRITES_A_TRANSACTION writes, through sqlite3's statement cache; RETURNING rows fetched."""
    sql = {name: text.replace("COLUMNS", record_columns()) for name, text in STATEMENTS.items()}
    record, exists, event, audit = sql["record"], sql["exists"], sql["event"], sql["audit"]
    running, result, finished = sql["running"], sql["result"], sql["finished"]
    with tempfile.TemporaryDirectory(prefix="floor-sqlite-") as tmp:
        conn = sqlite_setup(Path(tmp) / "podgate.db", synchronous)
        rows, ids = sqlite_rows(pods), [0] * pods
        placed = '{"phase":"Queued","reason":"Accepted","message":"%s"}'

        def write(kind: str, i: int) -> None:
            if kind == "create":
                rid, name, now, request, decision, reason, audit_record = rows["create"][i]
                conn.execute(exists, (rid,)).fetchall()
                ids[i] = rid_ = conn.execute(record, (rid, name, now, now, request, decision)).fetchone()[0]
                conn.execute(event, (rid_, 1, "phase", now, placed % reason))
                conn.execute(event, (rid_, 2, "placed", now, decision))
                conn.execute(audit, (now, audit_record))
            elif kind == "running":
                rid, now, events, phase = rows["running"][i]
                conn.execute(running, (now, rid)).fetchone()
                for seq, payload in enumerate(events, start=3):
                    conn.execute(event, (ids[i], seq, "k8s_event", now, payload))
                conn.execute(event, (ids[i], 7, "phase", now, phase))
            elif kind == "result":
                rid, now, outcome, line = rows["result"][i]
                conn.execute(result, (now, outcome, rid)).fetchone()
                conn.execute(event, (ids[i], 8, "log", now, line))
                conn.execute(event, (ids[i], 9, "result", now, outcome))
            else:
                rid, now = rows["finished"][i]
                conn.execute(finished, (now, now, rid)).fetchone()

        writes, transactions = list(sqlite_writes(pods)), 0
        before = self_cpu()
        for start in range(0, len(writes), per_transaction):
            conn.execute("BEGIN IMMEDIATE")
            for kind, i in writes[start : start + per_transaction]:
                write(kind, i)
            conn.execute("COMMIT")
            transactions += 1
        spent = self_cpu() - before
        stored = conn.execute("SELECT count(*) FROM journal_events").fetchone()[0]
        conn.close()
    return {"ms_a_pod": 1000 * spent / pods, "writes_a_pod": len(writes) / pods, "transactions_a_pod": transactions / pods,
            "journal_rows_a_pod": stored / pods}  # fmt: skip
