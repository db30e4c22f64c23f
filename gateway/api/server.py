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
from gateway.api.interceptors import ErrorInterceptor, MetricsInterceptor

log = logging.getLogger(__name__)

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

    async def stop(self, grace: float | None = 5.0) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


async def start(address: str, servicers: Servicers) -> RunningServer:
    """Starts serving on address (port 0 picks a free port). Plain text is refused off loopback."""
    if not is_loopback(address):
        raise errors.FailedPrecondition(
            f"refusing a plain-text listener on {address}: plain text is only allowed on loopback addresses"
        )
    server = grpc.aio.server(interceptors=[MetricsInterceptor(), ErrorInterceptor()])
    dispatch_pb2_grpc.add_DispatchServiceServicer_to_server(servicers.dispatch, server)
    clusters_pb2_grpc.add_ClusterServiceServicer_to_server(servicers.clusters, server)
    credentials_pb2_grpc.add_CredentialsServiceServicer_to_server(servicers.credentials, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server
    )
    port = server.add_insecure_port(address)
    await server.start()
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.warning("serving plain-text gRPC on %s (loopback only)", address.rsplit(":", 1)[0] + f":{port}")
    return RunningServer(server=server, port=port, health=health_servicer)
