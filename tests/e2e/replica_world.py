"""Several `podgate serve` replicas on one PostgreSQL database and one simulated world: the pieces the
replica tests share (docs/decisions/0021).

Replicas are real processes (killed with SIGKILL, paused with SIGSTOP) writing JSON logs; the simulator
runs in the test's process and counts every pod any replica creates, per request id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import shutil
import signal
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import yaml
from sqlalchemy.engine import make_url

from gateway._proto.podgate.v1 import common_pb2, dispatch_pb2
from gateway.client import ChannelSpec, GatewayClient, Log, Result, RetryPolicy
from gateway.pods import builder
from gateway.sim.cluster import SimWorld
from tests.conftest import BIN, ROOT, clean_env
from tests.e2e.conftest import LOCAL, virtual_cluster_file

LEASE_SECONDS = 3.0
# A client rides out a replica's death: its stream comes back on another replica within a few seconds.
FAILOVER = RetryPolicy(budget=60, initial_delay=0.1, max_delay=1.0)


@contextlib.asynccontextmanager
async def replica(
    tmp_path: Path,
    name: str,
    url: str,
    world_kubeconfigs: Path,
    extra: dict[str, Any] | None = None,
    lease: float = LEASE_SECONDS,
    clusters: Path = LOCAL,
) -> AsyncIterator[tuple[subprocess.Popen[str], str]]:
    """`podgate serve` on its own state directory (the world's kubeconfigs copied in), the shared database,
    JSON logs in tmp_path/<name>.log. Its output is read in a thread: the simulator answers in this event
    loop meanwhile."""
    state = tmp_path / name
    shutil.copytree(world_kubeconfigs, state / "kubeconfigs")
    config = tmp_path / f"{name}.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "server": {"listen": "127.0.0.1:0", "state_dir": str(state)},
                "clusters": {"files": [str(clusters)], "probe_interval_seconds": 0.3},
                "database": {"url": url, "lease_seconds": lease},
                "metrics": {"listen": "off"},
                "logging": {"format": "json"},
                **(extra or {}),
            }
        )
    )
    stderr = (tmp_path / f"{name}.log").open("w")
    proc = subprocess.Popen(
        [str(BIN / "podgate"), "serve", "--config", str(config)],
        cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE, stderr=stderr, text=True,
    )  # fmt: skip
    try:
        yield proc, await asyncio.to_thread(serving_address, proc, tmp_path / f"{name}.log")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)  # a paused replica cannot stop
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, 30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        stderr.close()


async def replicas(
    stack: contextlib.AsyncExitStack, tmp_path: Path, url: str, names: Iterable[str], **options: Any
) -> list[tuple[subprocess.Popen[str], str]]:
    """Starts several replicas at once (each takes a few seconds to serve), stopped with `stack`."""
    return list(
        await asyncio.gather(
            *(
                stack.enter_async_context(replica(tmp_path, name, url, tmp_path / "kubeconfigs", **options))
                for name in names
            )
        )
    )


def serving_address(proc: subprocess.Popen[str], log: Path) -> str:
    assert proc.stdout is not None
    printed = ""
    while not (match := re.search(r"serving on (127\.0\.0\.1:\d+)", printed)):
        line = proc.stdout.readline()
        assert line, printed + log.read_text()
        printed += line
    return match.group(1)


@contextlib.asynccontextmanager
async def shared_world(tmp_path: Path, *, virtual: bool = False) -> AsyncIterator[tuple[SimWorld, Counter[str]]]:
    """The local clusters (every node virtual when asked), and how many pods were created for each
    request id (any cluster)."""
    created: Counter[str] = Counter()

    def count(type_: str, new: dict[str, Any], _old: Any) -> None:
        if type_ == "ADDED":
            created[(new["metadata"].get("annotations") or {}).get(builder.REQUEST_ID_ANNOTATION, "")] += 1

    source = virtual_cluster_file(tmp_path) if virtual else LOCAL
    async with SimWorld.from_file(source, kubeconfig_dir=tmp_path / "kubeconfigs", control_port=None) as world:
        for cluster in world.clusters.values():
            cluster.store.subscribe("pods", count)
        yield world, created


def virtual_pod(request_id: str, lines: int, seconds: float) -> dispatch_pb2.PodRequest:
    """A pod that runs no process: it prints `lines` numbered lines spread over `seconds`, then leaves
    {"rid": request_id} as its XCom (the termination message, read in AUTO mode)."""
    annotations = {
        "sim.podgate.io/duration": f"{seconds:g}",
        "sim.podgate.io/log-lines": "\n".join(numbered(lines)),
        "sim.podgate.io/termination-message": json.dumps({"rid": request_id}),
    }
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "ha", "annotations": annotations},
        "spec": {"containers": [{"name": "base", "image": "busybox", "command": ["true"]}]},
    }
    return dispatch_pb2.PodRequest(
        request_id=request_id,
        pod_json=json.dumps(manifest),
        placement=common_pb2.Placement(),
        xcom=dispatch_pb2.XcomOptions(mode=dispatch_pb2.XCOM_MODE_AUTO),
    )


def numbered(lines: int) -> list[str]:
    return [f"line {i}" for i in range(lines)]


@dataclass
class Watched:
    """What one client read of one request: every log line in order, and the result."""

    lines: list[str] = field(default_factory=list)
    result: Result | None = None


class ResumeCounter(logging.Handler):
    """Counts, per request id, the streams GatewayClient resumed from their cursor (its warning says so)."""

    def __init__(self) -> None:
        super().__init__()
        self.resumed: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        match = re.match(r"WatchPod (\S+): stream interrupted", record.getMessage())
        if match:
            self.resumed[match.group(1)] += 1


async def follow(client: GatewayClient, request_id: str, watched: Watched) -> None:
    """Follows a request to its result through `client` (any of its addresses, resuming from the cursor),
    into `watched` as it goes."""
    async for event in client.watch_pod(request_id):
        if isinstance(event, Log):
            watched.lines.append(event.text)
        elif isinstance(event, Result):
            watched.result = event


def clients(addresses: list[str], count: int) -> list[GatewayClient]:
    """`count` clients, each given every replica's address: gRPC spreads each one's calls over them."""
    spec = ChannelSpec(address=",".join(addresses))
    return [GatewayClient(spec, retry=FAILOVER, deadline=30) for _ in range(count)]


# --- who owned what, from the replicas' JSON logs -------------------------------------------------


@dataclass(frozen=True)
class Ownership:
    """One lease's hold on one request, from the replica's log: from `start` (None: from its submission)
    to `end` (None: to the end of the test, or the request finished)."""

    lease: str
    request_id: str
    start: datetime | None
    end: datetime | None


def log_entries(path: Path) -> list[dict[str, Any]]:
    entries = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            entries.append(json.loads(line))
    return entries


def taken_over(log: Path) -> list[str]:
    """The request ids a replica's log says it took over."""
    return [
        rid
        for entry in log_entries(log)
        if re.match(r"replica \S+ took over", entry.get("message", ""))
        for rid in entry["request_ids"]
    ]


def ownerships(path: Path, submitted: Iterable[str], submitted_at: datetime) -> list[Ownership]:
    """The holds of one replica process: the requests submitted to it belong from the start to the lease it
    held when they were submitted (not always its first: a replica slow to renew at start takes a second
    one); a take-over starts a hold, losing the lease ends every hold of that lease."""
    entries = [
        (entry, entry.get("message", ""), datetime.fromisoformat(entry["time"].replace("Z", "+00:00")))
        for entry in log_entries(path)
    ]
    leases = [match.group(1) for _, message, when in entries
              if when <= submitted_at and (match := re.match(r"replica (\S+) holds its lease", message))]  # fmt: skip
    assert leases, f"{path.name}: no lease held when the requests were submitted"
    held: dict[tuple[str, str], datetime | None] = {(leases[-1], rid): None for rid in submitted}
    found: list[Ownership] = []
    for entry, message, when in entries:
        if match := re.match(r"replica (\S+) took over", message):
            held.update(((match.group(1), rid), when) for rid in entry["request_ids"])
        elif match := re.match(r"replica (\S+) stops following", message):
            for rid in entry["request_ids"]:
                if (match.group(1), rid) in held:
                    found.append(Ownership(match.group(1), rid, held.pop((match.group(1), rid)), when))
    found += [Ownership(lease, rid, start, None) for (lease, rid), start in held.items()]
    return found


def overlapping(holds: list[Ownership]) -> list[tuple[Ownership, Ownership]]:
    """Pairs of holds of one request by two leases at the same time."""
    by_request: dict[str, list[Ownership]] = {}
    for hold in holds:
        by_request.setdefault(hold.request_id, []).append(hold)
    pairs = []
    for same in by_request.values():
        for i, a in enumerate(same):
            for b in same[i + 1 :]:
                if a.lease != b.lease and _overlap(a, b):
                    pairs.append((a, b))
    return pairs


def _overlap(a: Ownership, b: Ownership) -> bool:
    lo, hi = datetime.min.replace(tzinfo=None), datetime.max.replace(tzinfo=None)
    a_start, a_end = _naive(a.start, lo), _naive(a.end, hi)
    b_start, b_end = _naive(b.start, lo), _naive(b.end, hi)
    return a_start < b_end and b_start < a_end


def _naive(when: datetime | None, default: datetime) -> datetime:
    return default if when is None else when.replace(tzinfo=None)


async def finish_or_explain(
    watchers: list[asyncio.Task[None]], watched: list[Watched], ids: list[str], url: str, within: float = 120
) -> None:
    """Waits for every watcher; past `within`, fails naming the requests without a result and what the
    database says of them (owner, fence, phase, journal length) and of the replicas' leases."""
    done, pending = await asyncio.wait(watchers, timeout=within)
    for task in done:
        task.result()  # a watcher's own failure
    if not pending:
        return
    for task in pending:
        task.cancel()
    waiting = [rid for rid, got in zip(ids, watched, strict=True) if got.result is None]
    parsed = make_url(url)
    conn = await asyncpg.connect(
        host=parsed.query.get("host") or parsed.host, port=parsed.port, user=parsed.username, database=parsed.database
    )
    try:
        rows = await conn.fetch(
            "SELECT request_id, owner, fence, phase, last_seq, finished_at FROM pod_records WHERE request_id = ANY($1)",
            waiting,
        )
        leases = await conn.fetch("SELECT id, expires_at > timezone('UTC', now()) AS live FROM replicas")
    finally:
        await conn.close()
    lines = {rid: len(got.lines) for rid, got in zip(ids, watched, strict=True) if got.result is None}
    raise AssertionError(f"no result within {within:g} s: lines read {lines}; records {[dict(r) for r in rows]}; "
                         f"leases {[dict(r) for r in leases]}")
