"""`podgate run`: run one pod through the gateway, logs to stdout, progress to stderr, exit with its code.

It prints the request id first, so a client that drops can find the pod again (`podgate attach ID`);
`--detach` returns once the pod is placed; Ctrl-C cancels the pod and says which.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from contextlib import aclosing
from pathlib import Path

from gateway.client import types as t
from gateway.client.client import GatewayClient
from gateway.client.request import PodSpecRequest
from gateway.commands import common
from gateway.commands.common import CommandError
from gateway.commands.podspec import spec_request
from gateway.commands.streams import Progress, describe, finish

PLACEMENT_POLL_SECONDS = 0.5


def _where(pod: t.PodInfo) -> str:
    return f"pod {pod.namespace}/{pod.name} on {pod.cluster} ({pod.region})" if pod.name else "no pod yet"


async def check_names(client: GatewayClient, request: PodSpecRequest) -> None:
    """Unknown regions and clusters are refused here, with a suggestion, the same way for run and explain."""
    if not (request.regions or request.clusters):
        return
    known = await client.list_clusters()
    regions = {c.cluster.region for c in known}
    names = {c.cluster.name for c in known} | {a for c in known for a in c.cluster.aliases}
    for region in request.regions:
        if region not in regions:
            raise CommandError(common.unknown("region", region, regions))
    for name in request.clusters:
        if name not in names:
            raise CommandError(common.unknown("cluster", name, names))


async def _detach(client: GatewayClient, request: PodSpecRequest, progress: Progress) -> int:
    pod = (await client.submit_pod(request)).pod
    while pod.phase == t.PodPhase.QUEUED:
        await asyncio.sleep(PLACEMENT_POLL_SECONDS)
        pod = await client.get_pod(request.request_id)
    if pod.placement is not None:
        progress.line(pod.placement.reason)
    rid = request.request_id
    progress.line(f"{_where(pod)}: {pod.phase}")
    progress.line(f"detached; follow with `podgate attach {rid}` or `podgate logs -f {rid}`")
    return 0


async def _follow(client: GatewayClient, args: argparse.Namespace, request: PodSpecRequest, progress: Progress) -> int:
    pod: t.PodInfo | None = None
    try:
        async with aclosing(client.run_pod(request)) as events:
            async for event in events:
                if isinstance(event, t.Result):
                    return _finish(args, event.result, progress)
                describe(progress, event)
                if isinstance(event, t.Placed):
                    pod = await client.get_pod(request.request_id)
                    progress.line(_where(pod))
    except asyncio.CancelledError:
        progress.done()
        cancelled = await client.cancel_pod(request.request_id, "podgate run interrupted")
        print(
            f"podgate run: interrupted; cancelled {request.request_id} ({_where(cancelled)}): {cancelled.phase}",
            file=sys.stderr,
        )
        raise
    raise CommandError("the stream ended without a result")


def _finish(args: argparse.Namespace, result: t.PodResult, progress: Progress) -> int:
    code = finish(progress, result)
    if args.xcom_out and result.xcom_json is not None:
        Path(args.xcom_out).write_text(json.dumps(result.xcom()))
    return code


async def _run(client: GatewayClient, args: argparse.Namespace) -> int:
    command = list(args.command_ or [])
    if command[:1] == ["--"]:
        command = command[1:]
    request = spec_request(args, command)
    await check_names(client, request)
    progress = Progress()
    progress.line(f"request {request.request_id}")
    if args.detach:
        return await _detach(client, request, progress)
    return await _follow(client, args, request, progress)


def run(args: argparse.Namespace) -> int:
    return common.run_command("run", args, _run, retry=common.STREAM_RETRY)
