"""Capacity bookkeeping from node and pod watch events."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.clusters.capacity import CapacityBook, node_state, pod_usage


def node(
    name: str, cpu: str = "4", memory: str = "8Gi", gpus: str = "0", *, ready: bool = True, **labels: str
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {},
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "nvidia.com/gpu": gpus},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def pod(
    uid: str, node_name: str | None, cpu: str = "500m", memory: str = "1Gi", gpus: int = 0, phase: str = "Running"
) -> dict[str, Any]:
    requests: dict[str, Any] = {"cpu": cpu, "memory": memory}
    limits = {"nvidia.com/gpu": str(gpus)} if gpus else {}
    spec: dict[str, Any] = {"containers": [{"name": "c", "resources": {"requests": requests, "limits": limits}}]}
    if node_name:
        spec["nodeName"] = node_name
    return {"metadata": {"uid": uid}, "spec": spec, "status": {"phase": phase}}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (pod("a", None), None),
        (pod("a", "n1", phase="Succeeded"), None),
        (pod("a", "n1", phase="Failed"), None),
        (pod("a", "n1", cpu="250m", memory="512Mi"), ("n1", 250, 512 * 2**20, 0)),
        (pod("a", "n1", gpus=2), ("n1", 500, 2**30, 2)),
    ],
)
def test_pod_usage(obj: dict[str, Any], expected: tuple[str, int, int, int] | None) -> None:
    usage = pod_usage(obj)
    assert (None if usage is None else (usage.node, usage.cpu_millis, usage.memory_bytes, usage.gpus)) == expected


def test_node_state_reads_allocatable_labels_and_readiness() -> None:
    state = node_state(node("g1", cpu="8", memory="32Gi", gpus="2", ready=False, **{"nvidia.com/gpu.product": "A100"}))
    assert (state.cpu_millis, state.memory_bytes, state.gpus, state.gpu_type, state.ready) == (
        8000,
        32 * 2**30,
        2,
        "A100",
        False,
    )


def test_usage_follows_pod_lifecycle() -> None:
    book = CapacityBook()
    book.reset(nodes=[node("n1", gpus="2")], pods=[])
    book.set_pod(pod("a", "n1", gpus=1))
    book.set_pod(pod("b", "n1", gpus=1))
    assert book.nodes()[0].gpus_free == 0
    book.set_pod(pod("a", "n1", gpus=1, phase="Succeeded"))  # finished pods free their requests
    assert book.nodes()[0].gpus_free == 1
    book.set_pod(pod("b", "n1", gpus=1))  # a repeated MODIFIED does not double count
    assert book.nodes()[0].gpus_used == 1
    book.remove_pod(pod("b", "n1"))
    assert (book.nodes()[0].gpus_used, book.nodes()[0].cpu_millis_used) == (0, 0)


def test_relist_replaces_everything() -> None:
    book = CapacityBook()
    book.reset(nodes=[node("n1"), node("n2")], pods=[pod("a", "n1")])
    book.reset(nodes=[node("n2")], pods=[pod("b", "n2", cpu="1")])
    assert [(n.name, n.cpu_millis_used) for n in book.nodes()] == [("n2", 1000)]


def test_nodes_are_the_same_tuple_until_something_changes() -> None:
    """Placement remembers per-cluster work by the identity of this tuple: a change must give a new one."""
    book = CapacityBook()
    book.reset(nodes=[node("n1", gpus="2")], pods=[pod("a", "n1", gpus=1)])
    first = book.nodes()
    assert book.nodes() is first
    book.set_node(node("n1", gpus="2"))  # the same node again (a status heartbeat)
    assert book.nodes() is first
    book.set_pod(pod("b", "n1", gpus=1))
    second = book.nodes()
    assert second is not first and second[0].gpus_used == 2
    book.set_node(node("n1", gpus="4"))
    assert book.nodes() is not second and book.nodes()[0].gpus == 4
    book.remove_node("n1")
    assert book.nodes() == ()
    book.reset(nodes=[node("n1")], pods=[])
    assert book.nodes()[0].gpus_used == 0


def test_a_pods_status_changes_leave_the_nodes_as_they_were() -> None:
    """A pod's life brings several MODIFIED events that change no request: they neither parse its quantities
    again nor give placement a new tuple (its per-cluster memo would start again at each)."""
    book = CapacityBook()
    book.reset(nodes=[node("n1", gpus="2")], pods=[pod("a", "n1", gpus=1, phase="Pending")])
    first = book.nodes()
    running = pod("a", "n1", gpus=1, phase="Running")
    running["status"]["containerStatuses"] = [{"name": "c", "state": {"running": {}}}]
    book.set_pod(running)
    assert book.nodes() is first and first[0].gpus_used == 1
    resized = pod("a", "n1", cpu="2", gpus=1)  # an in-place resize changes the requests: counted again
    book.set_pod(resized)
    assert book.nodes() is not first and book.nodes()[0].cpu_millis_used == 2000
    book.set_pod(pod("a", "n1", cpu="2", gpus=1, phase="Succeeded"))
    assert book.nodes()[0].gpus_used == 0
    book.remove_pod(pod("a", "n1"))
    book.set_pod(pod("a", "n1", cpu="2", gpus=1))  # the same uid seen again after its deletion: counted
    assert book.nodes()[0].gpus_used == 1


OPS = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),  # a pod's uid
        st.sampled_from([None, "n1", "n2"]),  # its node (None: a delete when the phase is None too)
        st.sampled_from(["100m", "1", "2"]),
        st.sampled_from([None, "Pending", "Running", "Succeeded"]),
    ),
    max_size=25,
)


@settings(max_examples=200, deadline=None)
@given(ops=OPS)
def test_usage_kept_by_difference_is_the_usage_counted_afresh(ops: list[tuple[str, str | None, str, str | None]]) -> None:
    """Each event changes the usage by its difference; the total stays what counting the live pods from scratch
    gives, and an event that reports no change leaves placement the very same nodes."""
    book, live = CapacityBook(), {}
    book.reset(nodes=[node("n1"), node("n2")], pods=[])
    for uid, node_name, cpu, phase in ops:
        before = book.nodes()
        if phase is None:
            changed = book.remove_pod(pod(uid, node_name))
            live.pop(uid, None)
        else:
            live[uid] = pod(uid, node_name, cpu=cpu, phase=phase)
            changed = book.set_pod(live[uid])
        if not changed:
            assert book.nodes() is before
        afresh = CapacityBook()
        afresh.reset(nodes=[node("n1"), node("n2")], pods=list(live.values()))
        assert book.nodes() == afresh.nodes()
