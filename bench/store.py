"""Journal throughput of the SQLite store: how many log lines per second it can make durable.

Usage: .venv/bin/python bench/store.py [--lines N] [--batch B] [--streams S]
S concurrent pods each append N/S lines in batches of B (as the log followers do), then every line
is read back from cursor 0 in pages. Prints lines/s for both; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from gateway.domain import JournalEvent, JournalKind, PodPhase, PodRecord, PodRequest
from gateway.store import SqlStore


def line(i: int) -> JournalEvent:
    text = f"2026-01-01T00:00:00Z step {i}: processed batch of records without incident"
    return JournalEvent(kind=JournalKind.LOG, time=datetime.now(UTC), payload={"container": "main", "text": text})


async def writer(store: SqlStore, request_id: str, lines: int, batch: int) -> None:
    for start in range(0, lines, batch):
        await store.append_events(request_id, [line(i) for i in range(start, min(start + batch, lines))])


async def reader(store: SqlStore, request_id: str) -> int:
    seen, cursor = 0, 0
    while events := await store.read_events(request_id, after_seq=cursor, limit=1000):
        cursor = events[-1][0]
        seen += len(events)
    return seen


async def main(lines: int, batch: int, streams: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with await SqlStore.open(path=Path(tmp) / "bench.db") as store:
            ids = [f"bench-{i}" for i in range(streams)]
            for rid in ids:
                await store.create_pod_record(
                    PodRecord(request=PodRequest(request_id=rid, pod={}), phase=PodPhase.RUNNING)
                )
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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--streams", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.lines, args.batch, args.streams))
