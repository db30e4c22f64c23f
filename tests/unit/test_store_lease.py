"""Replica leases and fencing as tables: expiry on the database's clock, self-fencing on the replica's
own monotonic clock, fair claims, and that no stale owner's write is ever accepted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.store.lease import (
    LeasePolicy,
    Ownership,
    ReplicaLease,
    accepts,
    expired,
    expires_at,
    local_deadline,
    may_act,
    orphaned,
    renewal_due,
    share,
    take_over,
)

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
POLICY = LeasePolicy(duration=15, renew_every=5, safety_margin=2)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("duration", "renew_every", "margin", "error"),
    [
        (15, 5, 2, None),
        (10, 5, 5, "cannot be renewed every 5 s with a safety margin of 5 s"),
        (10, 9, 2, "the owner would stop acting before its next renewal"),
        (0, 5, 2, "must be positive"),
        (15, -1, 2, "must be positive"),
        (15, 5, 0, "must be positive"),
    ],
)
def test_a_policy_must_let_the_owner_renew_before_it_stops_acting(
    duration: float, renew_every: float, margin: float, error: str | None
) -> None:
    if error is None:
        LeasePolicy(duration=duration, renew_every=renew_every, safety_margin=margin)
        return
    with pytest.raises(ValueError, match=error):
        LeasePolicy(duration=duration, renew_every=renew_every, safety_margin=margin)


@pytest.mark.parametrize(
    ("expires", "now", "is_expired"),
    [(15, 14.999, False), (15, 15, True), (15, 16, True), (15, 0, False)],
)
def test_expiry_is_on_the_database_clock_and_ends_at_the_instant(expires: float, now: float, is_expired: bool) -> None:
    assert expired(ReplicaLease(replica="a", expires_at=at(expires)), at(now)) is is_expired


def test_a_renewal_extends_the_lease_by_its_duration_from_the_database_time() -> None:
    assert expires_at(at(100), POLICY) == at(115)


@pytest.mark.parametrize(
    ("renewal_sent", "now", "acts"),
    [
        (None, 0.0, False),  # never held: never acts
        (100.0, 100.0, True),
        (100.0, 112.9, True),
        (100.0, 113.0, False),  # 15 s lease - 2 s margin: stops before anyone may take over
        (100.0, 200.0, False),  # paused far past its lease (SIGSTOP): stays stopped until it renews
    ],
)
def test_a_replica_stops_acting_a_margin_before_its_own_lease_ends(
    renewal_sent: float | None, now: float, acts: bool
) -> None:
    deadline = None if renewal_sent is None else local_deadline(renewal_sent, POLICY)
    assert may_act(deadline, now) is acts


@pytest.mark.parametrize(
    ("last_sent", "now", "due"),
    [(None, 0.0, True), (100.0, 104.9, False), (100.0, 105.0, True), (100.0, 130.0, True)],
)
def test_renewal_is_due_every_interval(last_sent: float | None, now: float, due: bool) -> None:
    assert renewal_due(last_sent, now, POLICY) is due


def test_orphans_are_the_other_replicas_with_expired_leases_oldest_first() -> None:
    leases = [
        ReplicaLease(replica="me", expires_at=at(-100)),  # my own: never orphaned by me
        ReplicaLease(replica="live", expires_at=at(10)),
        ReplicaLease(replica="dead-late", expires_at=at(-1)),
        ReplicaLease(replica="dead-early", expires_at=at(-30)),
        ReplicaLease(replica="dead-now", expires_at=at(0)),
    ]
    assert orphaned(leases, me="me", db_now=at(0)) == ["dead-early", "dead-late", "dead-now"]


@pytest.mark.parametrize(
    ("orphans", "live", "claim"),
    [(0, 3, 0), (1, 3, 1), (2, 3, 1), (100, 2, 50), (100, 3, 34), (101, 2, 51), (5, 0, 5), (-1, 2, 0)],
)
def test_survivors_split_a_dead_replicas_requests(orphans: int, live: int, claim: int) -> None:
    assert share(orphans, live) == claim


@pytest.mark.parametrize(
    ("current", "claimant", "after"),
    [
        (None, "b", Ownership(owner="b", fence=1)),
        (Ownership(owner="a", fence=1), "b", Ownership(owner="b", fence=2)),
        (Ownership(owner="a", fence=7), "a", Ownership(owner="a", fence=8)),  # a restarted "a" fences its old self
    ],
)
def test_every_claim_raises_the_fence(current: Ownership | None, claimant: str, after: Ownership) -> None:
    assert take_over(current, claimant) == after


@pytest.mark.parametrize(
    ("stored", "writer", "accepted"),
    [
        (Ownership(owner="a", fence=3), Ownership(owner="a", fence=3), True),
        (Ownership(owner="b", fence=4), Ownership(owner="a", fence=3), False),  # taken over: a is fenced
        (Ownership(owner="a", fence=4), Ownership(owner="a", fence=3), False),  # a's older incarnation
        (Ownership(owner="a", fence=3), Ownership(owner="a", fence=4), False),  # a token never issued
        (None, Ownership(owner="a", fence=1), False),  # released: nobody writes as owner
    ],
)
def test_only_the_current_owner_and_fence_may_write(
    stored: Ownership | None, writer: Ownership, accepted: bool
) -> None:
    assert accepts(stored, writer) is accepted


@given(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=20))
def test_after_any_sequence_of_claims_only_the_last_claimant_may_write(claimants: list[str]) -> None:
    """Every earlier ownership, including the same replica's earlier ones, is fenced by the last claim."""
    ownerships: list[Ownership] = []
    current: Ownership | None = None
    for claimant in claimants:
        current = take_over(current, claimant)
        ownerships.append(current)
    assert [accepts(current, o) for o in ownerships] == [False] * (len(ownerships) - 1) + [True]
