"""The registered clusters: specs (from files and the API, persisted), and one running ClusterRuntime each.

Registration validates with the cluster-file rules and builds the credential provider first, so a
cluster whose credentials reference cannot be resolved is refused with a reason and never half-added.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from gateway import domain, errors
from gateway.clusters import files
from gateway.clusters.kubeapi.client import ClusterClient
from gateway.clusters.runtime import ClusterRuntime
from gateway.clusters.tracking import PodTrack
from gateway.credentials.base import CredentialError, CredentialProvider
from gateway.store.base import Store

log = logging.getLogger(__name__)

__all__ = ["ClusterRuntime", "PodTrack", "Registry"]

SYNC_WAIT_SECONDS = 10.0
RPC_SYNC_WAIT_SECONDS = 2.0
ClientFactory = Callable[[domain.ClusterSpec, CredentialProvider], ClusterClient]
ProviderFactory = Callable[[domain.ClusterSpec], CredentialProvider]


class Registry:
    def __init__(
        self,
        store: Store,
        *,
        gateway_id: str,
        provider_factory: ProviderFactory,
        client_factory: ClientFactory,
        probe_interval: float,
    ) -> None:
        self._store = store
        self._gateway_id = gateway_id
        self._provider_factory = provider_factory
        self._client_factory = client_factory
        self._probe_interval = probe_interval
        self._runtimes: dict[str, ClusterRuntime] = {}
        self._changed = asyncio.Event()
        self._mutating = asyncio.Lock()  # register, update, deregister: one at a time

    # --- reading --------------------------------------------------------------------------

    def get(self, name: str) -> ClusterRuntime:
        runtime = self._runtimes.get(name)
        if runtime is None:
            raise errors.NotFound(f"no cluster named {name!r} is registered")
        return runtime

    def logs_share_connections(self) -> bool:
        """Whether every cluster's followed logs ride shared HTTP/2 connections (what the descriptor gauge
        counts a pod as); False until each has opened one, and for good where a cluster speaks HTTP/1.1 only."""
        return bool(self._runtimes) and all(r.client.over_http2 for r in self._runtimes.values())

    def names(self) -> list[str]:
        return sorted(self._runtimes)

    def resolve(self, name: str) -> str:
        """The registered name a request means by `name`: itself, or the cluster that lists it as an alias."""
        if name in self._runtimes:
            return name
        return next((r.spec.name for r in self._runtimes.values() if name in r.spec.aliases), name)

    def _check_aliases(self, spec: domain.ClusterSpec) -> None:
        taken = {n: n for n in self._runtimes} | {a: r.spec.name for r in self._runtimes.values() for a in r.spec.aliases}
        clashes = [
            errors.FieldViolation(field="cluster.aliases", description=f"{word!r} already names cluster {taken[word]!r}")
            for word in (spec.name, *spec.aliases)
            if taken.get(word, spec.name) != spec.name
        ]
        if clashes:
            raise errors.InvalidArgument(f"cluster {spec.name!r}: {clashes[0].description}", clashes)

    def regions(self) -> set[str]:
        return {r.spec.region for r in self._runtimes.values()}

    def snapshots(self) -> list[domain.ClusterSnapshot]:
        return [self._runtimes[n].snapshot() for n in sorted(self._runtimes)]

    async def wait_changed(self, within: float) -> None:
        """Returns when capacity, health or registrations change, or after `within` seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):  # not wait_for, which can swallow a cancel on 3.11
                await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self, file_specs: list[domain.ClusterSpec]) -> list[str]:
        """Starts stored clusters plus those from files (files win); returns one problem per refused cluster."""
        problems: list[str] = []
        specs = {s.name: s for s in await self._store.list_clusters()}
        specs.update({s.name: s for s in file_specs})
        cordons = await self._store.get_cordons()
        for spec in specs.values():
            try:
                await self._add(spec, persist=spec.source != "api")
            except errors.GatewayError as e:
                problems.append(str(e))
                log.error("cluster %s not loaded: %s", spec.name, e)
                continue
            if spec.name in cordons:
                self._runtimes[spec.name].cordoned, self._runtimes[spec.name].cordon_reason = True, cordons[spec.name]
        await self._wait_synced(list(self._runtimes.values()))
        return problems

    async def _wait_synced(self, runtimes: list[ClusterRuntime], within: float = SYNC_WAIT_SECONDS) -> None:
        """Gives fresh clusters a moment to list nodes and pods, so the first placements see real capacity."""
        waits = [asyncio.ensure_future(r.wait_synced()) for r in runtimes]
        if waits:
            _, late = await asyncio.wait(waits, timeout=within)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def close(self) -> None:
        await asyncio.gather(*(r.stop() for r in self._runtimes.values()), return_exceptions=True)
        self._runtimes.clear()

    async def _add(self, spec: domain.ClusterSpec, *, persist: bool) -> ClusterRuntime:
        files.check_spec(spec)
        try:
            provider = self._provider_factory(spec)
        except CredentialError as e:
            raise errors.FailedPrecondition(
                str(e), [errors.PreconditionViolation(type="CREDENTIALS", subject=spec.name, description=str(e))]
            ) from None
        runtime = ClusterRuntime(
            spec,
            self._client_factory(spec, provider),
            provider=provider,
            gateway_id=self._gateway_id,
            on_change=self._notify,
            probe_interval=self._probe_interval,
        )
        if persist:
            await self._store.put_cluster(spec)
        old = self._runtimes.get(spec.name)
        # The new runtime takes the name before the old one stops: a follower woken by the old one's stop
        # must find the new one, never a moment where the cluster looks deregistered.
        self._runtimes[spec.name] = runtime
        if old is not None:
            runtime.cordoned, runtime.cordon_reason = old.cordoned, old.cordon_reason
            await old.stop()
        await runtime.start()
        self._notify()
        return runtime

    async def _add_and_sync(self, spec: domain.ClusterSpec) -> ClusterRuntime:
        runtime = await self._add(spec, persist=True)
        await self._wait_synced([runtime], within=RPC_SYNC_WAIT_SECONDS)  # an RPC must not hang on a dead cluster
        return runtime

    # --- changes (the Clusters RPCs) ------------------------------------------------------

    async def register(self, spec: domain.ClusterSpec) -> ClusterRuntime:
        _check_api_spec(spec)
        async with self._mutating:
            if spec.name in self._runtimes:
                raise errors.AlreadyExists(
                    f"cluster {spec.name!r} is already registered; use UpdateCluster to change it"
                )
            self._check_aliases(spec)
            return await self._add_and_sync(spec)

    async def update(self, spec: domain.ClusterSpec) -> ClusterRuntime:
        _check_api_spec(spec)
        async with self._mutating:  # an update racing a deregistration must not bring the cluster back
            self.get(spec.name)
            self._check_aliases(spec)
            return await self._add_and_sync(spec)

    async def deregister(self, name: str, *, force: bool) -> None:
        async with self._mutating:
            await self._deregister(name, force=force)

    async def _deregister(self, name: str, *, force: bool) -> None:
        runtime = self.get(name)
        running = runtime.snapshot().running_pods
        if running and not force:
            raise errors.FailedPrecondition(
                f"cluster {name!r} runs {running} gateway pod(s); cordon it and wait, or deregister with force",
                [
                    errors.PreconditionViolation(
                        type="RUNNING_PODS", subject=name, description=f"{running} pods running"
                    )
                ],
            )
        del self._runtimes[name]
        await runtime.stop()
        await self._store.delete_cluster(name)
        self._notify()

    async def set_cordon(self, name: str, cordoned: bool, reason: str = "") -> ClusterRuntime:
        runtime = self.get(name)
        await self._store.set_cordon(name, cordoned, reason)
        runtime.cordoned, runtime.cordon_reason = cordoned, reason if cordoned else ""
        self._notify()
        return runtime


def _check_api_spec(spec: domain.ClusterSpec) -> None:
    """As cluster files are checked: fields first, then whether the credentials references resolve."""
    files.check_spec(spec)
    problems = files.check_credentials(spec)
    if problems:
        raise errors.FailedPrecondition(
            f"cluster {spec.name!r}: " + "; ".join(f"{field}: {message}" for field, message in problems),
            [
                errors.PreconditionViolation(type="CREDENTIALS", subject=spec.name, description=f"{field}: {message}")
                for field, message in problems
            ],
        )
