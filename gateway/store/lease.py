"""Replica leases and fencing, as pure decisions (docs/decisions/0021-replica-leases.md); no I/O, no clock.

Each replica holds one lease, a row it renews every `renew_every` seconds: one write per replica, however
many requests it owns. A request is owned by (owner, fence): the replica and a token that grows by one
at every change of owner. Every write a replica makes as owner is conditional on both, so once another
replica has taken the request over (fence + 1), the old owner's writes match nothing: it is fenced at the
store, and since the store is written before every effect on a cluster, at the cluster too.

Two clocks, never compared with each other:
- expiry is judged on the database's clock (`expires_at` and `now` from the same server), so replicas
  with skewed clocks agree on whose lease has run out;
- a replica judges its own lease on its monotonic clock, from when it *sent* its last successful
  renewal, and stops acting as owner `safety_margin` before that deadline: a replica paused or cut off
  from the database stops on its own before anyone may take over.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, kw_only=True)
class LeasePolicy:
    """Seconds. The defaults let two renewals in a row fail before a lease runs out."""

    duration: float = 15.0
    renew_every: float = 5.0
    safety_margin: float = 2.0  # covers a renewal's own latency and the two clocks' rates

    def __post_init__(self) -> None:
        if min(self.duration, self.renew_every, self.safety_margin) <= 0:
            raise ValueError("lease duration, renewal interval and safety margin must be positive")
        if self.renew_every + self.safety_margin >= self.duration:
            raise ValueError(
                f"a lease of {self.duration:g} s cannot be renewed every {self.renew_every:g} s with a safety margin "
                f"of {self.safety_margin:g} s: the owner would stop acting before its next renewal"
            )


def policy_for(lease_seconds: float) -> LeasePolicy:
    """The policy of a lease `lease_seconds` long: renewed every third of it, stopping 2/15 early (the
    defaults at 15 s)."""
    return LeasePolicy(duration=lease_seconds, renew_every=lease_seconds / 3, safety_margin=lease_seconds * 2 / 15)


@dataclass(frozen=True, kw_only=True)
class ReplicaLease:
    """A replica's lease as stored; `expires_at` is on the database's clock."""

    replica: str
    expires_at: datetime


@dataclass(frozen=True, kw_only=True)
class Ownership:
    """Who owns an unfinished request; `fence` grows by one at every change of owner."""

    owner: str
    fence: int


def expires_at(db_now: datetime, policy: LeasePolicy) -> datetime:
    """What a renewal made at `db_now` (the database's clock) writes."""
    return db_now + timedelta(seconds=policy.duration)


def expired(lease: ReplicaLease, db_now: datetime) -> bool:
    """A lease that ends exactly now has ended: taking over never overlaps the owner's last instant."""
    return lease.expires_at <= db_now


def local_deadline(renewal_sent: float, policy: LeasePolicy) -> float:
    """Monotonic time after which the replica must not act as owner unless a later renewal succeeded."""
    return renewal_sent + policy.duration - policy.safety_margin


def may_act(deadline: float | None, now: float) -> bool:
    """Whether the replica may still write as owner (None: it has never held its lease)."""
    return deadline is not None and now < deadline


def renewal_due(last_sent: float | None, now: float, policy: LeasePolicy) -> bool:
    return last_sent is None or now - last_sent >= policy.renew_every


def orphaned(leases: Iterable[ReplicaLease], *, me: str, db_now: datetime) -> list[str]:
    """Other replicas whose lease has run out, oldest expiry first: their requests are for the taking."""
    gone = [lease for lease in leases if lease.replica != me and expired(lease, db_now)]
    return [lease.replica for lease in sorted(gone, key=lambda lease: (lease.expires_at, lease.replica))]


def share(orphans: int, live_replicas: int) -> int:
    """How many orphaned requests one live replica claims per round, so that the survivors split a dead
    replica's requests instead of the fastest taking them all (at least one, while any are left)."""
    if orphans <= 0:
        return 0
    return max(1, math.ceil(orphans / max(1, live_replicas)))


def take_over(current: Ownership | None, new_owner: str) -> Ownership:
    """The ownership a claim writes: a new fence even when the same replica claims again (after a restart
    under the same name, its earlier incarnation must be fenced too)."""
    return Ownership(owner=new_owner, fence=(current.fence if current is not None else 0) + 1)


def accepts(stored: Ownership | None, writer: Ownership) -> bool:
    """Whether a write made as `writer` may apply to a request owned as `stored`: the exact owner and
    fence, never a lower or a higher fence, never an unowned request."""
    return stored is not None and stored == writer
