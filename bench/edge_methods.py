"""grpc.aio's own per-call Python around a handler, emulated in process, for before/after (helper edge3).

For each call grpc.aio's server passes its pending request futures (one per registered method, plus one) to
`asyncio.wait`, finds the method's handler (through the server's interceptors when it has some), and runs
the handler. This script does the same with the gateway's services and a behaviour that does nothing: the
methods found through the three interceptors and registered (main before `gateway/api/methods.py`), or
through the one generic handler. CPU time a call, best of 7 x 5,000; nothing asserted.

    TREE=/work/wt/base .venv/bin/python bench/edge_methods.py     # the tree whose gateway is measured
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.environ.get("TREE", str(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

import grpc
import uvloop
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from gateway._proto.podgate.v1 import clusters_pb2_grpc, credentials_pb2_grpc, dispatch_pb2, dispatch_pb2_grpc
from gateway.api.access import AccessControl
from gateway.api.audit import Auditor
from gateway.settings import LiveSettings, Settings

METHOD = "/podgate.v1.DispatchService/SubmitPod"


class _Nothing(dispatch_pb2_grpc.DispatchServiceServicer):
    async def SubmitPod(self, request: Any, context: Any) -> Any:
        return None


class _Context:
    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("user-agent", "grpc-python"),)

    def code(self) -> None:
        return None

    def auth_context(self) -> dict[str, Any]:
        return {}


class _Details:
    def __init__(self, method: str, metadata: tuple[tuple[str, str], ...]) -> None:
        self.method, self.invocation_metadata = method, metadata


class _Registry(grpc.aio.Server):
    """What the generated add_*_to_server functions hand the server."""

    def __init__(self) -> None:
        self.registered: dict[str, Any] = {}
        self.generic: list[Any] = []

    def add_registered_method_handlers(self, name: str, handlers: dict[str, Any]) -> None:
        self.registered.update({f"/{name}/{m}": h for m, h in handlers.items()})

    def add_generic_rpc_handlers(self, generic: Any) -> None:
        self.generic.extend(generic)

    add_insecure_port = add_secure_port = start = stop = wait_for_termination = None  # type: ignore[assignment]


def _register(server: grpc.aio.Server) -> None:
    dispatch_pb2_grpc.add_DispatchServiceServicer_to_server(_Nothing(), server)
    clusters_pb2_grpc.add_ClusterServiceServicer_to_server(clusters_pb2_grpc.ClusterServiceServicer(), server)
    credentials_pb2_grpc.add_CredentialsServiceServicer_to_server(
        credentials_pb2_grpc.CredentialsServiceServicer(), server
    )
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    reflection.enable_server_reflection(("podgate.v1.DispatchService",), server)


def _served(access: AccessControl) -> tuple[dict[str, Any], list[Any], tuple[Any, ...]]:
    """The registered handlers, the generic ones and the interceptors the tree's server would have."""
    try:
        from gateway.api import methods
    except ImportError:  # before api/methods.py: grpc interceptors and registered methods
        from gateway.api.access import AuthInterceptor  # type: ignore[attr-defined]
        from gateway.api.interceptors import ErrorInterceptor, MetricsInterceptor  # type: ignore[attr-defined]

        registry = _Registry()
        _register(registry)
        return registry.registered, registry.generic, (MetricsInterceptor(), ErrorInterceptor(), AuthInterceptor(access))
    return {}, [methods.served([_register], methods.edge_wrap(access))], ()


async def main() -> None:
    registered, generic, interceptors = _served(AccessControl(LiveSettings(Settings()), Auditor(object(), "")))  # type: ignore[arg-type]

    def query(details: Any) -> Any:
        handler = registered.get(details.method)
        for g in generic if handler is None else ():
            handler = handler or g.service(details)
        return handler

    async def intercepted(chain: Any, details: Any) -> Any:  # grpc.aio's _run_interceptor
        interceptor = next(chain, None)
        if interceptor is None:
            return query(details)
        return await interceptor.intercept_service(functools.partial(intercepted, chain), details)

    loop = asyncio.get_running_loop()
    pending = [loop.create_future() for _ in range(len(registered) + 1)]
    raw = dispatch_pb2.SubmitPodRequest().SerializeToString()
    metadata = (("user-agent", "grpc-python"),)
    best, calls = float("inf"), 5000
    for _ in range(7):
        start = time.process_time()
        for _ in range(calls):
            arrived = pending[0] = loop.create_future()
            arrived.set_result(None)
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            details = _Details(METHOD, metadata)
            handler = await intercepted(iter(interceptors), details) if interceptors else query(details)
            request = raw if handler.request_deserializer is None else handler.request_deserializer(raw)
            await handler.unary_unary(request, _Context())
        best = min(best, (time.process_time() - start) / calls)
    print(
        f"{sys.path[0]}: {len(pending)} pending request futures, {len(interceptors)} interceptors: "
        f"{best * 1e6:.1f} us a call"
    )


if __name__ == "__main__":
    uvloop.run(main())
