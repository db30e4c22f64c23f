"""A pod's event stream on a terminal: `podgate logs`, `podgate attach`, and the printing `run` shares.

Log lines go to stdout, everything else (placement, phases, warnings, the result) to stderr, so
`podgate run ... > out.txt` captures exactly what the pod printed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncGenerator
from contextlib import aclosing
from datetime import UTC, datetime

from gateway.client import types as t
from gateway.client.client import GatewayClient
from gateway.commands import common
from gateway.commands.common import CommandError, Exit

# Without --follow, the replay ends at the first pause this long: what the journal held when asked.
IDLE_SECONDS = 0.5


class Progress:
    """Placement and phases on stderr: one live status line on a terminal, plain lines otherwise."""

    def __init__(self) -> None:
        self.live = sys.stderr.isatty()

    def say(self, text: str) -> None:
        if self.live:
            print(f"\r\x1b[2K{text}", end="", file=sys.stderr, flush=True)
        else:
            print(text, file=sys.stderr, flush=True)

    def line(self, text: str) -> None:
        """A line that stays, even on a terminal."""
        self.say(text)
        self.done()

    def done(self) -> None:
        if self.live:
            print(file=sys.stderr, flush=True)

    def log(self, text: str) -> None:
        if self.live:
            print("\r\x1b[2K", end="", file=sys.stderr)
        print(text, flush=True)


def exit_code(result: t.PodResult) -> int:
    """The pod's own exit code, or one of podgate's (see `Exit`) when the command's code says nothing."""
    if result.phase == t.PodPhase.SUCCEEDED:
        return 0
    if result.phase == t.PodPhase.CANCELLED:
        return int(Exit.CANCELLED)
    return result.exit_code if result.exit_code > 0 else int(Exit.POD_NOT_RUN)


def result_line(result: t.PodResult) -> str:
    """"Failed: exit code 3 (Error)"; when the command's code says nothing, why the pod ended instead:
    "Failed (XComError): the command exited 0, but ..." or "Cancelled: <reason>"."""
    reason = f" ({result.reason})" if result.reason and result.reason != str(result.phase) else ""
    message = f": {result.message}" if result.message and not result.succeeded else ""
    if result.exit_code > 0 or result.succeeded:
        return f"{result.phase}: exit code {result.exit_code}{reason}{message}"
    if result.exit_code == 0:
        return f"{result.phase}{reason}: the command exited 0, but" + (message[1:] or " the pod failed")
    return f"{result.phase}{reason}{message}"


def describe(progress: Progress, event: t.PodEvent) -> None:
    """Prints one stream event; the Result is left to the caller."""
    if isinstance(event, t.Placed):
        progress.line(event.decision.reason)
    elif isinstance(event, t.Phase):
        # A Queued phase's message repeats the placement reason printed with the Placed event.
        message = "" if event.message.startswith("placed on ") else event.message
        progress.say(f"{event.phase}" + (f" ({event.reason})" if event.reason else "") + (f": {message}" if message else ""))
    elif isinstance(event, t.Notice) and event.event.type == "Warning":
        progress.say(f"warning: {event.event.reason}: {event.event.message}")
    elif isinstance(event, t.Log):
        progress.log(event.text)


def finish(progress: Progress, result: t.PodResult) -> int:
    progress.say(result_line(result))
    progress.done()
    for event in result.warning_events:
        print(f"  warning: {event.reason}: {event.message}", file=sys.stderr)
    return exit_code(result)


async def replay(client: GatewayClient, pod: t.PodInfo, *, follow: bool = False) -> AsyncGenerator[t.PodEvent, None]:
    """The pod's journal from its start: to the Result when following (or finished), else what is there now."""
    started = datetime.now(UTC)
    async with aclosing(client.watch_pod(pod.request_id)) as events:
        while True:
            try:
                wait = None if follow or pod.phase.finished else IDLE_SECONDS
                async with asyncio.timeout(wait):  # not wait_for: on 3.11 it can swallow a cancel
                    event = await anext(events)
            except (StopAsyncIteration, TimeoutError):
                return
            if not follow and not pod.phase.finished and event.time is not None and event.time > started:
                return
            yield event
            if isinstance(event, t.Result):
                return


async def history(client: GatewayClient, pod: t.PodInfo, kinds: tuple[type, ...]) -> list[t.PodEvent]:
    async with aclosing(replay(client, pod)) as events:
        return [e async for e in events if isinstance(e, kinds)]


async def logs(client: GatewayClient, args: argparse.Namespace) -> int:
    pod = await common.require_pod(client, args.request_id)
    seen: set[str] = set()
    async with aclosing(replay(client, pod, follow=args.follow)) as events:
        async for event in events:
            if isinstance(event, t.Log):
                seen.add(event.container)
                if not args.container or event.container == args.container:
                    print(event.text, flush=True)
    if args.container and args.container not in seen and seen:
        raise CommandError(
            f"no log lines of container {args.container!r} in {pod.request_id}'s journal; it holds lines of "
            f"{', '.join(sorted(seen))} (run with --logs all, or --logs {args.container}, to stream other containers)"
        )
    return 0


async def attach(client: GatewayClient, args: argparse.Namespace) -> int:
    """Follows a pod (from the start or a cursor) to its result and exits like `podgate run` would, in the place
    of the client that ran it; `pods get` and `logs` only watch and never start or stop a reattach grace."""
    pod = await common.require_pod(client, args.request_id)
    progress = Progress()
    cursor = args.cursor or ""
    try:
        # In the place of the client that ran it: leaving applies the pod's disconnect policy (its grace).
        async with aclosing(client.watch_pod(pod.request_id, cursor, reattach=True)) as events:
            async for event in events:
                cursor = event.cursor or cursor
                if isinstance(event, t.Result):
                    return finish(progress, event.result)
                describe(progress, event)
    except asyncio.CancelledError:
        progress.done()
        print(
            f"detached from {pod.request_id}; it keeps running for its reattach grace (then it is cancelled): "
            f"podgate attach {pod.request_id} --cursor {cursor}",
            file=sys.stderr,
        )
        raise
    raise CommandError("the stream ended without a result")


def logs_command(args: argparse.Namespace) -> int:
    return common.run_command("logs", args, logs, retry=common.STREAM_RETRY)


def attach_command(args: argparse.Namespace) -> int:
    return common.run_command("attach", args, attach, retry=common.STREAM_RETRY)
