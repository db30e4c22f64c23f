"""The table of every cluster's verdict is built only when asked, and is then what the full path gave.

The runner stores the decision with the chosen cluster's row only (explanations.py); GetPod expands it
from the snapshots the decision was made on. These tests dispatch through the Creator with the store and
journal for real, on a fleet where clusters are rejected for many different reasons, change the fleet
afterwards, and hold the expanded table to `place_fully` on the fleet as it was at the decision.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from gateway import domain
from gateway.placement import engine
from gateway.pods.creation import Creator
from gateway.pods.explanations import STORED_TABLE_UP_TO, Explanations, with_table
from gateway.pods.journal import Journal
from gateway.settings import LiveSettings, Settings
from gateway.store.sql import SqlStore
from tests.unit.pod_fakes import (
    CreateFault,
    FakeCluster,
    FakeClusters,
    answered,
    journalled,
    opened_store,
    pod_request,
    submitted,
)

GIB = 2**30


def node(cpu: int = 8000, used: int = 0) -> domain.NodeState:
    return domain.NodeState(name="n1", cpu_millis=cpu, memory_bytes=32 * GIB, cpu_millis_used=used)


def spec(name: str, region: str = "eu-west-1", **extra: object) -> domain.ClusterSpec:
    return domain.ClusterSpec(
        name=name, provider="sim", credentials=domain.CredentialsRef(source="sim"), region=region, **extra
    )  # type: ignore[arg-type]


def fleet() -> list[domain.ClusterSnapshot]:
    """Three eligible clusters of different loads and eight rejected or waiting, each for its own reason."""
    up = domain.ClusterHealth.HEALTHY
    return [
        domain.ClusterSnapshot(spec=spec("eligible-idle"), health=up, nodes=(node(),)),
        domain.ClusterSnapshot(spec=spec("eligible-busy"), health=up, nodes=(node(used=5000),)),
        domain.ClusterSnapshot(spec=spec("eligible-heavy", weight=300), health=up, nodes=(node(used=2000),)),
        domain.ClusterSnapshot(spec=spec("us", region="us-east-1"), health=up, nodes=(node(),)),
        domain.ClusterSnapshot(spec=spec("team-a", allowed_namespaces=frozenset({"team-a"})), health=up, nodes=(node(),)),
        domain.ClusterSnapshot(spec=spec("tainted", taints=(domain.Taint(key="gpu-only"),)), health=up, nodes=(node(),)),
        domain.ClusterSnapshot(spec=spec("tiny"), health=up, nodes=(node(cpu=500),)),
        domain.ClusterSnapshot(spec=spec("full"), health=up, nodes=(node(used=7800),)),
        domain.ClusterSnapshot(spec=spec("cordoned"), health=up, cordoned=True, cordon_reason="upgrade", nodes=(node(),)),
        domain.ClusterSnapshot(spec=spec("down"), health=domain.ClusterHealth.UNREACHABLE, nodes=(node(),)),
        domain.ClusterSnapshot(spec=spec("limited", max_concurrent_pods=2), health=up, running_pods=2, nodes=(node(),)),
    ]


@dataclass
class Fleet(FakeClusters):
    """Fake clusters whose snapshots the test sets (and changes after the decision)."""

    shown: list[domain.ClusterSnapshot] = field(default_factory=list)

    def snapshots(self) -> list[domain.ClusterSnapshot]:
        return list(self.shown)


@dataclass
class World:
    store: SqlStore
    journal: Journal
    clusters: Fleet
    explanations: Explanations

    def creator(self) -> Creator:
        return Creator(self.clusters, self.store, self.journal, LiveSettings(Settings()), self.explanations)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    store, journal = await opened_store(tmp_path)
    shown = fleet()
    clusters = Fleet({s.spec.name: FakeCluster(s.spec.name, region=s.spec.region) for s in shown}, shown=shown)
    yield World(store, journal, clusters, Explanations())
    await journal.close()
    await store.close()


def request(request_id: str = "r1") -> domain.PodRequest:
    return pod_request(request_id, placement=domain.PlacementSpec(regions=frozenset({"eu-west-1"})))


def as_stored_before(decision: domain.PlacementDecision, cluster: str) -> domain.PlacementDecision:
    """What the runner stored before this change: the full path's table, `cluster` chosen."""
    verdicts = tuple(replace(v, chosen=v.cluster == cluster) for v in decision.verdicts)
    return replace(decision, verdicts=verdicts)


async def test_the_table_shown_after_dispatch_is_the_full_paths_at_the_decision(world: World) -> None:
    at_decision = fleet()
    full = engine.place_fully(request(), at_decision, memo=engine.OutcomeMemo())
    reasons = {v.cluster: (v.verdict, v.reason) for v in full.verdicts}
    assert len({r for _, r in reasons.values()}) == len(reasons)  # every cluster for a reason of its own
    verdicts = [v for v, _ in reasons.values()]
    assert [verdicts.count(v) for v in domain.Verdict] == [3, 4, 4]  # eligible, without room now, rejected

    state = await submitted(world.store, request())
    await world.creator().place_and_create(state)
    world.clusters.shown = [replace(s, cordoned=True, cordon_reason="later") for s in fleet()]  # the fleet moves on

    stored = await world.store.get_pod_record("r1")
    assert stored is not None and stored.decision is not None
    assert stored.decision.cluster == full.cluster == "eligible-heavy"
    assert [(v.cluster, v.chosen) for v in stored.decision.verdicts] == [("eligible-heavy", True)]  # one row stored
    placed = [i for i in await journalled(world.store, world.journal, "r1") if isinstance(i, domain.PlacementDecision)]
    assert placed == [stored.decision]

    shown = world.explanations.explained(stored)
    assert shown.decision == as_stored_before(full, "eligible-heavy")
    assert world.explanations.explained(stored).decision == shown.decision  # asked again: the same table
    assert replace(shown, decision=stored.decision) == stored  # nothing else of the record changes


async def test_after_failover_the_table_marks_the_cluster_the_pod_went_to(world: World) -> None:
    world.clusters.clusters["eligible-heavy"].create_faults.append(CreateFault(answered(403, "Forbidden")))
    state = await submitted(world.store, request())
    await world.creator().place_and_create(state)

    # placed again after the failed create, with the first choice as the previous cluster
    full = engine.place_fully(request(), fleet(), previous="eligible-heavy", memo=engine.OutcomeMemo())
    second = next(c.cluster for c in full.candidates if c.cluster != "eligible-heavy")
    stored = await world.store.get_pod_record("r1")
    assert stored is not None and stored.decision is not None
    assert (stored.cluster, stored.decision.cluster) == (second, second)
    assert stored.decision.reason == f"placed on {second} after failover ({len(full.candidates) - 1} other candidates)"
    assert [(v.cluster, v.chosen) for v in stored.decision.verdicts] == [(second, True)]
    expected = replace(as_stored_before(full, second), cluster=second, region="eu-west-1", reason=stored.decision.reason)
    assert world.explanations.explained(stored).decision == expected


async def test_a_decision_not_held_is_shown_as_stored_never_recomputed(world: World) -> None:
    kept = Explanations(kept=1)
    creator = replace(world.creator(), explanations=kept)
    for request_id in ("r1", "r2"):
        await creator.place_and_create(await submitted(world.store, request(request_id)))
    first, second = [await world.store.get_pod_record(r) for r in ("r1", "r2")]
    assert first is not None and second is not None
    assert kept.explained(first) == first  # evicted: as stored, one row
    assert len(kept.explained(second).decision.verdicts) == len(fleet())  # type: ignore[union-attr]
    assert Explanations().explained(second) == second  # another process (or after a restart): as stored
    moved = replace(second, decision=replace(second.decision, reason="re-placed by another replica"))  # type: ignore[type-var]
    assert kept.explained(moved) == moved  # stored since by someone else: the held inputs are not its


async def test_a_small_fleets_whole_table_is_stored_and_shown_by_any_process(world: World) -> None:
    """Up to STORED_TABLE_UP_TO clusters the table is stored with the decision (cheap, and read first when a
    pod went somewhere unexpected): the `placed` event carries it and a process that holds nothing shows it."""
    small = [s for s in fleet() if s.spec.name in {"eligible-idle", "eligible-busy", "us", "tiny", "cordoned"}]
    assert len(small) <= STORED_TABLE_UP_TO < len(fleet())
    world.clusters.shown = small
    full = engine.place_fully(request(), small, memo=engine.OutcomeMemo())
    await world.creator().place_and_create(await submitted(world.store, request()))
    world.clusters.shown = [replace(s, cordoned=True, cordon_reason="later") for s in small]  # the fleet moves on

    stored = await world.store.get_pod_record("r1")
    assert stored is not None and stored.decision is not None
    assert stored.decision == as_stored_before(full, "eligible-idle")  # every cluster's verdict and reason
    placed = [i for i in await journalled(world.store, world.journal, "r1") if isinstance(i, domain.PlacementDecision)]
    assert placed == [stored.decision]
    assert Explanations().explained(stored) == stored == world.explanations.explained(stored)
    assert not world.explanations.holds("r1")  # stored whole: no snapshots kept in memory for it


def test_with_table_keeps_the_stored_choice() -> None:
    placement = engine.placement(request(), fleet(), memo=engine.OutcomeMemo(), fleet=engine.FleetIndex())
    full = engine.place_fully(request(), fleet(), memo=engine.OutcomeMemo())
    stored = domain.PlacementDecision(verdicts=(), cluster="eligible-busy", region="eu-west-1", reason="failover")
    table = with_table(stored, placement).verdicts
    assert [v.cluster for v in table] == [v.cluster for v in full.verdicts]
    assert [v.cluster for v in table if v.chosen] == ["eligible-busy"]


async def test_a_small_fleets_table_after_failover_marks_the_cluster_the_pod_went_to(world: World) -> None:
    """A small fleet's stored row is read from its table, not judged again: after a failover, the table of
    the placement that chose the second cluster, that cluster marked chosen and nothing else."""
    small = [s for s in fleet() if s.spec.name in {"eligible-idle", "eligible-busy", "us", "tiny", "cordoned"}]
    world.clusters.shown = small
    world.clusters.clusters["eligible-idle"].create_faults.append(CreateFault(answered(403, "Forbidden")))
    await world.creator().place_and_create(await submitted(world.store, request()))

    full = engine.place_fully(request(), small, previous="eligible-idle", memo=engine.OutcomeMemo())
    stored = await world.store.get_pod_record("r1")
    assert stored is not None and stored.decision is not None
    assert (stored.cluster, stored.decision.cluster) == ("eligible-busy", "eligible-busy")
    assert stored.decision.reason == f"placed on eligible-busy after failover ({len(full.candidates) - 1} other candidates)"
    expected = replace(
        as_stored_before(full, "eligible-busy"), cluster="eligible-busy", region="eu-west-1", reason=stored.decision.reason
    )
    assert stored.decision == expected
