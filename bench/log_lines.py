"""CPU per followed log line of the journal and the store, as 10,000 pods each logging a line a minute send them:
one line of one pod at a time, ~167 a second, spread out. In-process on a SQLite file, uvloop, the collector
tuned as `podgate serve` tunes it; the figure is this process's CPU time (all threads) per line, less what the
same wall time costs with no line (the loop's own timers).

Three ways the same lines reach the store:
- journal: `Journal.append_log` per line, as `LogTasks._pump` hands them over, on a journal made as
  `podgate serve` makes it (each request's batch due LOG_HOLD_SECONDS after its first line, rounded up to a
  fifth of that, and every request due at once written together: one transaction; before 2026-12-05 each
  request's own flusher wrote its batch apart, ~700 us a line);
- store, spread: `SqlStore.append_events` of one line as each arrives (what those flushes come to);
- store, together: the lines of one flush interval handed to the store at once (the group-commit writer puts
  them in one transaction), the same lines a second.

    .venv/bin/python bench/log_lines.py [--rate 167] [--seconds 15] [--requests 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvloop

from gateway import domain, gctuning
from gateway.pods.journal import LOG_FLUSH_SECONDS, LOG_HOLD_SECONDS, Journal, encode
from gateway.store.sql import SqlStore

Send = Callable[[list[tuple[str, domain.LogLine]]], Awaitable[None]]


def line(i: int) -> domain.LogLine:
    return domain.LogLine(container="main", time=datetime.now(UTC), text=f"line {i} of a followed pod's log")


async def cpu_per_line(ids: list[str], rate: float, seconds: float, per_tick: int, send: Send) -> float:
    """Sends `per_tick` lines at once every per_tick/rate seconds (each of the next request); CPU us a line."""
    gap, count, pending = per_tick / rate, int(rate * seconds), set()
    started = time.process_time()
    for first in range(0, count, per_tick):
        batch = [(ids[i % len(ids)], line(i)) for i in range(first, min(first + per_tick, count))]
        task = asyncio.ensure_future(send(batch))
        pending.add(task)
        task.add_done_callback(pending.discard)
        await asyncio.sleep(gap)
    await asyncio.gather(*pending)
    await asyncio.sleep(LOG_HOLD_SECONDS + 1)  # the journal's last flushes
    busy = time.process_time() - started
    started = time.process_time()
    for _ in range(0, count, per_tick):
        await asyncio.sleep(gap)
    await asyncio.sleep(LOG_HOLD_SECONDS + 1)
    return 1e6 * (busy - (time.process_time() - started)) / count


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = await SqlStore.open(path=Path(tmp) / "gateway.sqlite")
        journal = Journal(store, log_hold_seconds=LOG_HOLD_SECONDS)  # as gateway/app.py makes it
        ids = [f"req-{i}" for i in range(args.requests)]
        container = {"name": "main", "image": "busybox", "resources": {"requests": {"cpu": "10m"}}}
        for request_id in ids:
            request = domain.PodRequest(request_id=request_id, pod={"spec": {"containers": [container]}})
            await store.create_pod_record(
                domain.PodRecord(request=request, phase=domain.PodPhase.RUNNING, created_at=datetime.now(UTC))
            )
        gctuning.settle()

        async def via_journal(batch: list[tuple[str, domain.LogLine]]) -> None:
            for request_id, item in batch:
                journal.append_log(request_id, item)

        async def to_store(batch: list[tuple[str, domain.LogLine]]) -> None:
            now = datetime.now(UTC)
            await asyncio.gather(*(store.append_events(rid, [encode(item, now)]) for rid, item in batch))

        together = max(1, round(args.rate * LOG_FLUSH_SECONDS))
        print(f"{args.rate:g} lines/s for {args.seconds:g} s across {args.requests} requests (SQLite, uvloop)")
        for name, per_tick, send in (
            ("journal.append_log, a line as it comes", 1, via_journal),
            ("store.append_events, a line as it comes", 1, to_store),
            (f"store.append_events, {together} lines at once every {1000 * LOG_FLUSH_SECONDS:g} ms", together, to_store),
        ):
            us = await cpu_per_line(ids, args.rate, args.seconds, per_tick, send)
            print(f"  {name:<58} {us:6.0f} us CPU a line", flush=True)
        await journal.close()
        await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=167.0, help="lines a second")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--requests", type=int, default=1000)
    uvloop.run(main(parser.parse_args()))
