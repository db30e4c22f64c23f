"""One simulated cluster (`SimCluster`) and a set of them (`SimWorld`): start, stop, faults, Python API.

    async with SimWorld.from_file("clusters/local.yaml", kubeconfig_dir=tmp) as world:
        cluster = world.clusters["local-eu-gpu"]
        cluster.kubeconfig_path          # DIR/local-eu-gpu.kubeconfig (admin token, CA data)
        world.kubeconfig_path            # DIR/kubeconfig: one context per cluster

Each cluster listens on its own 127.0.0.1 port with its own CA, generated at start (milliseconds).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import secrets
import ssl
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Self

from aiohttp import web

from gateway.sim import handlers, handshakes, http2, kubeconfig, nodes
from gateway.sim.apiserver import ApiContext, ApiServer
from gateway.sim.auth import Authenticator, Identity, SimClock, service_account_identity
from gateway.sim.config import SimClusterSpec, SimConfig, load
from gateway.sim.faults import Faults
from gateway.sim.rbac import MASTERS, Authorizer
from gateway.sim.reviews import token_request
from gateway.sim.store import ObjectStore
from gateway.sim.tls import CertificateAuthority, KeyPair, client_context, server_context
from gateway.sim.validation import warm_up

log = logging.getLogger(__name__)
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
ADMIN_USER = "admin"


def node_side_available() -> bool:
    """Whether the scheduler and kubelet modules (sim-node's half) are present."""
    return all(importlib.util.find_spec(f"gateway.sim.{m}") is not None for m in ("scheduler", "kubelet"))


class SimCluster:
    """A running simulated cluster. `node_side=False` runs the API server alone (pods stay Pending)."""

    def __init__(
        self, spec: SimClusterSpec, *, kubeconfig_dir: str | Path, node_side: bool = True, host: str = "127.0.0.1"
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.host = host
        self.kubeconfig_dir = Path(kubeconfig_dir)
        self.kubeconfig_path = self.kubeconfig_dir / f"{spec.name}.kubeconfig"
        self.store = ObjectStore()
        self.faults = Faults()
        self.admin_token = secrets.token_urlsafe(24)
        static = {u.token: Identity(u.name, (*u.groups, "system:authenticated")) for u in spec.users}
        static[self.admin_token] = Identity(ADMIN_USER, (MASTERS, "system:authenticated"))
        self.clock = SimClock()
        self.authn = Authenticator(self.store, static, self.clock)
        self.authz = Authorizer(self.store, spec.users)
        self.ca = CertificateAuthority(f"podgate-sim-{spec.name}-ca")
        self._server_pair = self.ca.issue_server((host, "localhost"))
        self.context = ApiContext(spec.name, self.store, self.authn, self.authz, self.faults, spec.bookmark_seconds)
        self._node_side = node_side and node_side_available()
        self._api = ApiServer(self.context)
        self._runner: web.AppRunner | None = None
        self._site: _AlpnSite | None = None
        self.http2 = spec.http2  # offer h2 in ALPN; set before start (or before a restore) to change it
        self._http2_connections = http2.Connections()
        self._held = handshakes.Held()  # connections whose TLS handshake a fault holds back
        self.port = spec.port
        self.scheduler: Any = None
        self.kubelet: Any = None

    # --- lifecycle ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def ca_pem(self) -> bytes:
        return self.ca.cert_pem

    async def start(self) -> None:
        self._bootstrap()
        self._api = ApiServer(self.context)
        self._runner = web.AppRunner(
            self._api.application(), access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await self._runner.setup()
        await self._listen()
        if self._node_side:
            await self._start_node_side()
        kubeconfig.write(self.kubeconfig_path, kubeconfig.document([self._entry()]))
        log.info("simulated cluster %s at %s (kubeconfig %s)", self.name, self.url, self.kubeconfig_path)

    async def stop(self) -> None:
        """Stops the node side (its processes), ends watches and closes the listener, even if a part fails."""
        try:
            for part in (self.kubelet, self.scheduler):
                if part is not None:
                    await part.stop()
        finally:
            self.kubelet = self.scheduler = self.context.kubelet = None
            self.store.close_watches()
            if self._runner is not None:
                self._drop_connections()
                await self._runner.cleanup()
                self._runner = None
                self._site = None

    async def _listen(self) -> None:
        assert self._runner is not None and self._runner.server is not None
        context = http2.offer(server_context(self.ca, self._server_pair), self.http2)
        http1, pipeline, connections = self._runner.server, self._api.handle, self._http2_connections
        switch = lambda: http2.AlpnSwitch(http1, pipeline, connections)  # noqa: E731
        gate = lambda: handshakes.TlsGate(switch, context, self.faults, self._held)  # noqa: E731
        self._site = _AlpnSite(self._runner, switch, gate, self.host, self.port, context)
        await self._site.start()
        sockets = getattr(self._site.listener, "sockets", None)  # asyncio's Server or uvloop's: no common base
        if self.port == 0 and sockets:
            self.port = sockets[0].getsockname()[1]

    async def _start_node_side(self) -> None:
        from gateway.sim.kubelet import Kubelet  # type: ignore[import-not-found, unused-ignore]
        from gateway.sim.scheduler import Scheduler  # type: ignore[import-not-found, unused-ignore]

        self.scheduler = Scheduler(self.store, None)
        self.kubelet = Kubelet(self.store, [n.name for n in self.spec.nodes], dict(self.spec.runtime), None)
        # Pods get an in-cluster view of this API server (service env vars, a mounted ServiceAccount token).
        self.kubelet.configure_api_access(
            self.host, self.port, self.ca_pem, lambda ns, sa: self.mint_service_account_token(ns, sa)
        )
        await self.scheduler.start()
        await self.kubelet.start()
        self.context.kubelet = self.kubelet

    def _bootstrap(self) -> None:
        warm_up()
        for namespace in dict.fromkeys((*SYSTEM_NAMESPACES, *self.spec.namespaces)):
            if not self.store.exists("namespaces", "", namespace):
                self.store.create("namespaces", nodes.namespace_object(namespace))
            handlers.ensure_default_account(self.store, namespace)
        for node in self.spec.nodes:
            if not self.store.exists("nodes", "", node.name):
                self.store.create("nodes", nodes.node_object(node, self.spec))

    def _entry(self) -> kubeconfig.Entry:
        return kubeconfig.Entry(self.name, self.url, self.ca_pem, f"{self.name}-admin", {"token": self.admin_token})

    # --- credentials -------------------------------------------------------------------------------

    def add_token_verifier(self, verifier: Callable[[str], Identity | None]) -> None:
        """Accept more bearer tokens: `verifier(token)` returns who it is, or None (EKS/GKE/AKS-style tokens)."""
        self.authn.add_verifier(verifier)

    def add_static_token(self, token: str, user: str, groups: tuple[str, ...] = ()) -> None:
        self.authn.add_static_token(token, Identity(user, (*groups, "system:authenticated")))

    def issue_client_certificate(self, user: str, groups: tuple[str, ...] = ()) -> KeyPair:
        """A client certificate this cluster accepts as `user` in `groups` (CN and O)."""
        return self.ca.issue_client(user, groups)

    def mint_service_account_token(
        self, namespace: str, account: str, *, seconds: int = 3600, audiences: tuple[str, ...] = ()
    ) -> str:
        """A TokenRequest done in-process; unlike the API, `seconds` may be below 600 (to test expiry)."""
        body = {"spec": {"expirationSeconds": seconds, "audiences": list(audiences)}}
        result = token_request(self.store, self.authn, namespace, account, body, min_seconds=1)
        return str(result["status"]["token"])

    @staticmethod
    def service_account_user(namespace: str, account: str) -> str:
        return service_account_identity(namespace, account).user

    def ssl_context(self, client: KeyPair | None = None) -> ssl.SSLContext:
        """A client TLS context trusting this cluster's CA only (optionally presenting a client certificate)."""
        return client_context(self.ca_pem, client)

    def kubeconfig(
        self, *, token: str | None = None, client: KeyPair | None = None, namespace: str = "default"
    ) -> dict[str, Any]:
        """A kubeconfig document for this cluster with other credentials (written nowhere)."""
        user: dict[str, str] = {"token": token} if token else {}
        if client is not None:
            user = kubeconfig.client_cert_user(client)
        return kubeconfig.document(
            [kubeconfig.Entry(self.name, self.url, self.ca_pem, f"{self.name}-user", user, namespace)]
        )

    # --- faults ------------------------------------------------------------------------------------

    def set_faults(self, **settings: Any) -> None:
        """latency (s), error_rate (0..1), error_code (429|500), retry_after (s), max_in_flight (short requests
        served at once; 0: any), refuse_pods (a 422 message)."""
        self.faults.configure(**settings)

    def lose_answers(self, verb: str, resource: str, count: int = 1) -> None:
        """The next `count` requests `verb resource` (e.g. "create", "pods") are carried out, then their
        connection is dropped before the answer (see gateway/sim/faults.py)."""
        self.faults.lose_answers(verb, resource, count)

    def fail_requests(self, verb: str, resource: str, count: int = 1) -> None:
        """The next `count` requests `verb resource` (e.g. "delete", "pods") are answered 500, not carried out."""
        self.faults.fail_requests(verb, resource, count)

    def throttle_requests(self, verb: str, resource: str, count: int = 1) -> None:
        """The next `count` requests `verb resource` (e.g. "list", "events") are answered 429 with Retry-After."""
        self.faults.throttle_requests(verb, resource, count)

    async def outage(self) -> None:
        """The API server goes away: its port refuses connections and open connections are cut."""
        if self._site is None or self.faults.outage:
            return
        self.faults.outage = True
        await self._site.stop()
        self._drop_connections()

    async def restore(self) -> None:
        """Ends an outage: listens again on the same port."""
        if not self.faults.outage:
            return
        self.faults.outage = False
        await self._listen()

    def blackhole(self, on: bool = True) -> None:
        """New requests are accepted, then never answered (no FIN, no RST), until `blackhole(False)`;
        requests caught by it stay silent for good."""
        self.faults.blackhole = on

    def silence_log_streams(self) -> None:
        """Every log stream open now goes silent for good, as if its connection were dropped on the way;
        streams opened later are served normally."""
        self.faults.log_silences += 1

    def stall_handshakes(self, count: int = 1) -> None:
        """The next `count` connections are accepted and then get no TLS handshake, until the client gives up
        (on the standard event loop: gateway/sim/handshakes.py)."""
        if self._site is not None and not self._site.gated:
            raise RuntimeError("holding TLS handshakes back needs the standard event loop, not uvloop")
        self.faults.stall_handshakes(count)

    def lag_watches(self, seconds: float) -> None:
        """Every watch's events (open ones' too) are written `seconds` late from now on, in order; 0 ends it. The
        pods' log streams are not: a follow stream ends at its container's exit before the watch shows it."""
        self.faults.watch_lag = seconds

    def cut_log_tails(self, count: int = 1) -> None:
        """The next `count` follow streams opened while their container runs end cleanly once it has ended,
        without their last chunk (see `Faults.take_log_tail_cut`)."""
        self.faults.log_tail_cuts += count

    async def rotate_certificates(self, *, new_address: bool = False) -> None:
        """A credential rotation, as GKE's (a new CA, and with `new_address` a new IP: here a new port) or
        AKS `rotate-certs` (a new CA): the API server restarts with a certificate from a new CA, so
        connections are cut, clients that trust only the old CA fail TLS, and client certificates the
        old CA issued are refused. The kubeconfig file is rewritten with the new CA (and address)."""
        if self._runner is None:
            raise RuntimeError(f"cluster {self.name!r} is not running")
        self.ca = CertificateAuthority(f"podgate-sim-{self.name}-ca-{secrets.token_hex(3)}")
        self._server_pair = self.ca.issue_server((self.host, "localhost"))
        if self._site is not None and not self.faults.outage:
            await self._site.stop()
        self._drop_connections()
        if new_address:
            self.port = 0
        if not self.faults.outage:
            await self._listen()
        if self.kubelet is not None:
            self.kubelet.configure_api_access(
                self.host, self.port, self.ca_pem, lambda ns, sa: self.mint_service_account_token(ns, sa)
            )
        kubeconfig.write(self.kubeconfig_path, kubeconfig.document([self._entry()]))
        log.info("simulated cluster %s rotated its CA; now at %s", self.name, self.url)

    def goaway(self) -> int:
        """Every HTTP/2 connection gets a GOAWAY and is closed (its streams cut), as from an API server shutting
        down; the listener stays. How many connections there were."""
        connections = list(self._http2_connections.open)
        for connection in connections:
            connection.goaway()
        return len(connections)

    def http2_connections(self) -> int:
        """HTTP/2 connections open now (each carries up to `http2.MAX_CONCURRENT_STREAMS` requests)."""
        return len(self._http2_connections.open)

    def http2_handlers_open(self) -> int:
        """HTTP/2 streams whose aiohttp handler is still running (each ends when its stream does)."""
        return self._http2_connections.handlers

    @property
    def http2_connections_accepted(self) -> int:
        """HTTP/2 connections accepted since start (0: every client spoke HTTP/1.1)."""
        return self._http2_connections.accepted

    def drop_watches(self) -> int:
        """Ends every open watch stream now (clients see the stream close and must re-watch)."""
        return self.store.close_watches()

    async def fail_node(self, name: str) -> None:
        """The node stops responding: NotReady + unreachable taints, and its pods fail with reason NodeLost."""
        self.store.get("nodes", "", name)
        hook = getattr(self.kubelet, "fail_node", None)
        if hook is not None:
            await _maybe_await(hook(name))
        nodes.mark_node_lost(self.store, name)

    async def recover_node(self, name: str) -> None:
        self.store.get("nodes", "", name)
        hook = getattr(self.kubelet, "recover_node", None)
        if hook is not None:
            await _maybe_await(hook(name))
        nodes.mark_node_ready(self.store, name)

    def advance_clock(self, seconds: float) -> None:
        """Moves this cluster's clock forward (token expiry), as if that much time had passed."""
        self.clock.advance(seconds)

    def request_counts(self) -> dict[tuple[str, str], int]:
        """API requests served so far, per (verb, resource) — e.g. ("create", "pods"), ("get", "pods/log")."""
        return dict(self.faults.counters)

    def _drop_connections(self) -> None:
        server = self._runner.server if self._runner is not None else None
        for connection in server.connections if server is not None else ():
            connection.force_close()
        for h2_connection in list(self._http2_connections.open):
            h2_connection.abort()
        self._held.abort_all()


class _AlpnSite(web.BaseSite):
    """aiohttp's TCPSite, but each TLS connection goes through `http2.AlpnSwitch` (HTTP/2 or aiohttp's HTTP/1.1);
    on the standard event loop first through `handshakes.TlsGate` (its TLS handshake started by the simulator, so
    that a fault can hold it back)."""

    __slots__ = ("_factory", "_gate", "_host", "_port", "gated")

    def __init__(
        self, runner: web.AppRunner, factory: Callable[[], asyncio.Protocol], gate: Callable[[], asyncio.Protocol],
        host: str, port: int, context: ssl.SSLContext,
    ) -> None:  # fmt: skip
        super().__init__(runner, ssl_context=context, backlog=4096)
        self._factory, self._gate, self._host, self._port = factory, gate, host, port
        self.gated = False

    @property
    def name(self) -> str:
        return f"https://{self._host}:{self._port}"

    @property
    def listener(self) -> asyncio.AbstractServer | None:
        return self._server

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self.gated = handshakes.gates(loop)
        factory, context = (self._gate, None) if self.gated else (self._factory, self._ssl_context)
        self._server = await loop.create_server(
            factory, self._host, self._port, ssl=context, backlog=self._backlog, reuse_address=True
        )


async def _maybe_await(value: Any) -> None:
    if isinstance(value, Awaitable):
        await value


class SimWorld:
    """Several simulated clusters started together, with a merged kubeconfig and the control endpoint."""

    def __init__(
        self,
        config: SimConfig,
        *,
        kubeconfig_dir: str | Path,
        node_side: bool = True,
        control_port: int | None = 0,
    ) -> None:
        self.config = config
        self.kubeconfig_dir = Path(kubeconfig_dir)
        self.kubeconfig_path = self.kubeconfig_dir / "kubeconfig"
        self.control_path = self.kubeconfig_dir / "control.yaml"  # the control endpoint's URL and token (0600)
        self.clusters: dict[str, SimCluster] = {
            spec.name: SimCluster(spec, kubeconfig_dir=kubeconfig_dir, node_side=node_side) for spec in config.clusters
        }
        self._control_port = control_port
        self.control: Any = None

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> SimWorld:
        return cls(load(path), **kwargs)

    async def start(self) -> None:
        started: list[SimCluster] = []
        try:
            for cluster in self.clusters.values():
                await cluster.start()
                started.append(cluster)
            if self._control_port is not None:
                from gateway.sim.control import ControlServer

                self.control = ControlServer(self, port=self._control_port)
                await self.control.start()
        except BaseException:
            for cluster in reversed(started):
                await cluster.stop()
            raise
        kubeconfig.write(self.kubeconfig_path, kubeconfig.document([c._entry() for c in self.clusters.values()]))
        if self.control is not None:
            kubeconfig.write(self.control_path, {"url": self.control.url, "token": self.control.token})

    async def stop(self) -> None:
        if self.control is not None:
            await self.control.stop()
            self.control = None
        errors = []
        for cluster in self.clusters.values():
            try:
                await cluster.stop()
            except Exception as e:  # stop the others, then report
                errors.append(e)
        if errors:
            raise errors[0]

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def kubeconfigs(self) -> Mapping[str, Path]:
        return {name: c.kubeconfig_path for name, c in self.clusters.items()}
