"""Builds and runs the grpc.aio server: our services, standard health checking and reflection."""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from gateway import errors
from gateway._proto.podgate.v1 import (
    clusters_pb2,
    clusters_pb2_grpc,
    credentials_pb2,
    credentials_pb2_grpc,
    dispatch_pb2,
    dispatch_pb2_grpc,
)
from gateway.api import methods
from gateway.api.access import AccessControl
from gateway.policy.limits import DEFAULT_LIMITS
from gateway.settings import TlsSettings

log = logging.getLogger(__name__)

PLAIN_TEXT = TlsSettings()

# gRPC sets SO_REUSEPORT by default: a second gateway on a taken port would join it silently and get half
# of the connections. Without it, binding a taken port fails.
EXCLUSIVE_PORT = [("grpc.so_reuseport", 0)]

SERVICE_NAMES = (
    dispatch_pb2.DESCRIPTOR.services_by_name["DispatchService"].full_name,
    clusters_pb2.DESCRIPTOR.services_by_name["ClusterService"].full_name,
    credentials_pb2.DESCRIPTOR.services_by_name["CredentialsService"].full_name,
)


@dataclass(frozen=True, kw_only=True)
class Servicers:
    dispatch: dispatch_pb2_grpc.DispatchServiceServicer
    clusters: clusters_pb2_grpc.ClusterServiceServicer
    credentials: credentials_pb2_grpc.CredentialsServiceServicer


def is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    health_server: grpc.aio.Server | None = None
    health_port: int = 0

    async def stop(self, grace: float | None = 5.0) -> None:
        """NOT_SERVING first (probes and load balancers move away), then let calls finish within `grace`."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        if self.health_server is not None:
            await self.health_server.stop(0)


def bind(server: grpc.aio.Server, address: str, credentials: grpc.ServerCredentials | None) -> int:
    """The bound port; FailedPrecondition when the address is taken (gRPC only says it failed to bind)."""
    try:
        if credentials is not None:
            return int(server.add_secure_port(address, credentials))
        return int(server.add_insecure_port(address))
    except RuntimeError:
        raise errors.FailedPrecondition(
            f"cannot listen on {address}: the address is in use (another gateway?) or not available here"
        ) from None


def server_credentials(tls: TlsSettings) -> grpc.ServerCredentials:
    """The server's certificate; with a client CA, client certificates are verified (required or optional)."""
    assert tls.cert_file is not None and tls.key_file is not None
    client_ca = tls.client_ca_file.read_bytes() if tls.client_ca_file is not None else None
    return grpc.ssl_server_credentials(
        [(tls.key_file.read_bytes(), tls.cert_file.read_bytes())],
        root_certificates=client_ca,
        require_client_auth=tls.require_client_cert,
    )


async def start(
    address: str,
    servicers: Servicers,
    *,
    access: AccessControl | None,
    tls: TlsSettings = PLAIN_TEXT,
    max_message_bytes: int = DEFAULT_LIMITS.request_bytes,
    health_address: str = "",
) -> RunningServer:
    """Starts serving on address (port 0 picks a free port). Plain text is refused off loopback.

    `health_address`, when set, is a second, plain-text listener serving only grpc.health.v1, for
    kubelet probes (which cannot speak TLS); it shares the health status of the main listener.
    """
    if not tls.enabled and not is_loopback(address):
        raise errors.FailedPrecondition(
            f"refusing a plain-text listener on {address}: plain text is only allowed on loopback addresses"
        )
    options = [("grpc.max_receive_message_length", max_message_bytes), *EXCLUSIVE_PORT]
    health_servicer = health.aio.HealthServicer()
    registrations: list[methods.Register] = [
        lambda s: dispatch_pb2_grpc.add_DispatchServiceServicer_to_server(servicers.dispatch, s),
        lambda s: clusters_pb2_grpc.add_ClusterServiceServicer_to_server(servicers.clusters, s),
        lambda s: credentials_pb2_grpc.add_CredentialsServiceServicer_to_server(servicers.credentials, s),
        lambda s: health_pb2_grpc.add_HealthServicer_to_server(health_servicer, s),
        lambda s: reflection.enable_server_reflection(
            (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), s
        ),
    ]
    server = grpc.aio.server(options=options)
    server.add_generic_rpc_handlers((methods.served(registrations, methods.edge_wrap(access)),))
    port = bind(server, address, server_credentials(tls) if tls.enabled else None)
    health_server, health_port = None, 0
    if health_address:
        health_server = grpc.aio.server(options=EXCLUSIVE_PORT)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, health_server)
        try:
            health_port = bind(health_server, health_address, None)
        except errors.FailedPrecondition:
            await server.stop(None)  # frees the main port, bound but not yet serving
            raise
    await server.start()
    if health_server is not None:
        await health_server.start()
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    shown = address.rsplit(":", 1)[0] + f":{port}"
    if tls.enabled:
        log.info("serving gRPC over TLS on %s", shown)
    else:
        log.warning("serving plain-text gRPC on %s (loopback only)", shown)
    return RunningServer(
        server=server, port=port, health=health_servicer, health_server=health_server, health_port=health_port
    )
