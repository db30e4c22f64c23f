"""Server interceptors: the one place where errors become gRPC statuses."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from gateway import errors
from gateway.api.status import to_status

log = logging.getLogger(__name__)

Handler = Callable[[Any, grpc.aio.ServicerContext], Any]


def _internal(method: str, exc: BaseException) -> errors.GatewayError:
    incident = uuid.uuid4().hex[:12]
    log.exception("internal error in %s (incident %s)", method, incident, exc_info=exc)
    return errors.GatewayError(f"internal error; the gateway log has the details under incident {incident}")


def _wrap_unary(method: str, behaviour: Handler) -> Handler:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await behaviour(request, context)
        except errors.GatewayError as e:
            await context.abort_with_status(to_status(e))
        except (grpc.aio.AbortError, grpc.aio.UsageError):
            raise
        except Exception as e:
            await context.abort_with_status(to_status(_internal(method, e)))

    return wrapper


def _wrap_stream(method: str, behaviour: Callable[..., AsyncIterator[Any]]) -> Handler:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            async for item in behaviour(request, context):
                yield item
        except errors.GatewayError as e:
            await context.abort_with_status(to_status(e))
        except (grpc.aio.AbortError, grpc.aio.UsageError):
            raise
        except Exception as e:
            await context.abort_with_status(to_status(_internal(method, e)))

    return wrapper


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Turns GatewayError into its status code with details; anything else into INTERNAL with an incident id."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        if handler.unary_unary is not None:
            return handler._replace(unary_unary=_wrap_unary(method, handler.unary_unary))
        if handler.unary_stream is not None:
            return handler._replace(unary_stream=_wrap_stream(method, handler.unary_stream))
        return handler
