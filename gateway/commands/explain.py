"""`podgate explain`: where a pod with these constraints would go, and why, for every cluster (a dry run)."""

from __future__ import annotations

import argparse

from gateway.client.client import GatewayClient
from gateway.commands import common
from gateway.commands.common import Exit, table
from gateway.commands.podspec import spec_request
from gateway.commands.run import check_names


def would_be(reason: str) -> str:
    """The gateway words a decision as done ("placed on ..."); a dry run says what would happen."""
    return "would be placed on " + reason[len("placed on ") :] if reason.startswith("placed on ") else reason


async def _explain(client: GatewayClient, args: argparse.Namespace) -> int:
    request = spec_request(args)
    await check_names(client, request)
    decision = await client.explain_placement(request)
    print(would_be(decision.reason))
    rows = [("CLUSTER", "REGION", "VERDICT", "SCORE", "REASON")]
    rows += [
        (("* " if v.chosen else "  ") + v.cluster, v.region, str(v.verdict), f"{v.score:.1f}", v.reason)
        for v in decision.verdicts
    ]
    table(rows)
    return int(Exit.OK if decision.cluster else Exit.PLACEMENT)


def explain(args: argparse.Namespace) -> int:
    return common.run_command("explain", args, _explain)
