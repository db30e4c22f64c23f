"""`podgate kubeconfig`: a short-lived, namespace-scoped kubeconfig, printed (or written with mode 0600)."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys

from gateway.client.client import GatewayClient
from gateway.client.errors import GatewayError
from gateway.client.types import KubeconfigAccess
from gateway.commands.common import channel, fail

_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_ttl(text: str) -> int:
    """Seconds from "900", "900s", "15m" or "1h"."""
    match = re.fullmatch(r"(\d+)([smh]?)", text.strip())
    if not match:
        raise SystemExit(f"--ttl wants a duration like 15m, 1h or 900s, got {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]


async def _issue(args: argparse.Namespace) -> int:
    async with GatewayClient(channel(args)) as client:
        issued = await client.issue_kubeconfig(
            args.cluster, args.namespace, ttl=parse_ttl(args.ttl), access=KubeconfigAccess(args.access)
        )
    if args.output:
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(issued.kubeconfig)
    else:
        sys.stdout.write(issued.kubeconfig)
    print(f"expires {issued.expire_time}; revoke with credential id {issued.credential_id}", file=sys.stderr)
    return 0


def kubeconfig(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_issue(args))
    except GatewayError as e:
        return fail("kubeconfig", e)
