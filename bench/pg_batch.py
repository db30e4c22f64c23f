"""One batch of the PostgreSQL group writer: its writes pipelined, against the same writes one round trip each.

    .venv/bin/python bench/pg_batch.py [--writes 100] [--rounds 5]

A SqlStore on a fresh database (embedded PostgreSQL, bench/_databases.py) holds `--writes` pod records; each
round appends one log event to every record at once (`append_events`, gathered: they queue as one batch of
the writer's one keyed lane). "pipelined" is the store's own path (gateway.store.pgpipeline: one `fetchmany`
for the batch's writes of one statement, on the driver); "one by one" hands the writer the same statements as
plain operations (pgpipeline.Keyed: run through SQLAlchemy in the batch's transaction, each a round trip in
turn), as the writer made every write before decision 0035. Printed: the batch's wall time and this process's
CPU time for it, per write. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._databases import databases
from gateway import domain
from gateway.store.pgpipeline import Keyed, OneRow
from gateway.store.sql import SqlStore


def record(request_id: str) -> domain.PodRecord:
    request = domain.PodRequest(request_id=request_id, pod={})
    return domain.PodRecord(request=request, phase=domain.PodPhase.QUEUED, created_at=datetime.now(UTC))


def event(text: str) -> domain.JournalEvent:
    return domain.JournalEvent(kind=domain.JournalKind.LOG, time=datetime.now(UTC), payload={"text": text})


class OneByOne:
    """The store's writer, handed each `OneRow` as a plain operation: SQLAlchemy, a round trip a write."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer
        self.stats = writer.stats

    async def run(self, operation: Any, key: str = "") -> Any:
        plain = Keyed(operation.__call__, key) if isinstance(operation, OneRow) else operation
        return await self._writer.run(plain, key)

    async def close(self) -> None:
        await self._writer.close()


async def batch(store: SqlStore, ids: list[str]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(store.append_events(i, [event("x")]) for i in ids))
    return time.perf_counter() - wall, time.process_time() - cpu


async def main(args: argparse.Namespace) -> None:
    async with databases(True) as dbs:
        for way in ("pipelined", "one by one"):
            store = await SqlStore.open(await dbs(way.replace(" ", "_")))
            if way == "one by one":  # the writer's way of running operations swapped, nothing else
                store._engines = dataclasses.replace(store._engines, writer=OneByOne(store._engines.writer))
            try:
                ids = [f"r{i}" for i in range(args.writes)]
                await asyncio.gather(*(store.create_pod_record(record(i)) for i in ids))
                await batch(store, ids)  # statements prepared, connection kept
                before = store.writes.transactions
                runs = [await batch(store, ids) for _ in range(args.rounds)]
                transactions = (store.writes.transactions - before) / args.rounds
            finally:
                await store.close()
            wall = statistics.median(w for w, _ in runs)
            cpu = statistics.median(c for _, c in runs)
            print(
                f"{way:>11}: {args.writes} writes in {transactions:.1f} transaction(s) a round, median of {args.rounds}: "
                f"{1000 * wall:.1f} ms wall, {1000 * cpu:.1f} ms CPU ({1e6 * cpu / args.writes:.0f} us a write)",
                flush=True,
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writes", type=int, default=100, help="writes in the batch (one per record)")
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(main(parser.parse_args()))
