"""PodgateTrigger: follows a submitted pod over one grpc.aio WatchPod stream (no polling) while the task is
deferred, writing its log lines to the trigger's log, and fires once the pod's result is in.

The event carries the cursor of the last event the trigger handled: the resumed task watches from there, so
every log line reaches a log exactly once, and it reads the result itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from gateway.airflow.outcome import describe
from gateway.client import ChannelSpec, GatewayClient, GatewayError, Result, RetryPolicy
from gateway.client.client import DEFAULT_RETRY

# Workers and triggers use the client's own policy, as the CLI's streams do: it rides out a 60 s restart.
WORKER_RETRY: RetryPolicy = DEFAULT_RETRY


class PodgateTrigger(BaseTrigger):
    def __init__(self, *, request_id: str, channel: dict[str, Any], cursor: str = "", log_prefix: bool = True) -> None:
        super().__init__()
        self.request_id = request_id
        self.channel = channel
        self.cursor = cursor
        self.log_prefix = log_prefix

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "request_id": self.request_id,
                "channel": self.channel,
                "cursor": self.cursor,
                "log_prefix": self.log_prefix,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        cursor = self.cursor
        try:
            async with (
                GatewayClient(ChannelSpec.deserialize(self.channel), retry=WORKER_RETRY) as client,
                aclosing(client.watch_pod(self.request_id, cursor)) as events,
            ):
                async for event in events:
                    if isinstance(event, Result):
                        yield TriggerEvent({"status": "done", "request_id": self.request_id, "cursor": cursor})
                        return
                    record = describe(event, prefix=self.log_prefix)
                    if record is not None:
                        self.log.log(record.level, "%s", record.message)
                    cursor = event.cursor
        except GatewayError as e:
            payload = {"status": "error", "request_id": self.request_id, "cursor": cursor, "message": str(e)}
            yield TriggerEvent({**payload, "error": type(e).__name__})
            return
        yield TriggerEvent(
            {"status": "error", "request_id": self.request_id, "cursor": cursor, "message": "stream ended early"}
        )

    async def on_kill(self) -> None:
        """A user killed the deferred task (mark failed, clear): cancel its pod, as the worker's on_kill does.
        Not called on a triggerer restart, so a moved trigger never cancels a pod."""
        async with GatewayClient(ChannelSpec.deserialize(self.channel)) as client:
            await client.cancel_pod(self.request_id, reason="the deferred Airflow task was killed")
        self.log.info("Cancelled pod %s", self.request_id)
