"""What the run and explain commands share: turning flags into a PodSpecRequest, and printing tables."""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.client.channel import ChannelSpec
from gateway.client.request import PodSpecRequest, XcomMode

EXIT_GATEWAY_ERROR = 2


TOKEN_ENV = "PODGATE_TOKEN"  # noqa: S105 (the variable's name, not a token)


def channel(args: argparse.Namespace) -> ChannelSpec:
    """The gateway flags; the bearer token comes from --token-file or $PODGATE_TOKEN, never from argv
    (where `ps` would show it)."""
    token = os.environ.get(TOKEN_ENV, "")
    token_file = getattr(args, "token_file", None)
    if token_file:
        try:
            token = Path(token_file).read_text().strip()
        except OSError as e:
            raise SystemExit(f"podgate: cannot read --token-file {token_file}: {e.strerror or e}") from None
    return ChannelSpec(
        address=args.gateway,
        tls=bool(getattr(args, "tls", False)),
        ca_file=getattr(args, "ca_file", None) or "",
        cert_file=getattr(args, "cert_file", None) or "",
        key_file=getattr(args, "key_file", None) or "",
        token=token,
    )


def pod_manifest(args: argparse.Namespace, command: Sequence[str]) -> dict[str, Any]:
    env = []
    for item in getattr(args, "env", []):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--env wants KEY=VALUE, got {item!r}")
        env.append({"name": key, "value": value})
    container: dict[str, Any] = {"name": "base", "image": getattr(args, "image", "") or "busybox"}
    if command:
        container["command"] = list(command)
    if env:
        container["env"] = env
    if args.gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(args.gpus)}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "podgate-run", "namespace": args.namespace},
        "spec": {"containers": [container]},
    }


def spec_request(args: argparse.Namespace, command: Sequence[str] = ()) -> PodSpecRequest:
    return PodSpecRequest.build(
        request_id=f"cli-{uuid.uuid4().hex}",
        pod=pod_manifest(args, command),
        cluster_selector=args.select or None,
        regions=args.region,
        clusters=args.cluster,
        xcom=XcomMode.AUTO,
        placement_timeout=getattr(args, "placement_timeout", None),
    )


def table(rows: Sequence[Sequence[str]], out: Any = None) -> None:
    out = out or sys.stdout
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(), file=out)


def fail(command: str, error: Exception) -> int:
    print(f"podgate {command}: {error}", file=sys.stderr)
    return EXIT_GATEWAY_ERROR
