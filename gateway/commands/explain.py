"""`podgate explain`: where a pod with these constraints would go, and why, for every cluster."""

from __future__ import annotations

import argparse
import asyncio

from gateway.client.client import GatewayClient
from gateway.client.errors import GatewayError
from gateway.commands.common import channel, fail, spec_request, table


async def _explain(args: argparse.Namespace) -> int:
    async with GatewayClient(channel(args)) as client:
        decision = await client.explain_placement(spec_request(args))
    print(decision.reason)
    rows = [("CLUSTER", "REGION", "VERDICT", "SCORE", "REASON")]
    rows += [
        (("* " if v.chosen else "  ") + v.cluster, v.region, str(v.verdict), f"{v.score:.1f}", v.reason)
        for v in decision.verdicts
    ]
    table(rows)
    return 0 if decision.cluster else 1


def explain(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_explain(args))
    except GatewayError as e:
        return fail("explain", e)
