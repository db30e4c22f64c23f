"""The simulator and the gateway (one or several replicas) as child processes, as an operator runs them, for
bench/dispatch.py, bench/replicas.py and bench/takeover.py.

Separate processes so that each has a core of its own (the machine has two) and so that each gateway's
memory and CPU can be read alone from /proc. The simulator's request counters are read over its control
endpoint: they are the counters `SimCluster.request_counts()` returns in-process.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parent.parent
CLUSTERS = ROOT / "bench" / "clusters_virtual.yaml"
PODGATE = Path(sys.executable).parent / "podgate"
# Set machine-wide here; the children trust their own CAs only (as tests.conftest.clean_env does).
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE", "AWS_CA_BUNDLE", "SSL_CERT_DIR")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")

Counts = Counter[tuple[str, str]]


def child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in CA_VARIABLES}


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command name (state first, so utime is [11])."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User + system CPU time of `pid`; with `children`, also of its live descendants and of the children they
    have reaped (a database server whose backends come and go)."""
    fields = _stat(pid)
    if not children:
        return (int(fields[11]) + int(fields[12])) / TICKS
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stats[int(entry)] = _stat(int(entry))
    stats[pid] = fields
    kids: dict[str, list[int]] = {}
    for child, child_fields in stats.items():
        kids.setdefault(child_fields[1], []).append(child)
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += sum(int(stats[current][i]) for i in (11, 12, 13, 14))
        todo += kids.get(str(current), [])
    return total / TICKS


class _Child:
    def __init__(self, args: list[str], log_path: Path, what: str, env: Mapping[str, str] | None = None) -> None:
        self.what = what
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            args, env={**child_env(), **(env or {})}, cwd=ROOT, stdout=subprocess.PIPE, stderr=self._log, text=True
        )
        assert self.process.stdout is not None
        self.stdout = self.process.stdout

    def ready(self, pattern: str, within: float = 120.0) -> re.Match[str]:
        """The first stdout line matching `pattern`; a thread reads it, then drains the rest of stdout."""
        found: list[re.Match[str]] = []
        seen = threading.Event()

        def read() -> None:
            for line in self.stdout:
                if not seen.is_set() and (match := re.search(pattern, line)):
                    found.append(match)
                    seen.set()
            seen.set()

        threading.Thread(target=read, daemon=True).start()
        if not seen.wait(within) or not found:
            self.process.kill()
            raise RuntimeError(f"{self.what} did not get ready within {within:.0f} s: see {self.log_path}")
        return found[0]

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def rss_bytes(self) -> int:
        """Resident memory now (pages from /proc/PID/statm)."""
        return int(Path(f"/proc/{self.pid}/statm").read_text().split()[1]) * PAGE_SIZE

    def cpu_seconds(self) -> float:
        """User + system CPU time consumed so far."""
        return cpu_seconds(self.pid)

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))


class Simulator(_Child):
    """`podgate sim` on a cluster file; its kubeconfigs go where the gateway's sim provider looks."""

    def __init__(self, config: Path, kubeconfig_dir: Path, log_path: Path) -> None:
        args = [str(PODGATE), "sim", "--config", str(config), "--kubeconfig-dir", str(kubeconfig_dir)]
        super().__init__(args, log_path, "podgate sim")
        self.ready(r"control endpoint: ")
        control = yaml.safe_load((kubeconfig_dir / "control.yaml").read_text())  # URL and token, mode 0600
        self.control_url = control["url"]
        self._headers = {"Authorization": f"Bearer {control['token']}"}

    async def _call(self, method: str, path: str) -> object:
        async with (
            aiohttp.ClientSession(headers=self._headers) as session,
            session.request(method, f"{self.control_url}{path}") as response,
        ):
            response.raise_for_status()
            return await response.json()

    async def counts(self, cluster: str) -> Counts:
        """API requests served by `cluster` since the last reset, per (verb, resource)."""
        body = await self._call("GET", f"/clusters/{cluster}/requests")
        assert isinstance(body, dict)
        return Counter({(c["verb"], c["resource"]): c["count"] for c in body["counters"]})

    async def reset(self, *clusters: str) -> None:
        for cluster in clusters:
            await self._call("DELETE", f"/clusters/{cluster}/requests")

    async def requests(self, cluster: str) -> dict[str, object]:
        """The control endpoint's whole answer: counters, peaks and requests in flight, 429s answered."""
        body = await self._call("GET", f"/clusters/{cluster}/requests")
        assert isinstance(body, dict)
        return body

    async def set_faults(self, cluster: str, **settings: object) -> None:
        """PATCH /clusters/{cluster}/faults, e.g. maxInFlight=50."""
        async with (
            aiohttp.ClientSession(headers=self._headers) as session,
            session.patch(f"{self.control_url}/clusters/{cluster}/faults", json=settings) as response,
        ):
            response.raise_for_status()


class GatewayProcess(_Child):
    """`podgate serve` on port 0; `address` is where it listens. On SQLite in `state_dir` unless `database_url`
    (several replicas share one PostgreSQL database); `env` sets further keys (PODGATE_DATABASE_LEASE_SECONDS)."""

    def __init__(
        self,
        config: Path,
        state_dir: Path,
        log_path: Path,
        *,
        profile: Path | None = None,
        database_url: str | None = None,
        env: Mapping[str, str] | None = None,
        podgate: Path = PODGATE,
    ) -> None:
        """`podgate`: another build's command (bench/resume_burst.py runs main's against this simulator)."""
        serve = ["serve", "--clusters", str(config), "--state-dir", str(state_dir), "--listen", "127.0.0.1:0"]
        serve += ["--database-url", database_url] if database_url else []
        head = [sys.executable, "-m", "cProfile", "-o", str(profile), str(podgate)] if profile else [str(podgate)]
        super().__init__([*head, *serve], log_path, "podgate serve", env)
        self.address = self.ready(r"serving on (\S+) ").group(1)


def start_replicas(
    config: Path,
    kubeconfig_dir: Path,
    state_dirs: Sequence[Path],
    *,
    database_url: str | None = None,
    env: Mapping[str, str] | None = None,
    profile: Path | None = None,
) -> list[GatewayProcess]:
    """One `podgate serve` per state directory, started at once, all on `database_url`. Each state directory
    gets a copy of the simulator's kubeconfigs (where the gateway's sim provider looks) and its gateway.log.
    `profile`: the first replica runs under cProfile."""

    def start(i: int, state_dir: Path) -> GatewayProcess:
        if state_dir / "kubeconfigs" != kubeconfig_dir:
            shutil.copytree(kubeconfig_dir, state_dir / "kubeconfigs")
        return GatewayProcess(
            config, state_dir, state_dir / "gateway.log", profile=None if i else profile, database_url=database_url, env=env
        )

    with ThreadPoolExecutor(len(state_dirs)) as pool:
        futures = [pool.submit(start, i, d) for i, d in enumerate(state_dirs)]
    started = [f.result() for f in futures if f.exception() is None]
    if len(started) < len(futures):
        for gateway in started:
            gateway.stop()
        raise next(e for f in futures if (e := f.exception()) is not None)
    return started


@dataclass
class Stack:
    sim: Simulator
    gateways: list[GatewayProcess]
    state_dir: Path

    @property
    def gateway(self) -> GatewayProcess:
        return self.gateways[0]

    @property
    def kubeconfig_dir(self) -> Path:
        return self.state_dir / "kubeconfigs"


@contextlib.asynccontextmanager
async def running_stack(
    state_dir: Path,
    *,
    config: Path = CLUSTERS,
    profile: Path | None = None,
    replicas: int = 1,
    database_url: str | None = None,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[Stack]:
    """Simulator first (it writes the kubeconfigs), then the gateway replicas (the first in `state_dir`, the
    others in state_dir/replica-N); all stopped on exit."""
    sim = Simulator(config, state_dir / "kubeconfigs", state_dir / "sim.log")
    try:
        dirs = [state_dir, *(state_dir / f"replica-{i}" for i in range(1, replicas))]
        gateways = start_replicas(
            config, state_dir / "kubeconfigs", dirs, database_url=database_url, env=env, profile=profile
        )
        try:
            yield Stack(sim=sim, gateways=gateways, state_dir=state_dir)
        finally:
            for gateway in gateways:
                gateway.stop()
    finally:
        sim.stop()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started
