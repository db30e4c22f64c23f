"""The replica's lease loop (gateway.pods.replication) against a store of our own: what it does when
closed at the moment a notification wakes it, and when a claim outlives its lease."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from gateway import domain
from gateway.pods.replication import RELEASED, Replication
from gateway.store import lease


class Leases:
    """A ReplicaStore that grants every lease and has nothing to claim."""

    def __init__(self) -> None:
        self.renewals = 0

    def act_as(self, replica: str | None, channel: str = "") -> None:
        pass

    def disown(self, request_ids: Iterable[str]) -> None:
        pass

    async def register_replica(self, replica: str, listen: str, policy: lease.LeasePolicy) -> None:
        pass

    async def renew_replica(self, replica: str, policy: lease.LeasePolicy) -> bool:
        self.renewals += 1
        return True

    async def release_replica(self, replica: str) -> None:
        pass

    async def claim_orphans(self, replica: str) -> list[domain.PodRecord]:
        return []

    async def notify(self, channel: str, payload: str) -> None:
        pass

    @property
    def read_engine(self) -> Any:
        raise ConnectionError("no LISTEN here")  # the replica logs it and goes on without


async def test_closing_as_a_released_notification_wakes_the_lease_loop_ends_it() -> None:
    """A replica closed in the loop turn in which another's hand-over woke its lease loop: on 3.11 the
    loop's `wait_for` returned the event and swallowed the cancel, and close() waited for the loop forever
    (tests/integration/test_store_replicas.py's singleton test hung so under load)."""
    store = Leases()
    replication = Replication(
        store, gateway_id="gw", listen="", take=lambda records: None, drop=list, wake=lambda request_id, seq: None
    )
    await replication.start()
    for _ in range(3):  # the loop is waiting for its next round or a notification
        await asyncio.sleep(0)
    replication._notified(None, 0, replication.channel, RELEASED)  # no await between the two
    async with asyncio.timeout(10):  # bounds the failure only
        await replication.close(release=False)
    assert replication._task is not None and replication._task.done()


def running(request_ids: list[str]) -> list[domain.PodRecord]:
    return [
        domain.PodRecord(request=domain.PodRequest(request_id=rid, pod={}), phase=domain.PodPhase.RUNNING,
                         created_at=datetime.now(UTC))
        for rid in request_ids
    ]  # fmt: skip


class SlowClaims(Leases):
    """Its claim answers only after the claimer's lease ran out (a database outage waited out), and hands
    the claimer its own requests, expired with its lease: what PostgreSQL did in
    tests/e2e/test_replicas_outage.py when the outage began during a claim."""

    def __init__(self, now: list[float], own: list[str]) -> None:
        super().__init__()
        self.now, self.own, self.claims = now, own, 0

    async def claim_orphans(self, replica: str) -> list[domain.PodRecord]:
        self.claims += 1
        if self.claims == 1:
            return []  # at start: nothing to claim yet
        if self.claims == 2:
            self.now[0] += 60.0  # the outage, waited out
        return running(self.own)


async def test_a_claim_that_outlives_the_lease_stops_every_runner_and_takes_nothing() -> None:
    """The replica's runners still run its requests under the old fences: taking the claimed ones (or
    keeping the runners) read their logs on past the lines they could no longer write (lines 3-24 of a
    request lost in the outage test). It stops them all and takes nothing; the next lease claims afresh."""
    now, following = [1000.0], ["r1", "r2"]
    taken: list[list[str]] = []
    dropped: list[list[str]] = []

    def drop() -> list[str]:
        dropped.append(list(following))
        return list(following)

    store = SlowClaims(now, following)
    replication = Replication(
        store, gateway_id="gw", listen="", take=lambda records: taken.append([r.request.request_id for r in records]),
        drop=drop, wake=lambda request_id, seq: None, clock=lambda: now[0],
    )  # fmt: skip
    await replication.start()
    assert replication.may_act() and store.claims == 1
    first_lease = replication.replica
    await replication.round()  # renews, then claims: the claim answers after the lease ran out
    assert store.claims == 2
    assert taken == [] and dropped == [["r1", "r2"]]
    assert not replication.may_act()
    await replication.round()  # a new lease, which claims afresh
    assert replication.replica != first_lease and replication.may_act()
    assert taken == [["r1", "r2"]]
    await replication.close(release=False)


def test_a_batchs_notification_reaches_each_of_its_requests_watchers_in_order() -> None:
    """One payload for a batch of writes (gateway.store.pgpipeline.notices), a line a write: each line is
    handled as a notification of its own was, events handed over when carried, a wake-up when not."""
    fed: list[tuple[str, int, str]] = []
    woken: list[tuple[str, int | None]] = []
    replication = Replication(
        Leases(), gateway_id="gw", listen="", take=lambda records: None, drop=list,
        wake=lambda request_id, seq: woken.append((request_id, seq)),
        feed=lambda request_id, seq, events: fed.append((request_id, seq, events)),
    )  # fmt: skip
    payload = '3 r1 [{"i":1,"text":"a b"}]\n1 r2\n4 r1 [{"i":1}]\n7 r3 []'
    replication._notified(None, 0, replication.channel, payload)
    assert fed == [("r1", 3, '[{"i":1,"text":"a b"}]'), ("r1", 4, '[{"i":1}]'), ("r3", 7, "[]")]
    assert woken == [("r2", 1)]


class BlockedClaims(Leases):
    """Its second claim waits until the test lets it answer, with the claimer's own requests: a database
    outage that a claim waits out (the pod writer waits up to 30 s for an unreachable database)."""

    def __init__(self, own: list[str]) -> None:
        super().__init__()
        self.own, self.claims = own, 0
        self.waiting = asyncio.Event()
        self.answer = asyncio.Event()

    async def claim_orphans(self, replica: str) -> list[domain.PodRecord]:
        self.claims += 1
        if self.claims != 2:
            return []
        self.waiting.set()
        await self.answer.wait()
        return running(self.own)


async def test_the_runners_stop_at_the_local_deadline_while_a_claim_still_waits_for_the_database() -> None:
    """The lease loop, blocked in a claim across a database outage, checked the deadline only when the claim
    came back: the runners ran on past it, and the other replica (its own claim answered first once the
    database was back) took their requests over while this one still followed them (two owners of one
    request in tests/e2e/test_replicas_outage.py under load). The timer stops them at the deadline."""
    policy = lease.LeasePolicy(duration=1.0, renew_every=0.3, safety_margin=0.3)
    following = ["r1", "r2"]
    dropped: list[list[str]] = []
    taken: list[list[str]] = []
    stopped = asyncio.Event()

    def drop() -> list[str]:
        dropped.append(list(following))
        stopped.set()
        return list(following)

    store = BlockedClaims(following)
    replication = Replication(
        store, gateway_id="gw", listen="", take=lambda records: taken.append([r.request.request_id for r in records]),
        drop=drop, wake=lambda request_id, seq: None, policy=policy,
    )  # fmt: skip
    await replication.start()
    first_lease = replication.replica
    async with asyncio.timeout(10):  # bounds a failure only
        await store.waiting.wait()  # the lease loop's next round: renewed, now in the claim that waits
        await stopped.wait()
    assert dropped == [["r1", "r2"]] and not replication.may_act()
    assert store.claims == 2  # the claim is still waiting: the timer, not the claim's return, stopped them
    store.answer.set()  # the database answers: the stale claim's requests are not taken, nothing dropped twice
    await replication.round()  # the next round: a new lease, which claims afresh
    assert replication.replica != first_lease and replication.may_act()
    assert taken == [] and dropped == [["r1", "r2"]]
    await replication.close(release=False)
