"""What every served method is wrapped in (api/methods.py): the one place where errors become gRPC statuses,
and each RPC's request id and count."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc

from gateway import errors
from gateway.api.status import to_status
from gateway.observability import logging as logcontext
from gateway.observability import metrics
from gateway.observability.descriptors import Gauge, is_exhaustion

log = logging.getLogger(__name__)
_REQUEST_ID_DRAWS = random.Random()  # seeded from the system once; the `random` module's shared generator is left alone

Handler = Callable[[Any, grpc.aio.ServicerContext], Any]
Wrap = Callable[[Handler], Handler]


def rewrap(handler: grpc.RpcMethodHandler, unary: Wrap, stream: Wrap) -> grpc.RpcMethodHandler:
    """The handler with its behaviour wrapped: `unary` for unary-unary, `stream` for unary-stream methods
    (the only kinds our services have; others pass unchanged)."""
    if handler.unary_unary is not None:
        return handler._replace(unary_unary=unary(handler.unary_unary))
    if handler.unary_stream is not None:
        return handler._replace(unary_stream=stream(_generating(handler.unary_stream)))
    return handler


class PerMethod:
    """Each method's wrapped handler, built once, for handlers that only a generic handler finds at call time
    (api/methods.py wraps the rest at start). Such a handler usually hands out the same handler object for a
    method on every call; a handler that is not the one wrapped is wrapped anew. Only served methods get here
    (an unknown method has no handler), so the cache stays small."""

    def __init__(self, wrap: Callable[[str, grpc.RpcMethodHandler], grpc.RpcMethodHandler]) -> None:
        self._wrap = wrap
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def get(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        known = self._wrapped.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        wrapped = self._wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped


def _generating(behaviour: Handler) -> Handler:
    """A streaming behaviour as an async generator. grpc_health's Health.Watch is a coroutine that sends with
    context.write: iterating it failed, so every client-side health check (round_robin's healthCheckConfig)
    got INTERNAL and the gateway looked down."""
    if not inspect.iscoroutinefunction(behaviour):
        return behaviour

    async def generator(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await behaviour(request, context)
        nothing: tuple[Any, ...] = ()  # an async generator that yields nothing itself
        for item in nothing:
            yield item

    return generator


EXHAUSTED = "the gateway is out of file descriptors; retry shortly (or on another replica)"
EXHAUSTION_LOG_EVERY = 10.0  # seconds between warnings while descriptors are short: one line, no traceback
_last_exhaustion_log = float("-inf")


def _exhausted(method: str) -> errors.GatewayError:
    global _last_exhaustion_log
    now = time.monotonic()
    if now - _last_exhaustion_log >= EXHAUSTION_LOG_EVERY:
        _last_exhaustion_log = now
        log.warning("%s: out of file descriptors; answering RESOURCE_EXHAUSTED (next warning in %.0fs at the "
                    "earliest)", method, EXHAUSTION_LOG_EVERY)  # fmt: skip
    return errors.ResourceExhausted(EXHAUSTED, retry_after_seconds=1.0)


_gauge = Gauge()


def _internal(method: str, exc: BaseException) -> errors.GatewayError:
    # SQLite says "unable to open database file" without an errno: a failure while descriptors are short
    # is taken for what it most likely is.
    if is_exhaustion(exc) or _gauge.short() is not None:
        return _exhausted(method)
    incident = uuid.uuid4().hex[:12]
    log.exception("internal error in %s (incident %s)", method, incident, exc_info=exc)
    return errors.GatewayError(f"internal error; the gateway log has the details under incident {incident}")


Decode = Callable[[bytes], Any]


def _decoded(method: str, decode: Decode | None, request: Any) -> Any:
    """The request message; bytes that do not decode are the caller's error, not a traceback in our log."""
    if decode is None or not isinstance(request, bytes):
        return request
    try:
        return decode(request)
    except Exception:
        name = method.rsplit("/", 1)[-1]
        raise errors.InvalidArgument(f"the request is not a valid {name} request message (protobuf)") from None


async def _as_status(method: str, context: grpc.aio.ServicerContext, e: Exception) -> None:
    """GatewayError aborts the call with its status, anything unexpected with INTERNAL and an incident id.
    Called from the wrappers' own `except`: an asynccontextmanager around every call cost ~1.4 us, a `try`
    ~0.1 (bench/README.md, helper edge2)."""
    if isinstance(e, errors.GatewayError):
        await context.abort_with_status(to_status(e))
    elif isinstance(e, grpc.aio.AbortError | grpc.aio.UsageError):
        raise e
    else:
        await context.abort_with_status(to_status(_internal(method, e)))


def _wrap_unary(method: str, behaviour: Handler, decode: Decode | None = None) -> Handler:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await behaviour(_decoded(method, decode, request), context)
        except Exception as e:
            await _as_status(method, context, e)

    return wrapper


def _wrap_stream(method: str, behaviour: Callable[..., AsyncIterator[Any]], decode: Decode | None = None) -> Handler:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            async for item in behaviour(_decoded(method, decode, request), context):
                yield item
        except Exception as e:
            await _as_status(method, context, e)

    return wrapper


def answered(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """The handler answering GatewayError with its status code and details, anything else with INTERNAL and an
    incident id; it decodes the request itself, so a malformed message is INVALID_ARGUMENT."""
    decode = None
    if handler.unary_unary is not None or handler.unary_stream is not None:
        decode = handler.request_deserializer
        handler = handler._replace(request_deserializer=None)
    return rewrap(
        handler,
        lambda behaviour: _wrap_unary(method, behaviour, decode),
        lambda behaviour: _wrap_stream(method, behaviour, decode),
    )


def _request_id(metadata: Any) -> str:
    """The caller's x-request-id when it is a sane token, else a fresh one: it ties the RPC's log lines together.
    A fresh one is 64 random bits as 16 hex digits, as before, but not from os.urandom (a system call on
    every RPC): it correlates log lines and guards nothing. Drawn from a generator of its own, not the `random`
    module's shared one."""
    for key, value in metadata or ():
        if key == "x-request-id" and isinstance(value, str) and 0 < len(value) <= 64 and value.isprintable():
            return value.replace(" ", "")
    return f"{_REQUEST_ID_DRAWS.getrandbits(64):016x}"


def _code(context: grpc.aio.ServicerContext) -> str:
    code = context.code()
    if code is None:
        return "OK"
    return str(code.name) if isinstance(code, grpc.StatusCode) else str(code)


_COUNTERS: dict[tuple[str, str], Any] = {}


def _count(method: str, code: str) -> None:
    """One more RPC of `method` ended with `code`; each label pair's child is looked up once (bounded: served
    methods times status codes)."""
    child = _COUNTERS.get((method, code))
    if child is None:
        child = _COUNTERS[(method, code)] = metrics.REQUESTS.labels(rpc=method, code=code)
    child.inc()


@contextlib.contextmanager
def _counted(method: str, context: grpc.aio.ServicerContext) -> Iterator[None]:
    """Counts the RPC by its final status code; a cancelled call (or a stream closed early) as CANCELLED."""
    code = "UNKNOWN"
    try:
        yield
        code = _code(context)
    except (asyncio.CancelledError, GeneratorExit):
        code = "CANCELLED"
        raise
    except BaseException:
        code = _code(context)
        raise
    finally:
        _count(method, code)


def _observe_unary(method: str, behaviour: Handler) -> Handler:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        logcontext.bind(request_id=_request_id(context.invocation_metadata()))
        with _counted(method, context):
            return await behaviour(request, context)

    return wrapper


def _observe_stream(method: str, behaviour: Callable[..., AsyncIterator[Any]]) -> Handler:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        logcontext.bind(request_id=_request_id(context.invocation_metadata()))
        with _counted(method, context):
            async for item in behaviour(request, context):
                yield item

    return wrapper


def observed(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """Outermost: the handler binding a request id for the RPC's log lines and counting each RPC by method and
    final status code. Only methods the server serves are wrapped, so label values stay bounded whatever
    callers send."""
    name = method.lstrip("/")
    return rewrap(handler, functools.partial(_observe_unary, name), functools.partial(_observe_stream, name))
