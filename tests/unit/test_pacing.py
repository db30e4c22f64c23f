"""Which requests take one of a cluster's bounded slots (gateway/clusters/kubeapi/pacing.py)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.clusters.kubeapi.pacing import Lanes, Pacing
from gateway.clusters.kubeapi.request import Request


@pytest.mark.parametrize(
    ("method", "bounded"), [("DELETE", True), ("POST", False), ("GET", False), ("PATCH", False), ("PUT", False)]
)
async def test_deletes_take_a_slot_and_nothing_else_does(method: str, bounded: bool) -> None:
    lanes = Lanes(Pacing(deletes=1))
    async with lanes.slot(Request(method="DELETE", path="/api/v1/namespaces/d/pods/held")):
        second = asyncio.ensure_future(_enter(lanes, Request(method=method, path="/api/v1/namespaces/d/pods/p")))
        await asyncio.sleep(0)  # one loop turn: an unbounded request is through, a bounded one waits for the slot
        assert second.done() is not bounded
    await second


@pytest.mark.parametrize("deletes", [0, -1])
def test_a_bound_below_one_is_refused(deletes: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Pacing(deletes=deletes)


async def _enter(lanes: Lanes, request: Request) -> None:
    async with lanes.slot(request):
        pass
