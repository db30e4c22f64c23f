"""`podgate kubeconfig`: a short-lived, namespace-scoped kubeconfig, printed (or written with mode 0600);
`podgate kubeconfig revoke ID` revokes one before it expires."""

from __future__ import annotations

import argparse
import os
import re
import sys

from gateway.client.client import GatewayClient
from gateway.client.types import KubeconfigAccess
from gateway.commands import common
from gateway.commands.common import CommandError

_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_ttl(text: str) -> int:
    """Seconds from "900", "900s", "15m" or "1h"."""
    match = re.fullmatch(r"(\d+)([smh]?)", text.strip())
    if not match:
        raise CommandError(f"--ttl wants a duration like 15m, 1h or 900s, got {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]


async def _issue(client: GatewayClient, args: argparse.Namespace) -> int:
    missing = [flag for flag in ("cluster", "namespace") if not getattr(args, flag)]
    if missing:
        raise CommandError(" and ".join(f"--{m}" for m in missing) + " required (or `kubeconfig revoke ID`)")
    issued = await client.issue_kubeconfig(
        args.cluster, args.namespace, ttl=parse_ttl(args.ttl), access=KubeconfigAccess(args.access)
    )
    if args.output:
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(issued.kubeconfig)
    else:
        sys.stdout.write(issued.kubeconfig)
    print(
        f"expires {issued.expire_time}; revoke with `podgate kubeconfig revoke {issued.credential_id}`",
        file=sys.stderr,
    )
    return 0


async def _revoke(client: GatewayClient, args: argparse.Namespace) -> int:
    await client.revoke_kubeconfig(args.credential_id)
    print(f"revoked {args.credential_id}")
    return 0


def kubeconfig(args: argparse.Namespace) -> int:
    if args.kubeconfig_command == "revoke":
        return common.run_command("kubeconfig revoke", args, _revoke)
    return common.run_command("kubeconfig", args, _issue)
