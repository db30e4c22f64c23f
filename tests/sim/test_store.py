"""The simulator's object store: versions, deletion semantics, watches with history, selectors, overflow."""

from __future__ import annotations

import pytest

from gateway.sim.errors import AlreadyExists, Conflict, Gone, NotFound
from gateway.sim.store import ObjectStore


def pod(name: str, ns: str = "default", **labels: str) -> dict:
    return {"metadata": {"name": name, "namespace": ns, "labels": labels}, "spec": {"containers": [{"name": "c"}]}}


async def drain(watch, n: int) -> list[tuple[str, str]]:
    out = []
    for _ in range(n):
        event = await watch.next_within(1)
        assert event is not None, f"expected {n} events, got {out}"
        out.append((event[0], event[1]["metadata"]["name"]))
    return out


def test_create_fills_metadata_and_versions_increase() -> None:
    store = ObjectStore()
    a = store.create("pods", pod("a"))
    b = store.create("pods", pod("b"))
    assert a["metadata"]["uid"] != b["metadata"]["uid"]
    assert int(b["metadata"]["resourceVersion"]) > int(a["metadata"]["resourceVersion"])
    assert a["metadata"]["generation"] == 1 and a["metadata"]["creationTimestamp"].endswith("Z")
    with pytest.raises(AlreadyExists):
        store.create("pods", pod("a"))
    with pytest.raises(NotFound):
        store.get("pods", "other", "a")


def test_update_is_optimistic_and_bumps_generation_on_spec_change() -> None:
    store = ObjectStore()
    a = store.create("pods", pod("a"))
    a["spec"]["containers"][0]["image"] = "x"
    b = store.update("pods", a)
    assert b["metadata"]["generation"] == 2
    with pytest.raises(Conflict):
        store.update("pods", a)  # a carries the old resourceVersion
    c = store.mutate("pods", "default", "a", lambda o: o.setdefault("status", {}).update(phase="Running"))
    assert c["metadata"]["generation"] == 2 and c["status"]["phase"] == "Running"


def test_graceful_pod_deletion_waits_for_the_kubelet() -> None:
    store = ObjectStore()
    store.create("pods", pod("a"))
    store.mutate("pods", "default", "a", lambda o: o["spec"].update(nodeName="n1"))
    marked = store.delete("pods", "default", "a")
    assert marked["metadata"]["deletionTimestamp"] and marked["metadata"]["deletionGracePeriodSeconds"] == 30
    assert store.exists("pods", "default", "a")
    store.finalize_delete("pods", "default", "a")
    assert not store.exists("pods", "default", "a")
    store.create("pods", pod("unbound"))
    store.delete("pods", "default", "unbound")
    assert not store.exists("pods", "default", "unbound")


def test_finalizers_hold_an_object_until_emptied() -> None:
    store = ObjectStore()
    obj = pod("f")
    obj["metadata"]["finalizers"] = ["example.com/x"]
    store.create("pods", obj)
    store.delete("pods", "default", "f", grace_seconds=0)
    assert store.get("pods", "default", "f")["metadata"]["deletionTimestamp"]
    store.mutate("pods", "default", "f", lambda o: o["metadata"].update(finalizers=[]))
    assert not store.exists("pods", "default", "f")


async def test_watch_replays_history_and_selector_transitions() -> None:
    store = ObjectStore()
    first = store.create("pods", pod("a", app="x"))
    store.create("pods", pod("b", app="y"))
    watch = store.watch("pods", "default", first["metadata"]["resourceVersion"], label_selector="app=x")
    store.mutate("pods", "default", "b", lambda o: o["metadata"]["labels"].update(app="x"))
    store.mutate("pods", "default", "a", lambda o: o["metadata"]["labels"].update(app="z"))
    store.delete("pods", "default", "b")
    assert await drain(watch, 3) == [("ADDED", "b"), ("DELETED", "a"), ("DELETED", "b")]
    watch.close()
    with pytest.raises(StopAsyncIteration):
        await watch.next_within(1)


async def test_watch_from_zero_lists_current_objects_then_follows() -> None:
    store = ObjectStore()
    store.create("pods", pod("a"))
    store.create("pods", pod("b", ns="other"))
    watch = store.watch("pods", None, "0", field_selector="metadata.namespace=other")
    store.create("pods", pod("c", ns="other"))
    assert await drain(watch, 2) == [("ADDED", "b"), ("ADDED", "c")]
    watch.close()


def test_too_old_version_is_gone() -> None:
    store = ObjectStore(history=3)
    for i in range(5):
        store.create("pods", pod(f"p{i}"))
    with pytest.raises(Gone):
        store.watch("pods", None, "1")
    store.watch("pods", None, "3").close()


async def test_slow_watcher_is_closed_not_buffered() -> None:
    store = ObjectStore(watch_queue=2)
    watch = store.watch("pods", None, store.resource_version)
    for i in range(3):
        store.create("pods", pod(f"p{i}"))
    assert watch.overflowed and watch.closed and store.open_watches == 0
    with pytest.raises(StopAsyncIteration):
        await watch.__anext__()


def test_subscribers_see_old_and_new() -> None:
    store = ObjectStore()
    seen: list[tuple[str, str | None]] = []
    unsubscribe = store.subscribe(
        "pods", lambda t, new, old: seen.append((t, old and old["metadata"]["resourceVersion"]))
    )
    a = store.create("pods", pod("a"))
    store.mutate("pods", "default", "a", lambda o: None)
    unsubscribe()
    store.delete("pods", "default", "a")
    assert seen == [("ADDED", None), ("MODIFIED", a["metadata"]["resourceVersion"])]


async def test_a_status_write_keeps_every_version_as_it_was() -> None:
    """set_status shares the unchanged parts between versions: no version, as a watcher or a later reader saw
    it, changes afterwards, and a terminating pod whose status becomes terminal goes at once."""
    store = ObjectStore()
    created = store.create("pods", pod("a", app="x"))
    watch = store.watch("pods", "default", created["metadata"]["resourceVersion"])
    bound = store.mutate("pods", "default", "a", lambda o: o["spec"].update(nodeName="n1"))
    running = store.set_status("pods", "default", "a", {"phase": "Running"})
    assert running["metadata"]["generation"] == bound["metadata"]["generation"] and running["spec"]["nodeName"] == "n1"
    store.delete("pods", "default", "a")  # bound and running: marked, waits for its kubelet
    store.set_status("pods", "default", "a", {"phase": "Succeeded"})
    assert not store.exists("pods", "default", "a")
    events = [await watch.next_within(1) for _ in range(5)]
    assert [(e[0], e[1].get("status", {}).get("phase")) for e in events if e is not None] == [
        ("MODIFIED", None), ("MODIFIED", "Running"), ("MODIFIED", "Running"), ("MODIFIED", "Succeeded"),
        ("DELETED", "Succeeded"),
    ]  # fmt: skip
    versions = [int(e[1]["metadata"]["resourceVersion"]) for e in events if e is not None]
    assert versions == sorted(set(versions))
    assert "deletionTimestamp" not in events[1][1]["metadata"] and events[2][1]["metadata"]["deletionTimestamp"]
    assert running["status"] == {"phase": "Running"} and "deletionTimestamp" not in running["metadata"]
    with pytest.raises(NotFound):
        store.set_status("pods", "default", "a", {"phase": "Failed"})
