"""RunState's cancel: a flag for the checks, an Event made only for a run that waits on it (0.74 KiB a pod)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from gateway import domain
from gateway.pods.runstate import RunState


def state() -> RunState:
    request = domain.PodRequest(request_id="req-1", pod={"metadata": {"name": "p"}, "spec": {"containers": []}})
    return RunState(domain.PodRecord(request=request, phase=domain.PodPhase.QUEUED, created_at=datetime.now(UTC)))


async def test_a_cancel_before_anyone_waits_makes_no_event_and_the_event_made_later_is_set() -> None:
    run = state()
    assert not run.is_cancelled and run._cancelled is None
    run.cancel("")
    assert run.is_cancelled and run.cancel_reason == "cancelled by the caller"
    assert run._cancelled is None
    await asyncio.wait_for(run.cancelled.wait(), timeout=5)


async def test_a_waiter_is_woken_by_a_later_cancel() -> None:
    run = state()
    waiter = asyncio.create_task(run.cancelled.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    run.cancel("stop")
    await asyncio.wait_for(waiter, timeout=5)
    assert run.cancel_reason == "stop"
