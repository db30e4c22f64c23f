"""Composition root: wires store, registry, dispatcher and servicers, then serves until stopped.

The only module of the server that may start the simulator: with no cluster files, `podgate serve`
runs the embedded local clusters of clusters/local.yaml in-process and registers them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gateway import domain, errors
from gateway.api import server
from gateway.api.access import AccessControl
from gateway.api.audit import Auditor, gateway_cancel_entry
from gateway.api.cluster_service import ClusterService
from gateway.api.credentials_service import CredentialsService
from gateway.api.dispatch_service import DispatchService
from gateway.clusters import files
from gateway.clusters.kubeapi.client import ClusterClient
from gateway.clusters.kubeapi.timeouts import Timeouts
from gateway.clusters.registry import Registry
from gateway.config import Settings, describe_listener, listener_problems, load_config, missing_files
from gateway.credentials.base import CredentialProvider
from gateway.credentials.factory import build_provider
from gateway.observability import logging as logs
from gateway.observability import metrics
from gateway.pods.dispatcher import Dispatcher, DispatcherConfig
from gateway.pods.journal import Journal
from gateway.pods.runner import RunnerConfig
from gateway.policy.reading import ConfigError
from gateway.store.lock import StateLock
from gateway.store.sql import SqlStore

log = logging.getLogger(__name__)

LOCAL_CLUSTERS = Path("clusters/local.yaml")


@dataclass
class GatewayConfig:
    listen: str = "127.0.0.1:50051"
    state_dir: Path = Path(".podgate")
    cluster_files: list[Path] = field(default_factory=list)
    gateway_id: str = "podgate"
    probe_interval: float = 5.0
    gc_interval: float = 60.0
    health_listen: str = ""  # a plain-text listener serving only grpc.health.v1 (kubelet probes)
    orphan_ttl: float = 600.0  # a gateway pod no live request owns is deleted after this long
    journal_retention: float = 7 * 86400  # logs and events of a finished request are kept this long
    settings: Settings = field(default_factory=Settings)  # tenants, authentication, TLS, limits, audit

    @classmethod
    def from_settings(cls, settings: Settings, *, health_listen: str = "") -> GatewayConfig:
        return cls(
            listen=settings.listen,
            state_dir=settings.state_dir,
            cluster_files=list(settings.cluster_files),
            gateway_id=settings.gateway_id,
            probe_interval=settings.probe_interval,
            gc_interval=settings.gc_interval,
            health_listen=health_listen,
            settings=settings,
        )

    @property
    def kubeconfig_dir(self) -> Path:
        return self.state_dir / "kubeconfigs"


@dataclass
class Gateway:
    """A running gateway; `stop()` leaves pods running, to be resumed by the next start."""

    config: GatewayConfig
    store: SqlStore
    registry: Registry
    journal: Journal
    dispatcher: Dispatcher
    running: server.RunningServer
    access: AccessControl
    problems: list[str]
    lock: StateLock
    stop_live_metrics: Callable[[], None] = lambda: None

    @property
    def port(self) -> int:
        return self.running.port

    async def stop(self) -> None:
        """Graceful: health goes NOT_SERVING, followers are handed over (UNAVAILABLE: reattach), unary calls
        finish within the grace period; pods keep running and every record is in the store."""
        self.dispatcher.drain()
        self.journal.hand_over()
        await self.running.stop()
        await self.dispatcher.close()
        await self.journal.close()
        await self.registry.close()
        await self.store.close()
        self.access.auditor.close()
        self.stop_live_metrics()
        self.lock.release()

    def reload(self, settings: Settings) -> list[str]:
        """Applies what can change without a restart (tenants, authentication, limits); returns the keys
        that changed but need a restart, for the caller to warn about."""
        current = self.access.settings
        self.access.reload(settings)
        return current.restart_changes(settings)


async def start_gateway(config: GatewayConfig, *, lock: StateLock | None = None) -> Gateway:
    """Everything started here is stopped again if a later step fails (a taken port, a bad store)."""
    async with contextlib.AsyncExitStack() as undo:
        gateway = await _start(config, lock, undo)
        undo.pop_all()
        return gateway


async def _start(config: GatewayConfig, lock: StateLock | None, undo: contextlib.AsyncExitStack) -> Gateway:
    if lock is None:
        lock = await lock_state_dir(config.state_dir, config.listen)
    undo.callback(lock.release)
    store = await SqlStore.open(path=config.state_dir / "podgate.db")
    undo.push_async_callback(store.close)

    def provider_for(spec: domain.ClusterSpec) -> CredentialProvider:
        return build_provider(spec.name, spec.credentials, kubeconfig_dir=config.kubeconfig_dir)

    def client_for(spec: domain.ClusterSpec, provider: CredentialProvider) -> ClusterClient:
        timeouts = Timeouts(log_inactivity=config.settings.log_inactivity_seconds)
        return ClusterClient(provider, name=spec.name, timeouts=timeouts)

    registry = Registry(
        store,
        gateway_id=config.gateway_id,
        provider_factory=provider_for,
        client_factory=client_for,
        probe_interval=config.probe_interval,
    )
    undo.push_async_callback(registry.close)
    loaded = files.load_files(config.cluster_files)
    problems = [str(e) for e in loaded.errors]
    problems += await registry.start(list(loaded.clusters))
    journal = Journal(store)
    dispatcher = Dispatcher(
        store,
        registry,
        journal,
        DispatcherConfig(
            runner=RunnerConfig(gateway_id=config.gateway_id, limits=config.settings.limits),
            gc_interval_seconds=config.gc_interval,
            orphan_ttl_seconds=config.orphan_ttl,
            journal_retention_seconds=config.journal_retention,
        ),
    )
    undo.push_async_callback(journal.close)
    undo.push_async_callback(dispatcher.close)
    resumed = await dispatcher.start()
    if resumed:
        log.info("resumed %d unfinished request(s)", resumed)
    access = AccessControl(config.settings, Auditor(store, config.settings.audit_sink))
    dispatcher.on_gateway_cancel = lambda record, why: access.audit(None, gateway_cancel_entry(record, why))
    undo.callback(access.auditor.close)
    servicers = server.Servicers(
        dispatch=DispatchService(dispatcher, registry, access),
        clusters=ClusterService(registry, access),
        credentials=CredentialsService(registry, access),
    )
    running = await server.start(
        config.listen,
        servicers,
        access=access,
        tls=config.settings.tls,
        max_message_bytes=config.settings.limits.request_bytes,
        health_address=config.health_listen,
    )
    lock.update(listen=config.listen.rsplit(":", 1)[0] + f":{running.port}")
    live = metrics.LiveSources(
        clusters=lambda: [cluster_sample(s) for s in registry.snapshots()],
        pods=lambda: [metrics.PodSample(cluster=r.cluster, phase=r.phase) for r in dispatcher.live_records()],
    )
    return Gateway(
        config=config,
        store=store,
        registry=registry,
        journal=journal,
        dispatcher=dispatcher,
        running=running,
        access=access,
        problems=problems,
        lock=lock,
        stop_live_metrics=metrics.track_live(asyncio.get_running_loop(), live),
    )


async def lock_state_dir(state_dir: Path, listen: str) -> StateLock:
    """The state directory is this gateway's alone (its SQLite file, its kubeconfigs): StateDirInUse otherwise."""
    return await asyncio.to_thread(StateLock.acquire, state_dir, listen=listen)


def cluster_sample(snapshot: domain.ClusterSnapshot) -> metrics.ClusterSample:
    """What a scrape shows of a cluster: capacity summed over the nodes that take pods."""
    nodes = [n for n in snapshot.nodes if n.schedulable and n.ready]
    gpus: Counter[str] = Counter()
    for n in nodes:
        if n.gpus:
            gpus[n.gpu_type or "unknown"] += n.gpus_free
    return metrics.ClusterSample(
        name=snapshot.spec.name,
        health=snapshot.health.value.lower(),  # metric label values are lower case
        cordoned=snapshot.cordoned,
        gateway_pods=snapshot.running_pods,
        allocatable={
            "cpu": sum(n.cpu_millis for n in nodes) / 1000,
            "memory": sum(n.memory_bytes for n in nodes),
            "gpu": sum(n.gpus for n in nodes),
        },
        free={
            "cpu": sum(n.cpu_millis_free for n in nodes) / 1000,
            "memory": sum(n.memory_bytes_free for n in nodes),
            "gpu": sum(n.gpus_free for n in nodes),
        },
        gpus_free_by_type=dict(gpus),
    )


def serve_metrics(address: str | None) -> metrics.MetricsServer | None:
    """The /metrics endpoint: `off` serves none; a taken default port is a warning, a taken chosen one an error."""
    if address == "off":
        return None
    try:
        return metrics.serve(address or metrics.DEFAULT_LISTEN)
    except OSError as e:
        if address:
            raise errors.FailedPrecondition(f"cannot serve metrics on {address}: {e.strerror or e}") from None
        log.warning(
            "metrics not served: %s is taken (%s); choose another with --metrics-listen", metrics.DEFAULT_LISTEN, e
        )
        return None


async def _embedded_sim(config: GatewayConfig) -> Any:
    from gateway.sim.cluster import SimWorld

    world = SimWorld.from_file(LOCAL_CLUSTERS, kubeconfig_dir=config.kubeconfig_dir)
    await world.start()
    return world


@dataclass(frozen=True, kw_only=True)
class ServeOptions:
    """`podgate serve`'s flags; each one given overrides the configuration file."""

    config_file: str = ""
    listen: str = ""
    cluster_files: tuple[str, ...] = ()
    state_dir: str = ""
    metrics_listen: str | None = None
    health_listen: str = ""
    log_format: str = ""


def load_settings(options: ServeOptions) -> Settings:
    """The configuration file (or the defaults) with the flags applied; ConfigError naming each bad key."""
    settings = load_config(options.config_file) if options.config_file else Settings()
    overrides: dict[str, Any] = {}
    if options.listen:
        overrides["listen"] = options.listen
    if options.cluster_files:
        overrides["cluster_files"] = tuple(Path(p) for p in options.cluster_files)
    if options.state_dir:
        overrides["state_dir"] = Path(options.state_dir)
    if options.metrics_listen is not None:
        overrides["metrics_listen"] = options.metrics_listen
    return replace(settings, **overrides)


def _reload(gateway: Gateway, config_file: str) -> None:
    """SIGHUP: re-read the file; a bad file is logged and the running configuration kept."""
    try:
        settings = load_config(config_file)
    except ConfigError as e:
        log.error("configuration not reloaded, keeping the running one: %s", e)
        return
    settings = replace(
        settings, listen=gateway.access.settings.listen, cluster_files=gateway.access.settings.cluster_files
    )
    needs_restart = gateway.reload(settings)
    log.info("configuration reloaded from %s (tenants: %d)", config_file, len(settings.tenants.tenants))
    if needs_restart:
        log.warning("changed keys that take effect only after a restart: %s", ", ".join(needs_restart))


RELOAD_CHECK_SECONDS = 10.0


def _stamps(settings: Settings, config_file: str) -> tuple[float, ...]:
    """Modification times of the configuration and tenants files (a Kubernetes ConfigMap update swaps them)."""
    stamps = []
    for path in (Path(config_file), settings.tenants_file):
        try:
            stamps.append(path.stat().st_mtime if path is not None else 0.0)
        except OSError:
            stamps.append(-1.0)
    return tuple(stamps)


async def _reload_on_change(gateway: Gateway, config_file: str) -> None:
    """Reloads when a file changes, so an edited ConfigMap takes effect without a signal or a restart."""
    seen = _stamps(gateway.access.settings, config_file)
    while True:
        await asyncio.sleep(RELOAD_CHECK_SECONDS)
        now = _stamps(gateway.access.settings, config_file)
        if now != seen:
            seen = now
            _reload(gateway, config_file)


def try_hints(address: str, program: str = "") -> list[str]:
    """Commands a newcomer can paste as they are: the program as this shell finds it (`.venv/bin/podgate` when
    the venv is not activated) and --gateway when the address is not the client's default."""
    program = program or sys.argv[0]
    on_path = shutil.which("podgate")
    if not os.path.isfile(program) or (on_path and os.path.samefile(on_path, program)):
        runnable = "podgate"
    else:
        runnable = os.path.relpath(program)
    flags = "" if address == "127.0.0.1:50051" else f" --gateway {address}"
    return [
        f"{runnable} clusters list{flags}",
        f"{runnable} run{flags} --region eu-west-1 --gpus 1 --image python:3.12 -- python -c 'print(42)'",
    ]


async def serve_forever(options: ServeOptions) -> int:
    try:
        settings = load_settings(options)
    except ConfigError as e:
        print(f"podgate: {e}", file=sys.stderr)
        return 2
    refusals = missing_files(settings) + listener_problems(settings)
    if refusals:
        for problem in refusals:
            print(f"podgate: {problem}", file=sys.stderr)
        return 2
    try:
        lock = await lock_state_dir(settings.state_dir, settings.listen)  # before the embedded clusters use it
    except errors.FailedPrecondition as e:
        print(f"podgate: {e}", file=sys.stderr)
        return 2
    if options.config_file and not options.log_format:
        logs.configure(settings.log_format, level=getattr(logging, settings.log_level.upper()))  # type: ignore[arg-type]
    try:
        metrics_server = serve_metrics(settings.metrics_listen or None)
    except (ValueError, errors.GatewayError) as e:
        print(f"podgate: {e}", file=sys.stderr)
        return 2
    config = GatewayConfig.from_settings(settings, health_listen=options.health_listen)
    world = None
    if not config.cluster_files:
        world = await _embedded_sim(config)
        config.cluster_files = [LOCAL_CLUSTERS]
        print(f"podgate: embedded local clusters: {', '.join(world.clusters)} (kubeconfigs in {config.kubeconfig_dir})")
    try:
        gateway = await start_gateway(config, lock=lock)
    except errors.FailedPrecondition as e:  # e.g. the port is taken
        print(f"podgate: {e}", file=sys.stderr)
        if world is not None:
            await world.stop()
        if metrics_server is not None:
            await asyncio.to_thread(metrics_server.close)
        return 2
    for problem in gateway.problems:
        print(f"podgate: cluster not loaded: {problem}")
    host = settings.listen.rsplit(":", 1)[0]
    print(f"podgate: serving on {host}:{gateway.port} (health: SERVING)", flush=True)
    print(f"podgate: {describe_listener(replace(settings, listen=f'{host}:{gateway.port}'))}", flush=True)
    if gateway.running.health_server is not None:
        print(f"podgate: health checks (plain text) on port {gateway.running.health_port}", flush=True)
    if metrics_server is not None:
        print(f"podgate: metrics on http://{metrics_server.host}:{metrics_server.port}/metrics", flush=True)
    for i, hint in enumerate(try_hints(f"{host}:{gateway.port}")):
        print(("  try: " if i == 0 else "       ") + hint, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watcher = None
    if options.config_file:
        loop.add_signal_handler(signal.SIGHUP, _reload, gateway, options.config_file)
        watcher = asyncio.create_task(_reload_on_change(gateway, options.config_file), name="config-watch")
    await stop.wait()
    log.info("shutting down")
    if watcher is not None:
        watcher.cancel()
    await gateway.stop()
    if world is not None:
        await world.stop()
    if metrics_server is not None:
        await asyncio.to_thread(metrics_server.close)
    return 0
