"""`podgate run`: run one pod through the gateway, logs to stdout, progress to stderr, exit with its code."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from gateway.client import types as t
from gateway.client.client import GatewayClient
from gateway.client.errors import GatewayError
from gateway.commands.common import channel, fail, spec_request

EXIT_CANCELLED = 130


class Progress:
    """Placement and phases on stderr: one live status line on a terminal, plain lines otherwise."""

    def __init__(self) -> None:
        self.live = sys.stderr.isatty()

    def say(self, text: str) -> None:
        if self.live:
            print(f"\r\x1b[2K{text}", end="", file=sys.stderr, flush=True)
        else:
            print(text, file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.live:
            print(file=sys.stderr)


def _exit_code(result: t.PodResult) -> int:
    if result.phase == t.PodPhase.SUCCEEDED:
        return 0
    if result.phase == t.PodPhase.CANCELLED:
        return EXIT_CANCELLED
    return result.exit_code if result.exit_code > 0 else 1


async def _run(args: argparse.Namespace) -> int:
    command = list(args.command_ or [])
    if command[:1] == ["--"]:
        command = command[1:]
    request = spec_request(args, command)
    progress = Progress()
    async with GatewayClient(channel(args)) as client:
        try:
            async for event in client.run_pod(request):
                if isinstance(event, t.Placed):
                    progress.say(
                        f"placed on {event.decision.cluster} ({event.decision.region}): {event.decision.reason}"
                    )
                elif isinstance(event, t.Phase):
                    progress.say(
                        f"{event.phase}" + (f": {event.reason} {event.message}".rstrip() if event.reason else "")
                    )
                elif isinstance(event, t.KubeEvent) and event.event.type == "Warning":
                    progress.say(f"warning: {event.event.reason}: {event.event.message}")
                elif isinstance(event, t.Log):
                    if progress.live:
                        print("\r\x1b[2K", end="", file=sys.stderr)
                    print(event.text, flush=True)
                elif isinstance(event, t.Result):
                    return _finish(args, event.result, progress)
        except asyncio.CancelledError:
            await client.cancel_pod(request.request_id, "podgate run interrupted")
            raise
    return fail("run", RuntimeError("the stream ended without a result"))


def _finish(args: argparse.Namespace, result: t.PodResult, progress: Progress) -> int:
    progress.say(
        f"{result.phase}: exit code {result.exit_code}"
        + (f", {result.reason}" if result.reason else "")
        + (f": {result.message}" if result.message and not result.succeeded else "")
    )
    progress.done()
    for event in result.warning_events:
        print(f"  warning: {event.reason}: {event.message}", file=sys.stderr)
    if args.xcom_out and result.xcom_json is not None:
        Path(args.xcom_out).write_text(json.dumps(result.xcom()))
    return _exit_code(result)


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return EXIT_CANCELLED
    except GatewayError as e:
        return fail("run", e)
