"""The rounds of gateway/clusters/replay.py over a fake events LIST (our own small callable): who shares a LIST,
that a pod never joins a LIST that started before it asked, the bound in flight, and errors per LIST."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.clusters.replay import POD_EVENTS, EventReplay, Listing, involved_name, plan


def event(name: str, reason: str = "Pulled") -> dict[str, Any]:
    return {"involvedObject": {"kind": "Pod", "name": name}, "reason": reason}


class Api:
    """Answers each LIST with the events of the pods it selects; counts LISTs and the most at once."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.lists: list[tuple[str, str]] = []
        self.now = self.peak = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: set[str] = set()  # field selectors answered with an error
        self._listed = asyncio.Event()

    async def until_lists(self, count: int) -> None:
        """Until `count` LISTs have started."""
        while len(self.lists) < count:
            self._listed.clear()
            await self._listed.wait()

    async def list_events(self, namespace: str, field_selector: str) -> list[dict[str, Any]]:
        self.lists.append((namespace, field_selector))
        self._listed.set()
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await self.gate.wait()
            await asyncio.sleep(0)
            if field_selector in self.fail:
                raise RuntimeError(f"refused {field_selector}")
            if field_selector == POD_EVENTS:
                return list(self.events)
            name = field_selector.removeprefix("involvedObject.name=")
            return [e for e in self.events if e["involvedObject"]["name"] == name]
        finally:
            self.now -= 1


@pytest.mark.parametrize(
    ("names", "at_most", "expected"),
    [
        ([], 8, []),
        (["b", "a"], 8, [Listing("ns", "involvedObject.name=a", frozenset("a")),
                         Listing("ns", "involvedObject.name=b", frozenset("b"))]),
        (["a", "b", "c"], 2, [Listing("ns", POD_EVENTS, frozenset("abc"))]),
        (["a", "b"], 2, [Listing("ns", "involvedObject.name=a", frozenset("a")),
                         Listing("ns", "involvedObject.name=b", frozenset("b"))]),
    ],
)  # fmt: skip
def test_a_round_lists_each_pod_or_its_namespace_once(names: list[str], at_most: int, expected: list[Listing]) -> None:
    assert plan("ns", names, at_most) == expected


async def test_pods_asking_together_share_one_list_and_get_only_their_own_events() -> None:
    names = [f"p{i}" for i in range(50)]
    api = Api([event(n) for n in [*names, "stranger"]])
    delivered: list[dict[str, Any]] = []
    replay = EventReplay(api.list_events, delivered.extend, concurrency=2)
    await asyncio.gather(*(replay.replay("ns", n) for n in names))
    assert api.lists == [("ns", POD_EVENTS)]
    assert sorted(e["involvedObject"]["name"] for e in delivered) == sorted(names)  # not the stranger's
    await replay.close()


async def test_a_pod_asking_while_a_list_runs_waits_for_a_list_that_starts_after_it_asked() -> None:
    api = Api([event("early"), event("late")])
    delivered: list[dict[str, Any]] = []
    replay = EventReplay(api.list_events, delivered.extend)
    api.gate.clear()
    early = asyncio.create_task(replay.replay("ns", "early"))
    await api.until_lists(1)
    late = asyncio.create_task(replay.replay("ns", "late"))
    await asyncio.sleep(0.01)
    assert not late.done() and api.lists == [("ns", "involvedObject.name=early")]
    api.gate.set()
    await asyncio.gather(early, late)
    assert api.lists == [("ns", "involvedObject.name=early"), ("ns", "involvedObject.name=late")]
    assert [e["involvedObject"]["name"] for e in delivered] == ["early", "late"]
    await replay.close()


async def test_lists_in_flight_stay_within_the_bound_across_namespaces() -> None:
    api = Api([event(f"p{i}") for i in range(12)])
    replay = EventReplay(api.list_events, lambda _: None, concurrency=3)
    await asyncio.gather(*(replay.replay(f"ns{i}", f"p{i}") for i in range(12)))
    assert len(api.lists) == 12 and api.peak == 3
    await replay.close()


async def test_a_failed_list_fails_only_its_own_pods_and_the_next_round_tries_again() -> None:
    api = Api([event("a"), event("b")])
    delivered: list[dict[str, Any]] = []
    replay = EventReplay(api.list_events, delivered.extend)
    api.fail = {"involvedObject.name=a"}
    outcomes = await asyncio.gather(replay.replay("ns", "a"), replay.replay("ns", "b"), return_exceptions=True)
    assert isinstance(outcomes[0], RuntimeError) and outcomes[1] is None
    assert [e["involvedObject"]["name"] for e in delivered] == ["b"]
    api.fail = set()
    await replay.replay("ns", "a")
    assert [e["involvedObject"]["name"] for e in delivered] == ["b", "a"]
    await replay.close()


async def test_a_cancelled_waiter_leaves_the_round_to_the_others_and_close_releases_waiters() -> None:
    api = Api([event("a"), event("b")])
    delivered: list[dict[str, Any]] = []
    replay = EventReplay(api.list_events, delivered.extend)
    api.gate.clear()
    a, b = asyncio.create_task(replay.replay("ns", "a")), asyncio.create_task(replay.replay("ns", "b"))
    await api.until_lists(2)
    a.cancel()
    api.gate.set()
    await b
    assert a.cancelled() and sorted(e["involvedObject"]["name"] for e in delivered) == ["a", "b"]
    api.gate.clear()
    stuck = asyncio.create_task(replay.replay("ns", "c"))
    await api.until_lists(3)
    await replay.close()
    await asyncio.wait_for(stuck, 5)  # returns: its follower finds the runtime gone and follows again


def test_the_bound_is_at_least_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        EventReplay(lambda ns, fs: asyncio.sleep(0, []), lambda _: None, concurrency=0)


@pytest.mark.parametrize(
    ("obj", "name"),
    [
        ({"involvedObject": {"kind": "Pod", "name": "p1"}}, "p1"),
        ({}, ""),
        ({"involvedObject": None}, ""),
        ({"involvedObject": "p1"}, ""),
        ({"involvedObject": ["p1"]}, ""),
        ({"involvedObject": 7}, ""),
        ({"involvedObject": {"name": 7}}, ""),
        ({"involvedObject": {"name": None}}, ""),
        ({"involvedObject": {"name": {"x": 1}}}, ""),
        ({"involvedObject": {"name": "\u0661" * 100_000}}, "\u0661" * 100_000),
    ],
)
def test_an_events_pod_is_its_involved_objects_name_or_none_for_anything_malformed(obj: dict[str, Any], name: str) -> None:
    """A broken or hostile API server's event: read as about no pod (dropped by the round), never an exception that
    ends the round (before, a string or a number as involvedObject raised AttributeError)."""
    assert involved_name(obj) == name


async def test_a_round_with_malformed_events_delivers_the_well_formed_ones() -> None:
    listed = [event("p1"), {"involvedObject": "p1"}, {"involvedObject": {"name": 3}}, event("p2")]
    delivered: list[dict[str, Any]] = []

    async def list_events(namespace: str, field_selector: str) -> list[dict[str, Any]]:
        return listed

    replay = EventReplay(list_events, delivered.extend, per_pod_at_most=1)
    async with asyncio.timeout(10):  # bounds a failure only
        await asyncio.gather(replay.replay("ns", "p1"), replay.replay("ns", "p2"))
    assert delivered == [event("p1"), event("p2")]
    await replay.close()
