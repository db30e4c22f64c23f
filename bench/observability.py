"""Cost of observability on the hot paths: one JSON log line (with context and redaction), one text line,
recording a log line's bytes, a scrape of /metrics over HTTP with N clusters' live gauges.

    .venv/bin/python bench/observability.py [--lines 20000] [--clusters 50]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import time
import urllib.request

from gateway.observability import logging as obs
from gateway.observability import metrics


def per_call(fn: object, n: int) -> float:
    assert callable(fn)
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1e6


def log_costs(lines: int) -> None:
    log = logging.getLogger("bench.observability")
    log.propagate = False
    with obs.bound(request_id="r-1", tenant="t", cluster="eu-gpu", pod="job-abc"):
        for fmt in obs.FORMATS:
            handler = logging.StreamHandler(io.StringIO())
            handler.setFormatter(obs.formatter(fmt))
            log.handlers = [handler]
            plain = per_call(lambda: log.warning("pod %s is %s on %s", "job-abc", "Running", "eu-gpu"), lines)
            secret = per_call(lambda: log.warning("401 with Authorization: Bearer abcdef123456, refreshing"), lines)
            print(f"{fmt} log line: {plain:.1f} us plain, {secret:.1f} us with a secret to redact")
    text = "x" * 120
    print(f"record_log_line (120 bytes): {per_call(lambda: metrics.record_log_line('eu-gpu', text), lines):.2f} us")


async def scrape_cost(clusters: int) -> None:
    samples = [
        metrics.ClusterSample(
            name=f"c{i}", health="healthy", gateway_pods=5,
            allocatable={"cpu": 64, "memory": 256e9, "gpu": 8}, free={"cpu": 10, "memory": 100e9, "gpu": 2},
            gpus_free_by_type={"nvidia-h100": 2},
        )
        for i in range(clusters)
    ]  # fmt: skip
    pods = [metrics.PodSample(cluster=f"c{i % clusters}", phase="Running") for i in range(clusters * 20)]
    stop = metrics.track_live(
        asyncio.get_running_loop(), metrics.LiveSources(clusters=lambda: samples, pods=lambda: pods)
    )
    server = metrics.serve("127.0.0.1:0")
    try:

        def scrape() -> int:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as answer:
                return len(answer.read())

        size = await asyncio.to_thread(scrape)
        started = time.perf_counter()
        for _ in range(20):
            await asyncio.to_thread(scrape)
        took = (time.perf_counter() - started) / 20 * 1e3
        print(f"scrape with {clusters} clusters, {len(pods)} live pods: {took:.1f} ms, {size} bytes")
    finally:
        stop()
        await asyncio.to_thread(server.close)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=20000)
    parser.add_argument("--clusters", type=int, default=50)
    args = parser.parse_args()
    log_costs(args.lines)
    asyncio.run(scrape_cost(args.clusters))


if __name__ == "__main__":
    main()
