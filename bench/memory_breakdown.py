"""Where a followed pod's gateway memory goes: tracemalloc snapshots at N and 2N pods in flight, diffed.

The gateway runs as in bench/dispatch.py (`podgate serve` on the virtual clusters, a child process) but
under tracemalloc (bench/_tracing/sitecustomize.py, put on its PYTHONPATH). N long pods with followed logs are submitted and left to
run; then a snapshot; then N more, and another. What grew between the two, divided by N, is the marginal
cost of one followed pod, grouped two ways: by the line that allocated it, and by the innermost gateway
frame that asked for it (so aiohttp's or the store's allocations are charged to the gateway code behind
them). RSS growth over the same span (less tracemalloc's own memory) against the traced growth tells what
is allocated outside Python's allocators: OpenSSL, libuv, gRPC core, SQLite, and malloc's slack.

    .venv/bin/python bench/memory_breakdown.py --pods 1000
    .venv/bin/python bench/memory_breakdown.py --pods 1000 --no-trace     # RSS only, no tracemalloc cost
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import tracemalloc
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._measure import (
    ALL_CLUSTERS,
    LONG_POD_SECONDS,
    MEMORY_SETTLE_SECONDS,
    errors_text,
    poll,
    submit_all,
    wait_running,
)
from bench._pods import channels, new_id, pod_request
from bench._stack import ROOT, Stack, running_stack

KIB = 1024
HERE = str(ROOT / "gateway")
TRACING = ROOT / "bench" / "_tracing"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=1000, help="pods per step (N); the second step doubles it")
    parser.add_argument("--frames", type=int, default=15, help="traceback depth kept by tracemalloc")
    parser.add_argument("--top", type=int, default=25, help="rows per table")
    parser.add_argument("--no-trace", action="store_true", help="RSS only (no tracemalloc)")
    parser.add_argument("--no-logs", action="store_true", help="pods whose logs are not followed")
    parser.add_argument("--callers", type=int, default=200)
    parser.add_argument("--channels", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the state directory and snapshots")
    return parser.parse_args(argv)


def _site(frame: tracemalloc.Frame) -> str:
    """file:line, the file relative to site-packages, the standard library or the repository."""
    name = re.sub(r"^.*/(site-packages|lib/python3\.\d+)/", "", frame.filename).removeprefix(str(ROOT) + "/")
    return f"{name}:{frame.lineno}"


def _owner(traceback: tracemalloc.Traceback) -> str:
    """The innermost frame in the gateway's own code (frames run oldest to newest)."""
    for frame in reversed(traceback):
        if frame.filename.startswith(HERE):
            return _site(frame)
    return "(no gateway frame)"


CATEGORIES = (  # (what, allocating line starts with, innermost gateway frame starts with); first match wins
    ("TLS socket read buffer (uvloop SSLProtocol: 256 KiB malloc per connection)", "aiohttp/connector.py", ""),
    ("pod objects kept from the pods watch (JSON)", "json/", "gateway/clusters/"),
    ("pod records kept from the store (JSON columns, decoded)", "json/", "gateway/store/"),
    ("pod records kept from the store (JSON columns, decoded)", "gateway/store/", ""),
    ("aiohttp: responses, streams, protocols", "aiohttp/", ""),
    ("asyncio: tasks, events, locks, timeouts", "asyncio/", ""),
    ("asyncio: tasks, events, locks, timeouts", "_weakrefset.py", ""),
    ("the gateway's own objects (runners, tracks, followers, coroutines)", "gateway/", ""),
)


def category(line: str, owner: str) -> str:
    for what, site, frame in CATEGORIES:
        if line.startswith(site) and owner.startswith(frame):
            return what
    return "other"


def totals(snapshot: tracemalloc.Snapshot) -> tuple[Counter[str], ...]:
    """Bytes by category, by allocating line, by innermost gateway frame, and by (gateway frame, line)."""
    by_category: Counter[str] = Counter()
    by_line: Counter[str] = Counter()
    by_owner: Counter[str] = Counter()
    by_pair: Counter[str] = Counter()
    for trace in snapshot.traces:
        line, owner = _site(trace.traceback[-1]), _owner(trace.traceback)
        by_category[category(line, owner)] += trace.size
        by_line[line] += trace.size
        by_owner[owner] += trace.size
        by_pair[f"{owner}  <-  {line}"] += trace.size
    return by_category, by_line, by_owner, by_pair


def print_table(title: str, before: Counter[str], after: Counter[str], pods: int, top: int) -> None:
    grown = Counter({key: after[key] - before.get(key, 0) for key in after})
    total = sum(grown.values())
    print(f"\n{title} (per pod; total {total / pods / KIB:.1f} KiB)")
    for key, size in grown.most_common(top):
        print(f"  {size / pods / KIB:8.2f} KiB  {key}")


def print_census(before: dict[str, list[int]], after: dict[str, list[int]], pods: int, top: int) -> None:
    """gc-tracked objects gained per pod, by type: how many, and their shallow size (a dict's or a frame's
    own block, not what it refers to)."""
    grown = {k: (c - before.get(k, [0, 0])[0], b - before.get(k, [0, 0])[1]) for k, (c, b) in after.items()}
    total = sum(b for _, b in grown.values())
    print(f"\ngc-tracked objects by type (per pod; shallow total {total / pods / KIB:.1f} KiB)")
    for key, (count, size) in sorted(grown.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"  {size / pods / KIB:8.2f} KiB  {count / pods:6.2f}  {key}")


async def _step(stack: Stack, args: argparse.Namespace, count: int) -> int:
    requests = [
        pod_request(new_id("mem"), duration=LONG_POD_SECONDS, follow_logs=not args.no_logs) for _ in range(count)
    ]
    async with channels(stack.gateway.address, args.channels) as stubs:
        submitted = await submit_all(stubs, requests, args.callers)
    if submitted.errors:
        print(f"  {errors_text(submitted)}")
    return submitted.accepted


async def _signal(stack: Stack, signum: int, facts: Path) -> None:
    """Signals the traced gateway and waits for the file it writes in answer."""
    stack.gateway.process.send_signal(signum)

    async def written() -> bool:
        return await asyncio.to_thread(facts.exists)

    await poll(written, every=0.5, within=600)
    await asyncio.sleep(0.5)


async def _snapshot(stack: Stack, out: Path, k: int) -> dict[str, object]:
    await _signal(stack, signal.SIGUSR1, out / f"snap-{k}.json")
    data = json.loads((out / f"snap-{k}.json").read_text())
    assert isinstance(data, dict)
    return data


async def measure(tmp: Path, args: argparse.Namespace) -> None:
    out = tmp / "traces"
    (tmp / "state").mkdir()
    path = os.pathsep.join(p for p in (str(TRACING), os.environ.get("PYTHONPATH", "")) if p)
    env = (
        {}
        if args.no_trace
        else {"PYTHONPATH": path, "PODGATE_TRACE_DIR": str(out), "PODGATE_TRACE_FRAMES": str(args.frames)}
    )
    async with running_stack(tmp / "state", env=env) as stack:
        await asyncio.sleep(MEMORY_SETTLE_SECONDS)
        if not args.no_trace:
            await _signal(stack, signal.SIGUSR2, out / "started")
        rss, facts, counts = [], [], []
        for step in (1, 2):
            accepted = await _step(stack, args, args.pods)
            running = await wait_running(stack, sum(counts) + accepted)
            counts.append(running - sum(counts))
            await asyncio.sleep(MEMORY_SETTLE_SECONDS)
            rss.append(stack.gateway.rss_bytes())
            print(
                f"step {step}: {accepted} accepted, {running} running across {len(ALL_CLUSTERS)} clusters; "
                f"gateway RSS {rss[-1] / 2**20:.1f} MiB; open descriptors {stack.gateway.open_fds()}",
                flush=True,
            )
            if not args.no_trace:
                facts.append(await _snapshot(stack, out, step))
    n = counts[1]  # the pods added between the two measurements
    rss_per_pod = (rss[1] - rss[0]) / n
    print(f"\nRSS growth from {counts[0]} to {sum(counts)} pods running: {rss_per_pod / KIB:.1f} KiB per pod")
    if args.no_trace:
        return
    overhead = (facts[1]["tracemalloc_overhead"] - facts[0]["tracemalloc_overhead"]) / n  # type: ignore[operator]
    traced = (facts[1]["traced"] - facts[0]["traced"]) / n  # type: ignore[operator]
    malloc = [f["malloc"] for f in facts]
    in_use = [m.get("uordblks", 0) + m.get("hblkhd", 0) for m in malloc]  # type: ignore[union-attr]
    print(f"  tracemalloc's own memory: {overhead / KIB:.1f} KiB per pod (in RSS, not the gateway's)")
    print(f"  traced by tracemalloc (Python's allocators): {traced / KIB:.1f} KiB per pod")
    print(
        f"  RSS less tracemalloc less traced (outside Python, or freed but not returned): "
        f"{(rss_per_pod - overhead - traced) / KIB:.1f} KiB per pod"
    )
    print(f"  glibc malloc in use (heap + mmapped blocks) grew {(in_use[1] - in_use[0]) / n / KIB:.1f} KiB per pod")
    print(
        f"  Python objects tracked by the gc: {(facts[1]['gc_objects'] - facts[0]['gc_objects']) / n:.0f} more per pod"
    )  # type: ignore[operator]
    print_census(facts[0].get("census", {}), facts[1].get("census", {}), n, args.top)  # type: ignore[arg-type]
    snaps = [tracemalloc.Snapshot.load(str(out / f"snap-{k}.tracemalloc")) for k in (1, 2)]
    first, second = totals(snaps[0]), totals(snaps[1])
    del snaps
    for title, before, after in zip(_titles(), first, second, strict=True):
        print_table(title, before, after, n, args.top)


def _titles() -> Iterable[str]:
    return (
        "traced growth by category",
        "by allocating line",
        "by innermost gateway frame",
        "by (gateway frame <- allocating line)",
    )


def main() -> None:
    args = parse()
    tmp = Path(tempfile.mkdtemp(prefix="podgate-membreak-"))
    try:
        asyncio.run(measure(tmp, args))
    finally:
        if args.keep:
            print(f"(kept {tmp})")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
