"""PodTrack.wait under cancellation: a cancel that comes with a change is never lost.

A log follower loops on `wait`; had the cancel that stops it been swallowed (as `asyncio.wait_for`
does on Python 3.11 when the awaited event is set at the same moment), it would follow on forever.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from gateway import domain
from gateway.clusters import tracking
from gateway.clusters.tracking import PodTrack

T = datetime(2026, 12, 5, tzinfo=UTC)


@pytest.mark.parametrize("ticks", [0, 1, 2, 3])
async def test_a_cancel_right_after_a_change_cancels_the_wait(ticks: int) -> None:
    synced = asyncio.Event()
    synced.set()
    track = PodTrack(synced)
    waiting = asyncio.create_task(track.wait(30))
    await asyncio.sleep(0)
    track.poke()
    for _ in range(ticks):
        await asyncio.sleep(0)
    ended_before = waiting.done()
    waiting.cancel()
    try:
        await waiting
    except asyncio.CancelledError:
        return
    assert ended_before, "the wait returned normally after it was cancelled: the cancel was lost"


async def test_wait_returns_on_a_change_and_after_its_time() -> None:
    synced = asyncio.Event()
    track = PodTrack(synced)
    loop = asyncio.get_running_loop()
    start = loop.time()
    await track.wait(0.05)  # nothing changed: returns after its time
    assert loop.time() - start >= 0.04
    waiting = asyncio.create_task(track.wait(30))
    await asyncio.sleep(0)
    track.update({"metadata": {"name": "p"}})
    await asyncio.wait_for(waiting, 5)
    assert track.seen


async def test_a_change_a_log_follower_waited_for_is_left_for_the_pods_follower() -> None:
    track = PodTrack(asyncio.Event())
    looking = asyncio.create_task(track.wait_next(30))
    await asyncio.sleep(0)
    track.update({"metadata": {"name": "p"}})
    await asyncio.wait_for(looking, 5)
    async with asyncio.timeout(5):  # bounds a failure only: the change is still pending for it
        await track.wait(30)
    loop = asyncio.get_running_loop()
    start = loop.time()
    await track.wait_next(0.05)  # a change before the call is not the next one
    assert loop.time() - start >= 0.04


async def test_settling_waits_out_events_that_keep_coming() -> None:
    """Warning events trail a failed pod's status on their own watch: settling returns only once they stop."""
    track = PodTrack(asyncio.Event())
    settled = asyncio.create_task(track.settle_events(quiet=1.5, within=30))
    for i in range(3):  # 1.8 s of events, each within the quiet time of the one before
        await asyncio.sleep(0.6)
        assert not settled.done()
        track.add_event(("uid", i), domain.KubernetesEvent(time=T, type="Warning", reason="BackOff", message=f"{i}"))
    await asyncio.wait_for(settled, 30)
    assert [e.message for e in track.drain_events()] == ["0", "1", "2"]


async def test_a_change_is_taken_once_and_a_cancelled_wait_leaves_nothing_behind() -> None:
    """`wait` holds no Event (a bare future while it waits): a change before it is taken at once and only once,
    and a cancelled wait neither loses the next change nor keeps a timer that could end a later wait early."""
    track = PodTrack(asyncio.Event())
    loop = asyncio.get_running_loop()
    track.poke()
    async with asyncio.timeout(5):  # bounds a failure only: the change is pending, so this returns at once
        await track.wait(30)
    waiting = asyncio.create_task(track.wait(0.2))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    start = loop.time()
    await track.wait(0.3)  # taken already: waits its whole time, and the cancelled wait's 0.2 s timer is gone
    assert loop.time() - start >= 0.25
    later = asyncio.create_task(track.wait(30))
    await asyncio.sleep(0)
    track.add_event(("uid", 1), domain.KubernetesEvent(time=T, type="Normal", reason="Started", message=""))
    await asyncio.wait_for(later, 5)


async def test_a_wait_without_a_timer_ends_at_the_clusters_safety_net_wake_up() -> None:
    """A running pod's follower waits with no timer of its own (`wait(None)`): the cluster's one wake-up for all
    its tracks is the safety net that ends it even when the watch never reports a change."""
    tracks = {("default", f"p{i}"): PodTrack(asyncio.Event()) for i in range(3)}
    waits = [asyncio.create_task(track.wait(None)) for track in tracks.values()]
    await asyncio.sleep(0.05)
    assert not any(w.done() for w in waits)  # nothing changed, nothing poked, no timer: still waiting
    net = asyncio.create_task(tracking.wake_forever(tracks, 0.05))
    try:
        async with asyncio.timeout(10):  # bounds a failure only
            await asyncio.gather(*waits)
    finally:
        net.cancel()
