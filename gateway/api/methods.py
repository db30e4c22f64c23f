"""Every served method's handler, wrapped once at start and found by one lookup a call (no grpc interceptors).

grpc.aio runs a server's interceptors on every call (a coroutine and a partial each, before our per-method
cache), and a service added through its generated `add_*_to_server` also registers each method: the server
then keeps one pending request per registered method and passes all of them to `asyncio.wait` for every call
it accepts (~20 futures here, ~18 us a call against ~1 for one future on uvloop; bench/README.md, helper
edge3). Here the generated functions register into a `Collector`, each handler found is wrapped in what the
interceptors did (metrics outermost, then errors, then authentication), and the server gets one generic
handler: one pending request, one dict lookup a call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, NoReturn

import grpc

from gateway.api.access import AccessControl, Authenticating
from gateway.api.interceptors import PerMethod, answered, observed

Wrap = Callable[[str, grpc.RpcMethodHandler], grpc.RpcMethodHandler]
Register = Callable[[grpc.aio.Server], None]


def edge_wrap(access: AccessControl | None) -> Wrap:
    """A method's handler as the edge serves it: counted, errors as statuses, the caller authenticated.
    `access` None only in tests of the frame: our servicers then refuse every call."""
    auth = Authenticating(access) if access is not None else None

    def wrap(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if auth is not None:
            handler = auth.wrap(method, handler)
        return observed(method, answered(method, handler))

    return wrap


class Collector(grpc.aio.Server):
    """Stands in for the server while generated `add_*_to_server` functions (and grpc_reflection, which asks
    for an aio server) register services: keeps their handlers; it serves nothing."""

    def __init__(self) -> None:
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}
        self.generic: list[grpc.GenericRpcHandler] = []

    def add_registered_method_handlers(self, service_name: str, method_handlers: dict[str, Any]) -> None:
        self.handlers.update({f"/{service_name}/{name}": h for name, h in method_handlers.items()})

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self.generic.extend(generic_rpc_handlers)

    def _serves_nothing(self, *_: Any, **__: Any) -> NoReturn:
        raise TypeError("a Collector only collects handlers")

    add_insecure_port = add_secure_port = _serves_nothing
    start = stop = wait_for_termination = _serves_nothing


class Served(grpc.GenericRpcHandler):
    """The server's one handler: the wrapped handler of each registered method; a method that only a generic
    handler knows (none of ours: each generated service registers its methods) is wrapped at its first call."""

    def __init__(self, handlers: dict[str, grpc.RpcMethodHandler], generic: Sequence[grpc.GenericRpcHandler], wrap: Wrap):
        self._handlers = handlers
        self._generic = tuple(generic)
        self._late = PerMethod(wrap)

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        handler = self._handlers.get(method)
        if handler is not None:
            return handler
        for generic in self._generic:
            found = generic.service(handler_call_details)
            if found is not None:
                return self._late.get(method, found)
        return None

    def methods(self) -> frozenset[str]:
        """The methods wrapped at start."""
        return frozenset(self._handlers)


def served(registrations: Iterable[Register], wrap: Wrap) -> Served:
    """One generic handler for everything the registrations add, each method wrapped by `wrap` once."""
    collector = Collector()
    for register in registrations:
        register(collector)
    return Served({m: wrap(m, h) for m, h in collector.handlers.items()}, collector.generic, wrap)
