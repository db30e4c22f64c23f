"""The end of a followed pod's log tasks: waiting for the ones still reading, and only for them.

A pod's result waits for its logs to be read to their end (`LogTasks.drain`, twice: the main container's, then
all), and following ends by stopping its log tasks (`LogTasks.stop`). Logs read to their end already cost no
wait, no timer and no turn of the event loop there; one still reading is waited for (drain) or cancelled (stop),
and the error of one that failed is taken, never reported later as an exception nobody retrieved.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, cast

import pytest

from gateway import domain
from gateway.clusters.tracking import PodTrack
from gateway.pods.logtasks import LogTasks
from tests.unit.pod_fakes import FakeCluster


def log_tasks(tasks: dict[str, asyncio.Task[None]]) -> LogTasks:
    request = domain.PodRequest(request_id="r1", pod={"spec": {"containers": [{"name": "main"}, {"name": "side"}]}})
    record = domain.PodRecord(request=request, phase=domain.PodPhase.RUNNING, cluster="a", namespace="default", name="p")
    logs = LogTasks(record, FakeCluster("a"), PodTrack(asyncio.Event()), cast(Any, None), cast(Any, None), {})
    logs.tasks.update(tasks)
    return logs


async def ended(fails: bool) -> None:
    if fails:
        raise RuntimeError("the follower failed")


async def settled(*fails: bool) -> dict[str, asyncio.Task[None]]:
    tasks = {f"c{i}": asyncio.create_task(ended(fail)) for i, fail in enumerate(fails)}
    await asyncio.wait(tasks.values())
    return tasks


def runs_through(coro: Coroutine[Any, Any, None]) -> bool:
    """Whether `coro` ends without suspending once (no wait, no turn of the loop)."""
    try:
        coro.send(None)
    except StopIteration:
        return True
    coro.close()
    return False


@pytest.mark.parametrize("containers", [None, ["c0"]])
async def test_draining_logs_read_to_their_end_does_not_suspend(containers: list[str] | None) -> None:
    logs = log_tasks(await settled(False, False))
    assert runs_through(logs.drain(containers))


async def test_stopping_ended_log_tasks_does_not_suspend_and_takes_their_errors() -> None:
    unretrieved: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: unretrieved.append(context))
    logs = log_tasks(await settled(False, True))
    assert runs_through(logs.stop())
    logs.tasks.clear()
    del logs
    gc.collect()
    await asyncio.sleep(0)
    assert unretrieved == []


async def test_draining_waits_for_a_log_still_read_and_only_for_the_named_ones() -> None:
    release = asyncio.Event()

    async def reading() -> None:
        await release.wait()

    tasks = await settled(False)
    tasks["c1"] = asyncio.create_task(reading())
    logs = log_tasks(tasks)
    assert runs_through(logs.drain(["c0"]))  # the named log has ended: the other one is not waited for
    drained = asyncio.create_task(logs.drain())
    await asyncio.sleep(0)
    assert not drained.done()
    release.set()
    await asyncio.wait_for(drained, 5)
    assert tasks["c1"].done() and not tasks["c1"].cancelled()


async def test_stopping_cancels_a_log_still_read_and_waits_for_it() -> None:
    started, stopped = asyncio.Event(), asyncio.Event()

    async def reading() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    tasks = await settled(True)
    tasks["c1"] = asyncio.create_task(reading())
    await started.wait()
    await log_tasks(tasks).stop()
    assert tasks["c1"].cancelled() and stopped.is_set()
