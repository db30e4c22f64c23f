"""`podgate pods list|get` and `podgate cancel`: the gateway's pod records, as tables or -o json|yaml|name."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import AsyncIterator, Mapping, Sequence

from gateway.client import types as t
from gateway.client.client import GatewayClient
from gateway.commands import common
from gateway.commands.common import CommandError, age, table
from gateway.commands.streams import history

_PHASES = {p.value.lower(): p for p in t.PodPhase if p is not t.PodPhase.UNSPECIFIED}
_REQUIREMENT = re.compile(r"^\s*(?P<key>[A-Za-z0-9._/-]+)\s*(?:(?P<op>!=|==|=)\s*(?P<value>[A-Za-z0-9._-]*))?\s*$")
WATCH_INTERVAL = 1.0


def phases_of(names: Sequence[str]) -> tuple[t.PodPhase, ...]:
    out = []
    for item in names:
        for name in filter(None, (n.strip() for n in item.split(","))):
            if name.lower() not in _PHASES:
                raise CommandError(common.unknown("phase", name, [p.value for p in _PHASES.values()]))
            out.append(_PHASES[name.lower()])
    return tuple(out)


def label_filter(selector: str) -> list[tuple[str, str, str]]:
    """kubectl's equality-based selector: "a=b,c!=d,e" (e: the label exists)."""
    out = []
    for part in filter(None, (p.strip() for p in selector.split(","))):
        m = _REQUIREMENT.match(part)
        if not m:
            raise CommandError(f"label selector {part!r}: expected key=value, key!=value or key")
        out.append((m["key"], m["op"] or "exists", m["value"] or ""))
    return out


def labels_match(labels: Mapping[str, str], requirements: Sequence[tuple[str, str, str]]) -> bool:
    for key, op, value in requirements:
        if op == "exists" and key not in labels:
            return False
        if op in ("=", "==") and labels.get(key) != value:
            return False
        if op == "!=" and labels.get(key) == value:
            return False
    return True


async def _pods(client: GatewayClient, args: argparse.Namespace) -> list[t.PodInfo]:
    """Every record the filters select, newest first, at most --limit; namespace, label and tenant are
    filtered here (the gateway filters cluster, phase and DAG)."""
    phases = phases_of(args.phase)
    requirements = label_filter(args.selector)
    out: list[t.PodInfo] = []
    token = ""
    while len(out) < args.limit:
        page = await client.list_pods(
            page_size=100, page_token=token, cluster=args.cluster, phases=phases, dag_id=args.dag
        )
        out += [
            p
            for p in page.pods
            if (not args.namespace or p.namespace == args.namespace)
            and (not args.tenant or p.tenant == args.tenant)
            and labels_match(p.labels, requirements)
        ]
        token = page.next_page_token
        if not token:
            break
    return out[: args.limit]


def _exit(p: t.PodInfo) -> str:
    return str(p.result.exit_code) if p.result is not None and p.result.exit_code >= 0 else "-"


def _row(p: t.PodInfo, wide: bool) -> tuple[str, ...]:
    row = (p.request_id, str(p.phase), p.cluster or "-", p.namespace or "-", p.name or "-", age(p.create_time))
    if not wide:
        return row
    reason = (p.result.reason if p.result else "") or "-"
    task = f"{p.airflow.dag_id}.{p.airflow.task_id}" if p.airflow else "-"
    labels = ",".join(f"{k}={v}" for k, v in sorted(p.labels.items())) or "-"
    return (*row, p.region or "-", p.tenant or "-", _exit(p), reason, task, labels)


HEADER = ("REQUEST ID", "PHASE", "CLUSTER", "NAMESPACE", "POD", "AGE")
WIDE = ("REGION", "TENANT", "EXIT", "REASON", "AIRFLOW TASK", "LABELS")


def _print(pods: Sequence[t.PodInfo], output: str, header: bool = True) -> None:
    if output == "name":
        for p in pods:
            print(p.request_id)
    elif output in ("json", "yaml"):
        common.dump([common.plain(p) for p in pods], output)
    elif pods or header:
        wide = output == "wide"
        rows = [(*HEADER, *WIDE) if wide else HEADER] if header else []
        table(rows + [_row(p, wide) for p in pods])
    sys.stdout.flush()


async def _changes(client: GatewayClient, args: argparse.Namespace) -> AsyncIterator[list[t.PodInfo]]:
    """The selected pods, then every poll's new or changed ones (ListPods has no watch of its own)."""
    seen: dict[str, t.PodPhase] = {}
    while True:
        pods = await _pods(client, args)
        changed = [p for p in reversed(pods) if seen.get(p.request_id) != p.phase]
        seen.update((p.request_id, p.phase) for p in pods)
        yield changed
        await asyncio.sleep(WATCH_INTERVAL)


async def list_pods(client: GatewayClient, args: argparse.Namespace) -> int:
    if not args.watch:
        _print(await _pods(client, args), args.output)
        return 0
    first = True
    async for changed in _changes(client, args):
        if args.output in ("json", "yaml"):
            for p in changed:
                print(json.dumps(common.plain(p)), flush=True)
        else:
            _print(changed if not first else list(reversed(changed)), args.output, header=first)
        first = False
    return 0


def _result_line(r: t.PodResult) -> str:
    parts = [str(r.phase)]
    if r.exit_code >= 0:
        parts.append(f"exit code {r.exit_code}")
    if r.reason:
        parts.append(r.reason)
    return ", ".join(parts) + (f": {r.message}" if r.message and not r.succeeded else "")


async def get_pod(client: GatewayClient, args: argparse.Namespace) -> int:
    pod = await common.require_pod(client, args.request_id)
    events = [e.event for e in await history(client, pod, (t.Notice,)) if isinstance(e, t.Notice)]
    if args.output in ("json", "yaml"):
        common.dump({**common.plain(pod), "events": common.plain(events)}, args.output)
        return 0
    fields = [
        ("Request", pod.request_id),
        ("Tenant", pod.tenant or "-"),
        ("Phase", str(pod.phase)),
        ("Pod", f"{pod.namespace}/{pod.name}" if pod.name else "-"),
        ("Cluster", f"{pod.cluster} ({pod.region})" if pod.cluster else "-"),
        ("Created", pod.create_time.isoformat() if pod.create_time else "-"),
        ("Finished", pod.finish_time.isoformat() if pod.finish_time else "-"),
        ("Labels", ",".join(f"{k}={v}" for k, v in sorted(pod.labels.items())) or "-"),
    ]
    if pod.airflow:
        a = pod.airflow
        fields.append(("Airflow", f"{a.dag_id}.{a.task_id} run {a.run_id} map {a.map_index} try {a.try_number}"))
    if pod.result is not None:
        fields.append(("Result", _result_line(pod.result)))
        xcom = pod.result.xcom_json
        fields.append(("XCom", xcom if xcom is not None else "-"))
    table([(f"{k}:", v) for k, v in fields])
    if pod.placement is not None:
        print(f"\nPlacement: {pod.placement.reason}")
        verdicts = [
            (("* " if v.chosen else "  ") + v.cluster, v.region, str(v.verdict), f"{v.score:.1f}", v.reason)
            for v in pod.placement.verdicts
        ]
        table([("  CLUSTER", "REGION", "VERDICT", "SCORE", "REASON"), *verdicts])
    if pod.result is not None and pod.result.containers:
        print("\nContainers:")
        rows: list[tuple[str, ...]] = [(f"  {c.name}", str(c.exit_code), c.reason or "-", c.message or "") for c in pod.result.containers]
        table([("  NAME", "EXIT", "REASON", "MESSAGE"), *rows])
    print("\nEvents:" + ("" if events else " none"))
    if events:
        rows = [("  TIME", "TYPE", "REASON", "COUNT", "MESSAGE")]
        rows += [(f"  {e.time.isoformat() if e.time else '-'}", e.type, e.reason, f"x{e.count}", e.message) for e in events]
        table(rows)
    return 0


async def cancel(client: GatewayClient, args: argparse.Namespace) -> int:
    before = await common.require_pod(client, args.request_id)
    if before.phase.finished:
        print(f"{before.request_id} had already finished ({before.phase}); nothing to cancel")
        return 0
    pod = await client.cancel_pod(args.request_id, args.reason)
    where = f" (pod {pod.namespace}/{pod.name} on {pod.cluster})" if pod.name else ""
    print(f"cancelled {pod.request_id}{where}: {pod.phase}")
    return 0


ACTIONS = {"list": list_pods, "get": get_pod}


def pods(args: argparse.Namespace) -> int:
    retry = common.STREAM_RETRY if getattr(args, "watch", False) else common.QUICK_RETRY
    return common.run_command(f"pods {args.pods_command}", args, ACTIONS[args.pods_command], retry=retry)


def cancel_command(args: argparse.Namespace) -> int:
    return common.run_command("cancel", args, cancel)
