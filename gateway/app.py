"""Composition root: wires store, registry, dispatcher and servicers, then serves until stopped.

The only module of the server that may start the simulator: with no cluster files, `podgate serve`
runs the embedded local clusters of clusters/local.yaml in-process and registers them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway import domain, errors, gctuning
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
from gateway.credentials.base import CredentialProvider
from gateway.credentials.factory import build_provider
from gateway.eventloop import LoopFactory, loop_factory, loop_name
from gateway.hints import client_access, try_hints, what_callers_need
from gateway.observability import descriptors, metrics
from gateway.observability import logging as logs
from gateway.pods import pod_schema
from gateway.pods.dispatcher import Dispatcher
from gateway.pods.journal import LOG_HOLD_SECONDS, Journal
from gateway.settings import (
    ConfigError,
    LiveSettings,
    MetricsSettings,
    Settings,
    describe_listener,
    listener_problems,
    load_settings,
    missing_files,
)
from gateway.settings.model import EMBEDDED_CLUSTERS
from gateway.store.lease import policy_for
from gateway.store.lock import StateLock
from gateway.store.sql import SqlStore

log = logging.getLogger(__name__)

@dataclass
class Gateway:
    """A running gateway; `stop()` leaves pods running, to be resumed by the next start."""

    settings: LiveSettings
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
        """Applies what can change without a restart (settings.RELOADABLE); returns the keys that changed
        but need a restart, for the caller to warn about."""
        return self.settings.reload(settings)


async def start_gateway(settings: Settings, *, lock: StateLock | None = None) -> Gateway:
    """Everything started here is stopped again if a later step fails (a taken port, a bad store)."""
    async with contextlib.AsyncExitStack() as undo:
        gateway = await _start(settings, lock, undo)
        undo.pop_all()
        return gateway


async def _start(settings: Settings, lock: StateLock | None, undo: contextlib.AsyncExitStack) -> Gateway:
    live = LiveSettings(settings)
    server_settings = settings.server
    if lock is None:
        lock = await lock_state_dir(server_settings.state_dir, server_settings.listen)
    undo.callback(lock.release)
    try:
        store = await SqlStore.open(
            settings.database_url,
            password_file=settings.database.password_file,
            idle_transaction_seconds=settings.database.lease_seconds,
            sqlite_synchronous=settings.database.sqlite_synchronous,
        )
    except ValueError as e:  # the URL or the password file (the message never holds the password)
        raise errors.FailedPrecondition(f"database: {e}") from None
    undo.push_async_callback(store.close)

    def provider_for(spec: domain.ClusterSpec) -> CredentialProvider:
        return build_provider(spec.name, spec.credentials, kubeconfig_dir=server_settings.kubeconfig_dir)

    def client_for(spec: domain.ClusterSpec, provider: CredentialProvider) -> ClusterClient:
        timeouts = Timeouts(log_inactivity=settings.streams.log_inactivity_seconds)
        return ClusterClient(provider, name=spec.name, timeouts=timeouts, http2=settings.clusters.api_protocol == "auto")

    registry = Registry(
        store,
        gateway_id=server_settings.gateway_id,
        provider_factory=provider_for,
        client_factory=client_for,
        probe_interval=settings.clusters.probe_interval_seconds,
    )
    undo.push_async_callback(registry.close)
    loaded = files.load_files(list(settings.clusters.sources))
    problems = [str(e) for e in loaded.errors]
    problems += await registry.start(list(loaded.clusters))
    journal = Journal(store, log_hold_seconds=LOG_HOLD_SECONDS)
    dispatcher = Dispatcher(
        store,
        registry,
        journal,
        live,
        replicas=store if store.shared else None,
        listen=server_settings.listen,
        lease_policy=policy_for(settings.database.lease_seconds),
    )
    undo.push_async_callback(journal.close)
    undo.push_async_callback(dispatcher.close)
    resumed = await dispatcher.start()
    if resumed:
        log.info("resumed %d unfinished request(s)", resumed)
    access = AccessControl(live, Auditor(store, settings.audit.sink))
    dispatcher.on_gateway_cancel = lambda record, why: access.audit(None, gateway_cancel_entry(record, why))
    undo.callback(access.auditor.close)
    servicers = server.Servicers(
        dispatch=DispatchService(dispatcher, registry, access),
        clusters=ClusterService(registry, access),
        credentials=CredentialsService(registry, access),
    )
    running = await server.start(
        server_settings.listen,
        servicers,
        access=access,
        tls=settings.tls,
        max_message_bytes=settings.limits.request_bytes,
        health_address=server_settings.health_listen,
    )
    lock.update(listen=server_settings.listen.rsplit(":", 1)[0] + f":{running.port}")
    sources = metrics.LiveSources(
        clusters=lambda: [cluster_sample(s) for s in registry.snapshots()],
        pods=lambda: [metrics.PodSample(cluster=r.cluster, phase=r.phase) for r in dispatcher.live_records()],
    )
    return Gateway(
        settings=live,
        store=store,
        registry=registry,
        journal=journal,
        dispatcher=dispatcher,
        running=running,
        access=access,
        problems=problems,
        lock=lock,
        stop_live_metrics=metrics.track_live(asyncio.get_running_loop(), sources),
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


def serve_metrics(settings: MetricsSettings) -> metrics.MetricsServer | None:
    """The /metrics endpoint: `off` serves none; at the default address a taken port is a warning, at a
    chosen one an error."""
    if settings.address is None:
        return None
    try:
        return metrics.serve(settings.address)
    except OSError as e:
        if not settings.is_default:
            raise errors.FailedPrecondition(f"cannot serve metrics on {settings.address}: {e.strerror or e}") from None
        log.warning("metrics not served: %s is taken (%s); choose another with --metrics-listen", settings.address, e)
        return None


async def _embedded_sim(settings: Settings) -> Any:
    from gateway.sim.cluster import SimWorld

    world = SimWorld.from_file(EMBEDDED_CLUSTERS, kubeconfig_dir=settings.server.kubeconfig_dir)
    await world.start()
    return world


Flags = Mapping[str, Any]


def _reload(gateway: Gateway, config_file: str, flags: Flags) -> None:
    """SIGHUP or a changed file: re-read it with the same flags and environment; a bad file is logged and
    the running configuration kept."""
    try:
        settings = load_settings(config_file, flags=flags)
    except ConfigError as e:
        log.error("configuration not reloaded, keeping the running one: %s", e)
        return
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


async def _reload_on_change(gateway: Gateway, config_file: str, flags: Flags) -> None:
    """Reloads when a file changes, so an edited ConfigMap takes effect without a signal or a restart."""
    seen = _stamps(gateway.settings.current, config_file)
    while True:
        await asyncio.sleep(RELOAD_CHECK_SECONDS)
        now = _stamps(gateway.settings.current, config_file)
        if now != seen:
            seen = now
            _reload(gateway, config_file, flags)


def serve_loop_factory(config_file: str, flags: Flags) -> LoopFactory | None:
    """The event loop `serve_forever` should run on, by `server.event_loop`; asyncio's own when the
    settings do not load (`serve_forever` then reports why)."""
    try:
        settings = load_settings(config_file or None, flags=flags)
    except ConfigError:
        return None
    return loop_factory(settings.server.event_loop, embedded_clusters=settings.clusters.embedded)


async def serve_forever(config_file: str, flags: Flags) -> int:
    """`podgate serve`: `flags` are the command line's settings, by key path (settings.overrides)."""
    try:
        settings = load_settings(config_file or None, flags=flags)
    except ConfigError as e:
        print(f"podgate: {e}", file=sys.stderr)
        return 2
    refusals = missing_files(settings) + listener_problems(settings)
    if refusals:
        for problem in refusals:
            print(f"podgate: {problem}", file=sys.stderr)
        return 2
    try:
        lock = await lock_state_dir(settings.server.state_dir, settings.server.listen)  # before the embedded clusters
    except errors.FailedPrecondition as e:
        print(f"podgate: {e}", file=sys.stderr)
        return 2
    logs.configure(settings.logging.format, level=getattr(logging, settings.logging.level.upper()))  # type: ignore[arg-type]
    print(f"podgate: {descriptors.raise_limit().describe()}", flush=True)
    print(f"podgate: event loop {loop_name()}", flush=True)
    try:
        metrics_server = serve_metrics(settings.metrics)
    except (ValueError, errors.GatewayError) as e:
        print(f"podgate: {e}", file=sys.stderr)
        return 2
    world = None
    if settings.clusters.embedded:
        world = await _embedded_sim(settings)
        print(
            f"podgate: embedded local clusters: {', '.join(world.clusters)} "
            f"(kubeconfigs in {settings.server.kubeconfig_dir})"
        )
    # The Pod schema is compiled before serving (~80-150 ms of CPU), not by the first SubmitPod on the event
    # loop; and so that gctuning.settle freezes its thousands of nodes out of every later collection.
    await asyncio.to_thread(pod_schema.pod_root)
    try:
        gateway = await start_gateway(settings, lock=lock)
    except errors.FailedPrecondition as e:  # e.g. the port is taken
        print(f"podgate: {e}", file=sys.stderr)
        if world is not None:
            await world.stop()
        if metrics_server is not None:
            await asyncio.to_thread(metrics_server.close)
        return 2
    gctuning.settle()  # what startup built is frozen out of later collections (gctuning.py)
    for problem in gateway.problems:
        print(f"podgate: cluster not loaded: {problem}")
    host = settings.server.listen.rsplit(":", 1)[0]
    print(f"podgate: serving on {host}:{gateway.port} (health: SERVING)", flush=True)
    print(f"podgate: {describe_listener(settings, f'{host}:{gateway.port}')}", flush=True)
    if gateway.running.health_server is not None:
        print(f"podgate: health checks (plain text) on port {gateway.running.health_port}", flush=True)
    if metrics_server is not None:
        print(f"podgate: metrics on http://{metrics_server.host}:{metrics_server.port}/metrics", flush=True)
    print(f"podgate: store: {settings.database.describe()}", flush=True)
    access = client_access(settings, f"{host}:{gateway.port}")
    for need in what_callers_need(access):
        print(f"podgate: {need}", flush=True)
    for i, hint in enumerate(try_hints(access, embedded=settings.clusters.embedded)):
        print(("  try: " if i == 0 else "       ") + hint, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watcher = None
    if config_file:
        loop.add_signal_handler(signal.SIGHUP, _reload, gateway, config_file, flags)
        watcher = asyncio.create_task(_reload_on_change(gateway, config_file, flags), name="config-watch")
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
