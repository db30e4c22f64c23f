"""The four measurements of bench/dispatch.py; each starts its own simulator and gateway and prints figures."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pstats
import re
import resource
import statistics
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import grpc

from bench import _pyspy
from bench._cpucap import capped, throttled_seconds
from bench._databases import databases
from bench._pods import (
    BENCH_LABEL,
    NAMESPACE,
    Observer,
    channels,
    cluster_client,
    count_phases,
    manifest,
    new_id,
    pod_request,
    run_pod,
)
from bench._stack import Counts, GatewayProcess, Stack, Stopwatch, percentile, running_stack
from gateway._proto.podgate.v1 import dispatch_pb2, dispatch_pb2_grpc
from gateway.client import GatewayError

POD_CLUSTER, POD_REGION = "local-eu-cpu", "eu-central-1"
IDLE_CLUSTERS = ("local-eu-gpu", "local-us-gpu")
ALL_CLUSTERS = (POD_CLUSTER, *IDLE_CLUSTERS)
SETTLE_SECONDS = 3.0


def command(args: argparse.Namespace, part: str, *extra: str) -> str:
    quick = " --quick" if args.quick else ""
    quick += " --postgres" if getattr(args, "postgres", False) else ""
    return f".venv/bin/python bench/dispatch.py {part}{quick} --pods {args.part_pods} {' '.join(extra)}".rstrip()


def summary(part: str, text: str, cmd: str) -> None:
    print(f"SUMMARY {part}: {text}\n  reproduce: {cmd}", flush=True)


@contextlib.asynccontextmanager
async def stack_for(tmp: Path, args: argparse.Namespace, *, spy: bool = True) -> AsyncIterator[Stack]:
    """The simulator and the gateway, settled; with --py-spy the gateway is sampled throughout, unless `spy` is
    False (the part samples a phase of its own: the memory part, the holding phase). On SQLite in `tmp`, or
    with `--postgres` on a PostgreSQL server started for the run (bench/_databases.py), whose CPU per pod is
    then printed too."""
    async with contextlib.AsyncExitStack() as resources:
        url, server = None, None
        if getattr(args, "postgres", False):
            server = await resources.enter_async_context(databases(True))
            url = await server("podgate")
        async with _stack(tmp, args, url, spy=spy) as stack:
            before = server.server_cpu_seconds() if server else 0.0
            yield stack
            if server:
                spent = server.server_cpu_seconds() - before
                print(f"  PostgreSQL server CPU time per pod: {1000 * spent / args.part_pods:.2f} ms")


@contextlib.asynccontextmanager
async def _stack(tmp: Path, args: argparse.Namespace, database_url: str | None, *, spy: bool) -> AsyncIterator[Stack]:
    async with running_stack(tmp, profile=args.profile, database_url=database_url) as stack:
        await asyncio.sleep(SETTLE_SECONDS)  # watches listed, first health probes answered
        if args.py_spy is None or not spy:
            yield stack
        else:
            target = stack.sim if getattr(args, "spy_on", "gateway") == "sim" else stack.gateway
            with _pyspy.recording(target.pid, args.py_spy, native=args.native):
                yield stack
    if args.profile:
        report_profile(args.profile)
    if args.py_spy is not None:
        print(_pyspy.top(args.py_spy))


def report_profile(path: Path) -> None:
    stats = pstats.Stats(str(path))
    print(f"\ngateway profile ({path}), top 20 by own time:")
    stats.sort_stats("tottime").print_stats(20)


async def pool(count: int, concurrency: int, job: Callable[[int], Awaitable[None]]) -> float:
    """Runs job(0..count-1) with at most `concurrency` at once; returns the wall time."""
    numbers = iter(range(count))

    async def worker() -> None:
        for i in numbers:
            await job(i)

    clock = Stopwatch()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))
    return clock.elapsed


async def poll(check: Callable[[], Awaitable[bool]], *, every: float, within: float) -> bool:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(every)
    return True


# --- 1. API requests per pod ---------------------------------------------------------------------------


def _mean(counts: list[Counts]) -> dict[tuple[str, str], float]:
    keys = set().union(*counts)
    return {key: sum(c[key] for c in counts) / len(counts) for key in keys}


@dataclass(frozen=True)
class RequestsRun:
    wall: float
    ok: int
    per_pod: dict[tuple[str, str], float]
    background: dict[tuple[str, str], float]


async def _requests_for(
    stack: Stack, stub: dispatch_pb2_grpc.DispatchServiceStub, n: int, duration: float
) -> RequestsRun:
    await stack.sim.reset(*ALL_CLUSTERS)
    clock = Stopwatch()
    outcomes = await asyncio.gather(
        *(run_pod(stub, pod_request(new_id("req"), duration=duration, regions=(POD_REGION,))) for _ in range(n))
    )

    async def deleted() -> bool:
        return (await stack.sim.counts(POD_CLUSTER))[("delete", "pods")] >= n

    await poll(deleted, every=0.2, within=30)
    wall = clock.elapsed
    busy = await stack.sim.counts(POD_CLUSTER)
    background = _mean([await stack.sim.counts(c) for c in IDLE_CLUSTERS])
    per_pod = {key: (busy[key] - background.get(key, 0.0)) / n for key in set(busy) | set(background)}
    return RequestsRun(wall=wall, ok=sum(o.ok for o in outcomes), per_pod=per_pod, background=background)


def _name(key: tuple[str, str]) -> str:
    return f"{key[0]} {key[1] or '(non-resource URL: /version)'}"


async def api_requests(tmp: Path, args: argparse.Namespace) -> None:
    n = args.part_pods
    async with stack_for(tmp, args) as stack, channels(stack.gateway.address, 1) as (stub,):
        runs = {d: await _requests_for(stack, stub, n, d) for d in args.durations}
    labels = [f"{d:g} s pods" for d in runs]
    keys = sorted({k for r in runs.values() for k, v in r.per_pod.items() if abs(v) >= 0.005})
    print(
        f"API requests per pod: {n} pods at once on {POD_CLUSTER}, minus the mean of the idle clusters over the same time"
    )
    print(f"  {'verb resource':<24}" + "".join(f"{label:>14}" for label in labels))
    for key in keys:
        print(f"  {_name(key):<24}" + "".join(f"{r.per_pod.get(key, 0.0):>14.2f}" for r in runs.values()))
    totals = [sum(r.per_pod.values()) for r in runs.values()]
    print(f"  {'total':<24}" + "".join(f"{t:>14.2f}" for t in totals))
    print(f"  {'pods succeeded (XCom ok)':<24}" + "".join(f"{r.ok:>10}/{n:<3}" for r in runs.values()))
    print("Gateway background per cluster with no pods (mean of the idle clusters, same wall time):")
    for label, r in zip(labels, runs.values(), strict=True):
        total = sum(r.background.values())
        parts = ", ".join(f"{_name(k)}: {v:g}" for k, v in sorted(r.background.items()))
        print(f"  during the {label} run ({r.wall:.1f} s): {total:g} requests ({60 * total / r.wall:.1f}/min): {parts}")
    pairs = ", ".join(f"{t:.2f} per {label[:-1]}" for t, label in zip(totals, labels, strict=True))
    rate = statistics.mean(60 * sum(r.background.values()) / r.wall for r in runs.values())
    summary(
        "requests",
        f"API requests per dispatched pod: {pairs}; background {rate:.1f} requests/min per cluster apart",
        command(args, "requests", "--durations", *(f"{d:g}" for d in args.durations)),
    )


# --- 2. Dispatch overhead against a direct create --------------------------------------------------------

OVERHEAD_POD_SECONDS = 1.0
WARM_UP = 3


async def overhead(tmp: Path, args: argparse.Namespace) -> None:
    n, concurrency = args.part_pods, args.concurrency
    gateway: dict[str, list[float]] = {"exists": [], "first log": []}
    direct: dict[str, list[float]] = {"create acknowledged": [], "exists": [], "first log": []}
    async with (
        stack_for(tmp, args) as stack,
        channels(stack.gateway.address, 1) as (stub,),
        cluster_client(POD_CLUSTER, stack.kubeconfig_dir) as client,
        Observer(client) as observer,
    ):

        async def via_gateway(i: int) -> None:
            bench_id = new_id("gw")
            request = pod_request(bench_id, duration=OVERHEAD_POD_SECONDS, regions=(POD_REGION,))
            started = time.perf_counter()
            outcome = await run_pod(stub, request)
            added = observer.sighting(bench_id).added
            if i >= WARM_UP and outcome.first_log_at is not None and added is not None:
                gateway["exists"].append(added - started)
                gateway["first log"].append(outcome.first_log_at - started)

        async def via_client(i: int) -> None:
            bench_id = new_id("direct")
            body = manifest(bench_id, duration=OVERHEAD_POD_SECONDS, name=bench_id)
            body["spec"]["restartPolicy"] = "Never"
            sighting = observer.sighting(bench_id)
            started = time.perf_counter()
            await client.create_pod(NAMESPACE, body)
            acknowledged = time.perf_counter()
            await sighting.started.wait()
            lines = client.stream_logs(NAMESPACE, bench_id, "main", follow=True, timestamps=False, since_time=None)
            async with contextlib.aclosing(cast(AsyncGenerator[str, None], lines)):
                await anext(lines)
            first_log = time.perf_counter()
            await client.delete_pod(NAMESPACE, bench_id, grace_seconds=0)
            if i >= WARM_UP and sighting.added is not None:
                direct["create acknowledged"].append(acknowledged - started)
                direct["exists"].append(sighting.added - started)
                direct["first log"].append(first_log - started)

        cpu_before = stack.gateway.cpu_seconds()
        gateway_wall = await pool(n + WARM_UP, concurrency, via_gateway)
        gateway_cpu = (stack.gateway.cpu_seconds() - cpu_before) / (n + WARM_UP)
        direct_wall = await pool(n + WARM_UP, concurrency, via_client)
    print(
        f"{n} pods of {OVERHEAD_POD_SECONDS:g} s each way, {concurrency} at a time, all on {POD_CLUSTER}; ms from the call"
    )
    print(f"  gateway CPU time per RunPod pod: {gateway_cpu * 1000:.2f} ms (load average {os.getloadavg()[0]:.1f})")
    print(f"  {'path':<44}{'median':>10}{'p95':>10}")
    for path, figures in (("gateway RunPod", gateway), ("direct ClusterClient", direct)):
        for what, values in figures.items():
            print(
                f"  {path + ': ' + what:<44}{1000 * statistics.median(values):>10.1f}{1000 * percentile(values, 95):>10.1f}"
            )
    print(
        f"  wall time: gateway {gateway_wall:.1f} s, direct {direct_wall:.1f} s (gateway runs include the result and delete)"
    )
    extra = {w: 1000 * (statistics.median(gateway[w]) - statistics.median(direct[w])) for w in gateway}
    summary(
        "overhead",
        f"the gateway adds {extra['exists']:.1f} ms (median) until the pod exists and {extra['first log']:.1f} ms "
        f"until the first log line, against a direct create with the same client",
        command(args, "overhead", "--concurrency", str(concurrency)),
    )


# --- 3. Dispatches per second ----------------------------------------------------------------------------

THROUGHPUT_POD_SECONDS = 1.0


@dataclass
class Submitted:
    wall: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def accepted(self) -> int:
        return len(self.latencies)


async def submit_all(
    stubs: list[dispatch_pb2_grpc.DispatchServiceStub],
    requests: list[dispatch_pb2.PodRequest],
    callers: int,
    progress: Callable[[int], None] = lambda done: None,
) -> Submitted:
    """SubmitPod for every request from `callers` concurrent callers; a failed call is counted, not raised."""

    async def submit(i: int) -> None:
        await stubs[i % len(stubs)].SubmitPod(dispatch_pb2.SubmitPodRequest(pod=requests[i]), timeout=600)

    return await call_all(submit, len(requests), callers, progress)


async def call_all(
    call: Callable[[int], Awaitable[None]], count: int, callers: int, progress: Callable[[int], None] = lambda done: None
) -> Submitted:
    """call(0..count-1) from `callers` concurrent callers, each call timed; a call failing with a gRPC status
    (raw, or as the client's GatewayError) is counted by its code, not raised."""
    out = Submitted()

    async def timed(i: int) -> None:
        started = time.perf_counter()
        try:
            await call(i)
        except (grpc.aio.AioRpcError, GatewayError) as e:
            code = e.code() if isinstance(e, grpc.aio.AioRpcError) else e.code
            out.errors[code.name if code else type(e).__name__] += 1
        else:
            out.latencies.append(time.perf_counter() - started)
        progress(out.accepted + sum(out.errors.values()))

    out.wall = await pool(count, callers, timed)
    return out


def errors_text(submitted: Submitted) -> str:
    if not submitted.errors:
        return ""
    return " FAILED SubmitPod calls: " + ", ".join(f"{code} x{n}" for code, n in submitted.errors.items()) + ";"


async def throughput(tmp: Path, args: argparse.Namespace) -> None:
    n = args.part_pods
    cores, sim_cores = getattr(args, "gateway_cores", 0.0), getattr(args, "sim_cores", 0.0)
    requests = [pod_request(new_id("tp"), duration=THROUGHPUT_POD_SECONDS) for _ in range(n)]
    async with contextlib.AsyncExitStack() as resources:
        stack = await resources.enter_async_context(stack_for(tmp, args))
        stubs = await resources.enter_async_context(channels(stack.gateway.address, args.channels))
        for process, share in ((stack.gateway, cores), (stack.sim, sim_cores)):
            if share:
                resources.enter_context(capped([process.pid], share))
        await stack.sim.reset(*ALL_CLUSTERS)
        clock = Stopwatch()
        cpu_before, sim_before = stack.gateway.cpu_seconds(), stack.sim.cpu_seconds()
        callers_before = time.process_time()
        submitted = await submit_all(stubs, requests, args.callers)
        submit_wall, latencies = submitted.wall, submitted.latencies
        submit_cpu = stack.gateway.cpu_seconds() - cpu_before

        async def all_finished() -> bool:  # asked of the simulator: polling ListPods would load the gateway
            return await deleted_pods(stack) >= submitted.accepted

        done = await poll(all_finished, every=0.5, within=900)
        results_wall = clock.elapsed
        gateway_cpu, sim_cpu = stack.gateway.cpu_seconds() - cpu_before, stack.sim.cpu_seconds() - sim_before
        callers_cpu = time.process_time() - callers_before
        throttled = [throttled_seconds(p.pid) if share else 0.0 for p, share in ((stack.gateway, cores), (stack.sim, sim_cores))]
        api: Counts = sum([await stack.sim.counts(c) for c in ALL_CLUSTERS], Counter())
        succeeded = await count_phases(stubs[0], (dispatch_pb2.POD_PHASE_SUCCEEDED,))
    print(
        f"{n} pods of {THROUGHPUT_POD_SECONDS:g} s, SubmitPod from {args.callers} concurrent callers on {args.channels} gRPC connections"
    )
    print(
        f"  submitted in {submit_wall:.1f} s: {n / submit_wall:.0f} SubmitPod/s;{errors_text(submitted)} call latency median "
        f"{1000 * statistics.median(latencies):.0f} ms, p95 {1000 * percentile(latencies, 95):.0f} ms"
    )
    state = "all results in" if done else "NOT all results in (timed out)"
    state += " (the gateway deletes a pod once its result is stored)"
    print(
        f"  {state} {results_wall:.1f} s after the first submit ({n / results_wall:.0f} pods/s end to end); "
        f"succeeded {succeeded}/{n}"
    )
    print(
        f"  API requests, 3 clusters, background included: {sum(api.values()) / n:.2f} per pod "
        f"({', '.join(f'{_name(k)}: {v / n:.2f}' for k, v in sorted(api.items()))})"
    )
    print(
        f"  gateway CPU time per pod, first submit to last result: {1000 * gateway_cpu / n:.2f} ms "
        f"({1000 * submit_cpu / n:.2f} ms of it while submitting; {100 * gateway_cpu / results_wall:.0f}% of a core); "
        f"simulator {1000 * sim_cpu / n:.2f} ms per pod; the callers (this process) {1000 * callers_cpu / n:.2f} ms "
        f"per pod; load average {os.getloadavg()[0]:.1f}"
    )
    for what, share, held in (("gateway", cores, throttled[0]), ("simulator", sim_cores, throttled[1])):
        if share:
            print(f"  the {what} capped at {share:g} core: held back by the cap {held:.1f} s")
    print_store_writes(stack.gateway.log_path, n)
    capped_at = (*(("--gateway-cores", str(cores)) if cores else ()), *(("--sim-cores", str(sim_cores)) if sim_cores else ()))
    summary(
        "throughput",
        f"{n / submit_wall:.0f} SubmitPod/s accepted; all {n} results in after {results_wall:.1f} s "
        f"({n / results_wall:.0f} pods/s end to end); gateway CPU {1000 * gateway_cpu / n:.2f} ms per pod",
        command(args, "throughput", "--callers", str(args.callers), "--channels", str(args.channels), *capped_at),
    )


STORE_LINE = re.compile(r"store: (\d+) writes in (\d+) transactions.*?(?:writer thread ([\d.]+) s CPU)?$")


def print_store_writes(gateway_log: Path, pods: int) -> None:
    """The store's writes per pod and, on SQLite, its writer thread's own CPU per pod (what the group writer
    logs at close: the whole run, start-up included)."""
    for line in gateway_log.read_text(errors="replace").splitlines():
        found = STORE_LINE.search(line)
        if found:
            writes, transactions, thread = found.groups()
            cpu = f"; the writer thread's CPU {1000 * float(thread) / pods:.2f} ms per pod" if thread else ""
            print(f"  store: {int(writes) / pods:.2f} writes per pod in {int(transactions) / pods:.2f} transactions{cpu}")


# --- 4. Memory with many pods in flight ------------------------------------------------------------------

LONG_POD_SECONDS = 3600.0
CPU_WINDOW = 10.0
MEMORY_SETTLE_SECONDS = 15.0


async def cpu_percent(gateway: GatewayProcess, window: float = CPU_WINDOW) -> float:
    before = gateway.cpu_seconds()
    await asyncio.sleep(window)
    return 100 * (gateway.cpu_seconds() - before) / window


async def holding_cpu(gateway: GatewayProcess, args: argparse.Namespace) -> float:
    """CPU % of a core while the pods are held (over --hold seconds), under py-spy with --py-spy."""
    if args.py_spy is None:
        return await cpu_percent(gateway, args.hold)
    with _pyspy.recording(gateway.pid, args.py_spy, native=args.native):
        return await cpu_percent(gateway, args.hold)


def peak_rss(gateway: GatewayProcess) -> int:
    for line in Path(f"/proc/{gateway.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


async def deleted_pods(stack: Stack) -> int:
    return sum([(await stack.sim.counts(c))[("delete", "pods")] for c in ALL_CLUSTERS])


async def running_pods(stack: Stack) -> int:
    """Bench pods running, by a list on each simulated cluster (not ListPods: that would load the gateway)."""
    running = 0
    for cluster in ALL_CLUSTERS:
        async with cluster_client(cluster, stack.kubeconfig_dir) as client:
            pods = await client.list_pods(NAMESPACE, label_selector=BENCH_LABEL)
            running += sum(1 for p in pods.items if (p.get("status") or {}).get("phase") == "Running")
    return running


async def wait_running(stack: Stack, target: int) -> int:
    """Polls until `target` pods run or their number stops growing for half a minute; returns it."""
    counts: list[int] = []

    async def settled() -> bool:
        counts.append(await running_pods(stack))
        return counts[-1] >= target or (len(counts) > 6 and counts[-1] <= counts[-7])

    await poll(settled, every=5.0, within=900)
    return counts[-1]


class Progress:
    """Prints the submit rate, the gateway's RSS and both processes' CPU at each tenth of the submissions."""

    def __init__(self, stack: Stack, total: int) -> None:
        self._stack, self._total, self._step = stack, total, max(total // 10, 1)
        self._clock = Stopwatch()
        self._last = (0.0, 0, stack.gateway.cpu_seconds(), stack.sim.cpu_seconds())

    def __call__(self, done: int) -> None:
        if done % self._step and done != self._total:
            return
        now, gateway_cpu, sim_cpu = (
            self._clock.elapsed,
            self._stack.gateway.cpu_seconds(),
            self._stack.sim.cpu_seconds(),
        )
        then, before, gateway_then, sim_then = self._last
        self._last = (now, done, gateway_cpu, sim_cpu)
        span = max(now - then, 1e-6)
        print(
            f"  {done:>6} submitted at {now:6.1f} s: {(done - before) / span:5.0f}/s lately, "
            f"gateway RSS {self._stack.gateway.rss_bytes() / 2**20:6.0f} MiB, CPU: gateway "
            f"{100 * (gateway_cpu - gateway_then) / span:3.0f}%, simulator {100 * (sim_cpu - sim_then) / span:3.0f}%",
            flush=True,
        )


def raise_descriptor_limit(pods: int) -> str:
    """Raises this process's descriptor limit, which the simulator and the gateway inherit, to 4 per pod.

    Over HTTP/1.1 (`PODGATE_CLUSTERS_API_PROTOCOL=http/1.1`) each followed log holds a connection in both, and the
    gateway refuses new pods (RESOURCE_EXHAUSTED) once the descriptors open or promised (2 per admitted pod)
    come within a sixteenth of its soft limit: on a hard limit of 20,000 that is about 9,360 pods. Over HTTP/2
    (the default) 100 logs share a connection and a pod promises 0.1. Raising the hard limit needs
    CAP_SYS_RESOURCE (refused on the development machine, root or not)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * pods + 2048
    if soft >= wanted:
        return f"descriptor limit {soft}"
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(hard, wanted)))
    except (ValueError, OSError) as e:
        return (f"descriptor limit {soft}/{hard}, not raised to {wanted} ({e}): with logs on HTTP/1.1 the gateway "
                f"admits ~{soft * 15 // 32} pods")  # fmt: skip
    return f"descriptor limit raised from {soft}/{hard} to {wanted}"


async def memory(tmp: Path, args: argparse.Namespace) -> None:
    n = args.part_pods
    print(f"  {raise_descriptor_limit(n)}", flush=True)
    mib = 2**20
    lines = max(1, round(LONG_POD_SECONDS / args.log_every)) if args.log_every > 0 else 1
    requests = [
        pod_request(new_id("mem"), duration=LONG_POD_SECONDS, log_lines=lines, follow_logs=not args.no_logs)
        for _ in range(n)
    ]
    async with stack_for(tmp, args, spy=False) as stack, channels(stack.gateway.address, args.channels) as stubs:
        gw = stack.gateway
        idle_cpu = await cpu_percent(gw)
        before, cpu_before = gw.rss_bytes(), gw.cpu_seconds()
        submitted = await submit_all(stubs, requests, args.callers, Progress(stack, n))
        clock = Stopwatch()
        running = await wait_running(stack, submitted.accepted)
        running_wall = clock.elapsed + submitted.wall
        cpu_per_pod = (gw.cpu_seconds() - cpu_before) / max(running, 1)
        await asyncio.sleep(MEMORY_SETTLE_SECONDS)  # the gateway records the last phase changes
        busy_cpu = await holding_cpu(gw, args)
        after, peak, fds = gw.rss_bytes(), peak_rss(gw), gw.open_fds()
        followed = await count_phases(stubs[0], (dispatch_pb2.POD_PHASE_RUNNING,))
        failed = await count_phases(stubs[0], (dispatch_pb2.POD_PHASE_FAILED,))
    per_pod = (after - before) / max(running, 1)
    print(
        f"{n} pods of {LONG_POD_SECONDS:g} s ({lines} log lines each) across {len(ALL_CLUSTERS)} clusters, submitted in {submitted.wall:.1f} s "
        f"({n / submitted.wall:.0f}/s);{errors_text(submitted)} {running} running in the simulator after {running_wall:.1f} s"
    )
    print(
        f"  gateway RSS: {before / mib:.1f} MiB before, {after / mib:.1f} MiB with {running} pods in flight "
        f"(peak {peak / mib:.1f} MiB): {per_pod / 1024:.1f} KiB per pod"
    )
    print(
        f"  gateway CPU: {idle_cpu:.1f}% of a core with no pods, {busy_cpu:.1f}% with {running} running pods "
        f"(nothing changing, over {args.hold:g} s); open file descriptors: {fds}"
    )
    print(
        f"  gateway CPU time from the first submit until all ran: {cpu_per_pod * 1000:.2f} ms per pod "
        f"(load average {os.getloadavg()[0]:.1f})"
    )
    print(f"  the gateway records {followed} as running, {failed} as failed (ListPods)")
    if args.py_spy is not None:
        print(f"py-spy over the {args.hold:g} s holding the pods:\n{_pyspy.top(args.py_spy)}")
    summary(
        "memory",
        f"gateway RSS {before / mib:.0f} MiB -> {after / mib:.0f} MiB with {running} pods in flight: "
        f"{per_pod / 1024:.1f} KiB per pod; {busy_cpu:.0f}% CPU to follow them"
        + (f"; {failed} pods failed in the gateway" if failed else ""),
        command(args, "memory", "--callers", str(args.callers), "--channels", str(args.channels))
        + (f" --log-every {args.log_every:g}" if args.log_every > 0 else ""),
    )
