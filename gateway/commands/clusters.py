"""`podgate clusters ...`: list (and watch), describe, register files, deregister, cordon, uncordon."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from gateway.client import types as t
from gateway.client.client import GatewayClient
from gateway.client.errors import AlreadyExists, GatewayError, NotFound
from gateway.commands import common
from gateway.commands.common import CommandError, Exit, table
from gateway.commands.registration import clusters_of_file

WATCH_INTERVAL = 1.0


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f}Gi"


def _row(info: t.ClusterInfo) -> tuple[str, ...]:
    s, c = info.status, info.cluster
    gpus = ",".join(f"{kind}:{n}" for kind, n in sorted(s.gpus_free.items())) or "-"
    health = str(s.health) + (" (cordoned)" if s.cordoned else "")
    labels = ",".join(f"{k}={v}" for k, v in sorted(c.labels.items())) or "-"
    return (
        c.name,
        c.region,
        health,
        str(s.running_pods),
        f"{s.cpu_millis_free / 1000:g}",
        _gib(s.memory_bytes_free),
        gpus,
        labels,
    )


def _wide(info: t.ClusterInfo) -> tuple[str, ...]:
    s, c = info.status, info.cluster
    taints = ",".join(str(x) for x in s.effective_taints) or "-"
    return (*_row(info), c.provider, c.zone or "-", str(len(s.nodes)), taints, s.health_message or "-")


HEADER = ("NAME", "REGION", "HEALTH", "PODS", "CPU FREE", "MEM FREE", "GPUS FREE", "LABELS")
WIDE = ("PROVIDER", "ZONE", "NODES", "TAINTS", "HEALTH MESSAGE")


def _print(clusters: Sequence[t.ClusterInfo], output: str | None, header: bool = True) -> None:
    if output in ("json", "yaml"):
        common.dump([common.plain(c) for c in clusters], output)
        return
    wide = output == "wide"
    rows = [(*HEADER, *WIDE) if wide else HEADER] if header else []
    if rows or clusters:
        table(rows + [_wide(c) if wide else _row(c) for c in clusters])
    sys.stdout.flush()


def _state(info: t.ClusterInfo) -> tuple[object, ...]:
    s = info.status
    return (s.health, s.health_message, s.cordoned, s.running_pods, s.cpu_millis_free, s.memory_bytes_free,
            tuple(sorted(s.gpus_free.items())), tuple(sorted(info.cluster.labels.items())))  # fmt: skip


async def _list(client: GatewayClient, args: argparse.Namespace) -> int:
    clusters = await client.list_clusters()
    _print(clusters, args.output)
    if not args.watch:
        return 0
    seen = {c.cluster.name: _state(c) for c in clusters}
    while True:
        await asyncio.sleep(WATCH_INTERVAL)
        clusters = await client.list_clusters()
        changed = [c for c in clusters if seen.get(c.cluster.name) != _state(c)]
        gone = set(seen) - {c.cluster.name for c in clusters}
        seen = {c.cluster.name: _state(c) for c in clusters}
        if args.output in ("json", "yaml"):
            for c in changed:
                print(json.dumps(common.plain(c)), flush=True)
        else:
            _print(changed, args.output, header=False)
        for name in sorted(gone):
            print(f"{name} deregistered", flush=True)


async def _describe(client: GatewayClient, args: argparse.Namespace) -> int:
    try:
        info = await client.get_cluster(args.name)
    except NotFound:
        names = [c.cluster.name for c in await client.list_clusters()]
        raise CommandError(common.unknown("cluster", args.name, names)) from None
    if args.output:
        common.dump(common.plain(info), args.output)
        return 0
    print(describe_text(info))
    return 0


def _gpus(s: t.ClusterStatus) -> str:
    by_type = [f"{kind}: {s.gpus_free.get(kind, 0)} of {n} free" for kind, n in sorted(s.gpus_total.items())]
    return ", ".join(by_type) or "none"


def describe_text(info: t.ClusterInfo) -> str:
    s, c = info.status, info.cluster
    health = str(s.health) + (f": {s.health_message}" if s.health_message else "")
    lines = [
        f"Name:         {c.name}",
        f"Provider:     {c.provider}",
        f"Region:       {c.region}" + (f" ({c.zone})" if c.zone else ""),
        f"Source:       {info.source or '-'}",
        f"Health:       {health}",
        f"Last probe:   {s.last_seen.isoformat() if s.last_seen else 'not yet'}",
        "Cordoned:     " + (f"yes: {s.cordon_reason}" if s.cordoned else "no"),
        f"Pods:         {s.running_pods} in flight" + (f" (at most {c.max_concurrent_pods})" if c.max_concurrent_pods else ""),
        f"Weight:       {c.weight}",
        *([f"Kubeconfigs:  {c.issued_server}"] if c.issued_server else []),
        f"Namespaces:   {', '.join(c.allowed_namespaces) or 'any'}",
        "Aliases:      " + (", ".join(c.aliases) or "-"),
        "Labels:       " + (", ".join(f"{k}={v}" for k, v in sorted(c.labels.items())) or "-"),
        "Taints:       " + (", ".join(str(x) for x in s.effective_taints) or "-"),
        f"Free:         cpu {s.cpu_millis_free / 1000:g}, memory {_gib(s.memory_bytes_free)}",
        "GPUs:         " + _gpus(s),
        "",
        "Nodes:",
    ]
    rows = [("  NAME", "SCHEDULABLE", "CPU", "MEMORY", "GPUS", "GPU TYPE")]
    rows += [
        (f"  {n.name}", "yes" if n.schedulable else "no",
         f"{n.cpu_millis_free / 1000:g}/{n.cpu_millis_allocatable / 1000:g}",
         f"{_gib(n.memory_bytes_free)}/{_gib(n.memory_bytes_allocatable)}",
         f"{n.gpus_free}/{n.gpus_allocatable}", n.gpu_type or "-")
        for n in s.nodes
    ]  # fmt: skip
    out = io.StringIO()
    table(rows, out)
    return "\n".join(lines) + "\n" + out.getvalue().rstrip()


async def _register(client: GatewayClient, args: argparse.Namespace) -> int:
    failed = 0
    for cluster in clusters_of_file(Path(args.file)):
        try:
            try:
                await client.register_cluster(cluster)
                print(f"registered {cluster.name}")
            except AlreadyExists:
                if not args.replace:
                    raise CommandError(
                        f"cluster {cluster.name!r} is already registered; add --replace to update it from {args.file}"
                    ) from None
                await client.update_cluster(cluster)
                print(f"updated {cluster.name}")
        except GatewayError as e:
            failed += 1
            said = common.message_of(e)
            where = "" if repr(cluster.name) in said else f"{cluster.name}: "
            print(f"podgate clusters register: {where}{said}", file=sys.stderr)
    return int(Exit.GATEWAY if failed else Exit.OK)


async def _deregister(client: GatewayClient, args: argparse.Namespace) -> int:
    await client.deregister_cluster(args.name, force=args.force)
    print(f"deregistered {args.name}")
    return 0


async def _cordon(client: GatewayClient, args: argparse.Namespace) -> int:
    info = await client.cordon_cluster(args.name, args.reason)
    print(f"{info.cluster.name} cordoned: {info.status.cordon_reason or args.reason}")
    return 0


async def _uncordon(client: GatewayClient, args: argparse.Namespace) -> int:
    info = await client.uncordon_cluster(args.name)
    print(f"{info.cluster.name} uncordoned")
    return 0


ACTIONS: dict[str, Callable[[GatewayClient, argparse.Namespace], Awaitable[int]]] = {
    "list": _list,
    "describe": _describe,
    "register": _register,
    "deregister": _deregister,
    "cordon": _cordon,
    "uncordon": _uncordon,
}


def clusters(args: argparse.Namespace) -> int:
    retry = common.STREAM_RETRY if getattr(args, "watch", False) else common.QUICK_RETRY
    return common.run_command(f"clusters {args.clusters_command}", args, ACTIONS[args.clusters_command], retry=retry)
