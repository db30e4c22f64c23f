"""The replica's lease loop (gateway.pods.replication) against a store of our own: what it does when
closed at the moment a notification wakes it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
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
