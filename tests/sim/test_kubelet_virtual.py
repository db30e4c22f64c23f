"""The virtual runtime: pods driven by annotations, no process, thousands at a time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from gateway.sim.kubelet import Kubelet
from gateway.sim.logstore import parse_timestamp
from gateway.sim.runtime.config import RuntimeConfigError
from gateway.sim.store import ObjectStore
from tests.sim.kubelet_fixtures import events, node, phase, pod, read_logs, start, wait_gone, wait_pod, waiting_reason
from tests.sim.kubelet_fixtures import store as store
from tests.sim.leaks import no_leaks as no_leaks


@pytest.fixture
async def kubelet(store: ObjectStore) -> AsyncIterator[Kubelet]:
    async with start(store, [node("v-1", "virtual"), node("v-2", "virtual")]) as (_, k):
        yield k


def virtual(name: str, restart: str = "Never", **annotations: str) -> dict:
    keyed = {f"sim.podgate.io/{k.replace('_', '-')}": v for k, v in annotations.items()}
    return pod(name, {"name": "main", "image": "python:3.12"}, restartPolicy=restart, annotations=keyed)


async def test_annotations_drive_logs_exit_code_and_termination_message(store: ObjectStore, kubelet: Kubelet) -> None:
    store.create("pods", virtual("ok", log_lines="one\ntwo", termination_message='{"x": 1}', duration="0.05"))
    store.create("pods", virtual("bad", exit_code="3"))
    ok = await wait_pod(store, "ok", phase("Succeeded"))
    terminated = ok["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"], terminated["message"]) == (0, "Completed", '{"x": 1}')
    assert await read_logs(kubelet, "ok", "main") == "one\ntwo\n"
    bad = await wait_pod(store, "bad", phase("Failed"))
    assert bad["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] == "Error"
    assert [r for _, r, _ in events(store, "ok")] == ["Scheduled", "Pulled", "Created", "Started"]


async def test_exec_emulates_cat_of_xcom_while_running(store: ObjectStore, kubelet: Kubelet) -> None:
    store.create("pods", virtual("xcom", duration="30", xcom='{"rows": 1}'))
    await wait_pod(store, "xcom", phase("Running"))
    process = await kubelet.exec("default", "xcom", "main", ["sh", "-c", "cat /airflow/xcom/return.json"], False, False)
    assert json.loads(b"".join([c async for c in process.stdout])) == {"rows": 1} and await process.wait() == 0
    other = await kubelet.exec("default", "xcom", "main", ["ls", "/"], False, False)
    assert await other.wait() == 126 and b"runs no process" in b"".join([c async for c in other.stderr])
    store.delete("pods", "default", "xcom")
    await wait_gone(store, "xcom")


async def test_restart_policy_deadline_and_missing_image(store: ObjectStore, kubelet: Kubelet) -> None:
    store.create("pods", virtual("loop", restart="OnFailure", exit_code="1"))
    looping = await wait_pod(
        store, "loop", lambda p: p["status"].get("containerStatuses", [{}])[0].get("restartCount", 0) >= 2
    )
    assert looping["status"]["phase"] == "Running"
    deadline = virtual("late", duration="30")
    deadline["spec"]["activeDeadlineSeconds"] = 1
    store.create("pods", deadline)
    assert (await wait_pod(store, "late", phase("Failed")))["status"]["reason"] == "DeadlineExceeded"
    missing = pod("nopull", {"name": "main", "image": "ghcr.io/acme/missing:2"})
    store.create("pods", missing)
    await wait_pod(store, "nopull", lambda p: waiting_reason(p) == "ImagePullBackOff")


async def test_thousand_pods_complete_and_every_transition_is_watched(store: ObjectStore, kubelet: Kubelet) -> None:
    watch = store.watch("pods", "default")
    for i in range(1000):
        store.create("pods", virtual(f"p{i}", duration="0.01"))
    phases: dict[str, list[str]] = {}
    async with asyncio.timeout(30):
        async for _, obj in watch:
            seen = phases.setdefault(obj["metadata"]["name"], [])
            current = obj.get("status", {}).get("phase")
            if not seen or seen[-1] != current:
                seen.append(current)
            if sum(1 for p in phases.values() if p[-1] == "Succeeded") == 1000:
                break
    watch.close()
    assert {tuple(p) for p in phases.values()} == {("Pending", "Running", "Succeeded")}
    nodes = {store.get("pods", "default", f"p{i}")["spec"]["nodeName"] for i in range(1000)}
    assert nodes == {"v-1", "v-2"}


async def test_log_lines_are_spread_over_the_duration_and_follow_ends_with_the_container(
    store: ObjectStore, kubelet: Kubelet
) -> None:
    store.create("pods", virtual("chatty", log_lines="a\nb\nc", duration="0.3"))
    await wait_pod(store, "chatty", phase("Running"))
    chunks = [chunk async for chunk in kubelet.logs("default", "chatty", "main", follow=True, timestamps=True)]
    followed = b"".join(chunks).splitlines(keepends=True)  # a chunk is what was written since the last read, not a line
    assert [line.split(b" ", 1)[1] for line in followed] == [b"a\n", b"b\n", b"c\n"]
    first, last = (parse_timestamp(line.split(b" ", 1)[0].decode()) for line in (followed[0], followed[-1]))
    assert last - first >= 150_000_000  # c comes 0.2 s after a


async def test_virtual_eviction(store: ObjectStore, kubelet: Kubelet) -> None:
    store.create("pods", virtual("evictee", duration="30"))
    await wait_pod(store, "evictee", phase("Running"))
    kubelet.evict("default", "evictee", "The node was low on resource: ephemeral-storage. ")
    done = await wait_pod(store, "evictee", phase("Failed"))
    assert (done["status"]["reason"], done["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"]) == (
        "Evicted",
        143,
    )


async def test_unknown_node_runtime_is_refused(store: ObjectStore) -> None:
    store.create("nodes", node("odd", "docker"))
    with pytest.raises(RuntimeConfigError, match="node odd: runtime 'docker' is not one of process, virtual"):
        await Kubelet(store, ["odd"]).start()


async def test_exec_cat_of_a_termination_message_path_on_the_xcom_file(store: ObjectStore, kubelet: Kubelet) -> None:
    auto = virtual("auto", duration="30", termination_message='{"k": 1}')
    auto["spec"]["containers"][0]["terminationMessagePath"] = "/airflow/xcom/return.json"
    store.create("pods", auto)
    await wait_pod(store, "auto", phase("Running"))
    process = await kubelet.exec("default", "auto", "main", ["cat", "/airflow/xcom/return.json"], False, False)
    assert b"".join([c async for c in process.stdout]) == b'{"k": 1}' and await process.wait() == 0
    kubelet.evict("default", "auto")
