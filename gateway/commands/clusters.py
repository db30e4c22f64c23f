"""`podgate clusters ...`: list with health and free capacity, register files, deregister, cordon, uncordon."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from gateway.client import types as t
from gateway.client.client import GatewayClient
from gateway.client.errors import AlreadyExists, GatewayError
from gateway.commands.common import channel, fail, table


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


async def _list(client: GatewayClient, args: argparse.Namespace) -> int:
    clusters = await client.list_clusters()
    table([("NAME", "REGION", "HEALTH", "PODS", "CPU FREE", "MEM FREE", "GPUS FREE", "LABELS"), *map(_row, clusters)])
    return 0


def _taint(value: Any) -> t.Taint:
    if isinstance(value, dict):
        return t.Taint(key=value["key"], value=value.get("value", ""), effect=value.get("effect", "NoSelect"))
    keyvalue, _, effect = str(value).partition(":")
    key, _, val = keyvalue.partition("=")
    return t.Taint(key=key, value=val, effect=effect or "NoSelect")


def clusters_of_file(path: Path) -> list[t.Cluster]:
    """Registrations from a cluster file (the `sim:` block, read by the simulator, is left out)."""
    try:
        import yaml
    except ImportError:
        raise SystemExit("podgate clusters register needs PyYAML: pip install pyyaml") from None
    document = yaml.safe_load(path.read_text()) or {}
    entries = document.get("clusters", [document] if document.get("kind") == "Cluster" else [])
    return [
        t.Cluster(
            name=e.get("name", ""),
            provider=e.get("provider", ""),
            region=e.get("region", ""),
            credentials=e.get("credentials") or {},
            zone=e.get("zone", ""),
            labels=e.get("labels") or {},
            taints=tuple(_taint(x) for x in e.get("taints") or ()),
            allowed_namespaces=tuple(e.get("allowedNamespaces") or ()),
            max_concurrent_pods=int(e.get("maxConcurrentPods") or 0),
            weight=int(e.get("weight") or 100),
        )
        for e in entries
    ]


async def _register(client: GatewayClient, args: argparse.Namespace) -> int:
    failed = 0
    for cluster in clusters_of_file(Path(args.file)):
        try:
            try:
                await client.register_cluster(cluster)
                print(f"registered {cluster.name}")
            except AlreadyExists:
                await client.update_cluster(cluster)
                print(f"updated {cluster.name}")
        except GatewayError as e:
            failed += 1
            print(f"{cluster.name}: {e}", file=sys.stderr)
    return 1 if failed else 0


async def _deregister(client: GatewayClient, args: argparse.Namespace) -> int:
    await client.deregister_cluster(args.name)
    print(f"deregistered {args.name}")
    return 0


async def _cordon(client: GatewayClient, args: argparse.Namespace) -> int:
    info = await client.cordon_cluster(args.name, "cordoned with podgate clusters cordon")
    print(f"{info.cluster.name} cordoned")
    return 0


async def _uncordon(client: GatewayClient, args: argparse.Namespace) -> int:
    info = await client.uncordon_cluster(args.name)
    print(f"{info.cluster.name} uncordoned")
    return 0


ACTIONS: dict[str, Callable[[GatewayClient, argparse.Namespace], Awaitable[int]]] = {
    "list": _list,
    "register": _register,
    "deregister": _deregister,
    "cordon": _cordon,
    "uncordon": _uncordon,
}


def clusters(args: argparse.Namespace) -> int:
    async def go() -> int:
        async with GatewayClient(channel(args)) as client:
            return await ACTIONS[args.clusters_command](client, args)

    try:
        return asyncio.run(go())
    except GatewayError as e:
        return fail(f"clusters {args.clusters_command}", e)
