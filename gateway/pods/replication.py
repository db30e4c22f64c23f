"""One replica among several on a shared PostgreSQL store: its lease, takeovers, and the journal's push.

docs/decisions/0021-replica-leases.md. Every `renew_every` the replica renews its lease (one statement
for all its requests) and claims its share of the requests of replicas whose lease ran out, resuming them
as a restarted gateway does. It stops following everything it owns when it can no longer prove its lease
(the local deadline passed, or a renewal found it expired); the store's fence refuses any owner write
that was already on its way. The local deadline is kept by a timer, not by the lease loop: a round blocked
on an unreachable database (a claim waits it out up to 30 s) must not keep runners going past it. A LISTEN
connection wakes the journal followers when another replica appends, and starts a claim round at once
when one hands its requests over.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from gateway import domain
from gateway.observability import logging as logcontext
from gateway.store import lease

log = logging.getLogger(__name__)

CANCEL_REASON_CHARS = 1000  # a NOTIFY payload must stay under 8,000 bytes (CancelPod refuses longer reasons)
RELEASED = "released"  # a hand-over's payload (a journal one: lines of "<seq> <request id>[ <events>]")


class ReplicaStore(Protocol):
    def act_as(self, replica: str | None, channel: str = "") -> None: ...

    def disown(self, request_ids: Iterable[str]) -> None: ...

    async def register_replica(self, replica: str, listen: str, policy: lease.LeasePolicy) -> None: ...

    async def renew_replica(self, replica: str, policy: lease.LeasePolicy) -> bool: ...

    async def release_replica(self, replica: str) -> None: ...

    async def claim_orphans(self, replica: str) -> list[domain.PodRecord]: ...

    async def notify(self, channel: str, payload: str) -> None: ...

    @property
    def read_engine(self) -> Any: ...


def channel_for(gateway_id: str) -> str:
    """The NOTIFY channel of one gateway's replicas (an identifier PostgreSQL keeps whole: < 64 bytes)."""
    return ("podgate_" + re.sub(r"[^a-z0-9_]", "_", gateway_id.lower()))[:63]


class Replication:
    """`take` starts runners for claimed records; `drop` stops every runner (pods untouched) and returns
    the request ids; `wake` tells the journal a request has new events; `feed` hands it the events
    themselves when their notification carried them (their JSON array, gateway.store.replicas.feed)."""

    def __init__(
        self,
        store: ReplicaStore,
        *,
        gateway_id: str,
        listen: str,
        take: Callable[[list[domain.PodRecord]], None],
        drop: Callable[[], list[str]],
        wake: Callable[[str, int | None], None],
        feed: Callable[[str, int, str], None] | None = None,
        cancel: Callable[[str, str], None] = lambda request_id, reason: None,
        policy: lease.LeasePolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy or lease.LeasePolicy()
        self._store = store
        self._gateway_id = gateway_id
        self._listen = listen
        self._take = take
        self._drop = drop
        self._wake = wake
        self._feed = feed
        self._cancel = cancel
        self._clock = clock
        self.channel = channel_for(gateway_id)
        self.replica = ""
        self._deadline: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._listener: Any = None  # the SQLAlchemy connection holding LISTEN
        self._claim_now = asyncio.Event()
        self._leading = False
        self._expiry: asyncio.TimerHandle | None = None  # stops the runners at the local deadline

    async def start(self) -> None:
        await self._new_lease()
        await self._claim()
        await self._ensure_listener()
        self._task = logcontext.background(self._forever(), name="replica-lease")

    async def close(self, *, release: bool) -> None:
        """`release` (SIGTERM): the lease ends now and the others are told, so they claim at once."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._disarm()
        if release and self.replica:
            try:
                await self._store.release_replica(self.replica)
                log.info("replica %s released its requests to the other replicas", self.replica)
            except Exception as e:  # the database is gone: the lease runs out on its own
                log.warning("replica %s could not release its lease (%s); it expires on its own", self.replica, e)
        await self._close_listener()

    def may_act(self) -> bool:
        return lease.may_act(self._deadline, self._clock())

    async def round(self) -> None:
        """Renew (or take a new lease after losing it), then claim this replica's share of orphans."""
        if self._deadline is None:
            await self._new_lease()
        else:
            sent = self._clock()
            left = max(0.1, (self._deadline or sent) - sent)  # the store waits out an outage up to 30 s
            try:
                async with asyncio.timeout(left):  # not wait_for: on 3.11 it can swallow a cancel
                    renewed = await self._store.renew_replica(self.replica, self.policy)
            except Exception as e:
                log.warning("replica %s could not renew its lease: %s", self.replica, e)
                if not self.may_act():
                    self._lose("its lease could not be renewed in time")
                return
            if not self._holding():  # the timer stopped the runners while the renewal was on its way
                return  # the next round takes a new lease
            if not renewed:
                self._lose("its lease had expired when it renewed (paused or cut off from the database)")
                await self._new_lease()
            else:
                self._keep_until(lease.local_deadline(sent, self.policy))
        await self._claim()
        await self._ensure_listener()

    async def _forever(self) -> None:
        while True:
            # Not wait_for: on 3.11, a cancel (close) arriving as the event is set (a "released"
            # notification) is swallowed, the task runs on and close() waits for it forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.policy.renew_every):
                    await self._claim_now.wait()
            self._claim_now.clear()
            try:
                await self.round()
            except Exception as e:
                log.warning("replica %s: lease round failed (%s); retrying", self.replica, e)

    async def _new_lease(self) -> None:
        """A new name per lease: requests of an earlier lease of this process are claimed like anyone's."""
        self.replica = f"{self._gateway_id}-{secrets.token_hex(4)}"
        self._store.act_as(self.replica, self.channel)
        sent = self._clock()
        await self._store.register_replica(self.replica, self._listen, self.policy)
        self._keep_until(lease.local_deadline(sent, self.policy))
        log.info("replica %s holds its lease", self.replica)

    def _keep_until(self, deadline: float) -> None:
        """The lease may be acted on until `deadline` (self._clock's time); the timer enforces it."""
        self._deadline = deadline
        self._disarm()
        self._expiry = asyncio.get_running_loop().call_later(max(0.0, deadline - self._clock()), self._expire)

    def _holding(self) -> bool:
        """Whether the runners still run under the current lease (its timer or a failed renewal stops them)."""
        return self._deadline is not None

    def _expire(self) -> None:
        self._expiry = None
        if self._deadline is None:
            return
        if self.may_act():  # an injected clock that runs slower than the loop's: look again when it says
            self._keep_until(self._deadline)
            return
        self._lose("its lease ran out before a renewal came back (the database did not answer in time)")

    def _disarm(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None

    def _lose(self, why: str) -> None:
        if self._deadline is None:
            return  # already stopped (the timer came first)
        self._deadline = None
        self._disarm()
        dropped = self._drop()
        self._store.disown(dropped)
        self._store.act_as(None)
        log.warning(
            "replica %s stops following %d request(s): %s",
            self.replica, len(dropped), why, extra={"request_ids": dropped},
        )  # fmt: skip

    async def _claim(self) -> None:
        if not self.may_act():
            return
        claimed = await self._store.claim_orphans(self.replica)
        if not self._holding():
            return  # the timer stopped the runners while the claim waited: the next lease claims afresh
        if not self.may_act():
            # The claim outlived the lease (it waited out a database outage): the database may have
            # handed this replica its own requests, expired with its lease, under new fences while their
            # runners still run under the old ones (a runner's unwritten lines dropped as LeaseLost, its
            # stream read on past them: lines lost). Stop them all; the next lease claims afresh.
            self._lose("its lease ran out while it claimed requests (the database did not answer in time)")
            return
        if claimed:
            taken = [record.request.request_id for record in claimed]
            log.info("replica %s took over %d request(s)", self.replica, len(claimed), extra={"request_ids": taken})
            self._take(claimed)

    async def leads(self) -> bool:
        """Whether this replica runs the singletons (garbage collection, journal retention): it holds the
        gateway's session advisory lock on its LISTEN connection, released by PostgreSQL when that session
        ends (a dead replica's lock passes to another at its next try)."""
        await self._ensure_listener()
        if self._listener is None:
            return False
        if self._leading:
            return True
        raw = self._listener.sync_connection.connection.driver_connection
        try:
            self._leading = bool(await raw.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", self.channel))
        except Exception as e:
            log.warning("replica %s: cannot ask for the singleton lock (%s)", self.replica, e)
            return False
        if self._leading:
            log.info("replica %s runs garbage collection and journal retention", self.replica)
        return self._leading

    # --- LISTEN ------------------------------------------------------------------------------

    async def ask_owner_to_cancel(self, request_id: str, reason: str) -> None:
        """A cancel that reached a replica without the request's runner: the owner (whichever replica runs
        it) cancels it when told on the channel. The caller stored it first: an owner dying in that instant
        misses the notification, and whoever claims the request cancels it from the record."""
        payload = json.dumps({"cancel": request_id, "reason": reason[:CANCEL_REASON_CHARS]})
        await self._store.notify(self.channel, payload)

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload == RELEASED:
            self._claim_now.set()
            return
        if payload.startswith("{"):
            try:
                asked = json.loads(payload)
                self._cancel(str(asked["cancel"]), str(asked["reason"]))
            except (ValueError, KeyError, TypeError):
                log.warning("replica %s: unreadable notification ignored", self.replica)
            return
        for line in payload.split("\n"):  # a batch's notifications, one a line (pgpipeline.notices)
            seq, _, rest = line.partition(" ")
            request_id, _, events = rest.partition(" ")  # request ids have no spaces (the API checks them)
            if events and self._feed is not None and seq.isdigit():
                self._feed(request_id, int(seq), events)
            else:
                self._wake(request_id, int(seq) if seq.isdigit() else None)

    async def _ensure_listener(self) -> None:
        if self._listener is not None and not self._listener_closed():
            return
        await self._close_listener()
        try:
            conn = await self._store.read_engine.connect()
            raw = await conn.get_raw_connection()
            await raw.driver_connection.add_listener(self.channel, self._notified)
        except Exception as e:
            log.warning("replica %s: LISTEN failed (%s); journal followers poll slowly until it works", self.replica, e)
            return
        self._listener = conn

    def _listener_closed(self) -> bool:
        try:
            raw = self._listener.sync_connection.connection.driver_connection
            return bool(raw.is_closed())
        except Exception:
            return True

    async def _close_listener(self) -> None:
        conn, self._listener = self._listener, None
        self._leading = False  # the lock went with the session
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()
                await conn.close()
