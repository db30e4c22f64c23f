"""Fidelity of the simulated API server, proven with the official `kubernetes` client over real HTTPS."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client, watch

from tests.fixtures_sim import SimThread, kube_client

CLUSTER = "local-eu-gpu"


def pod(name: str, **labels: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "main", "image": "busybox:1.36", "command": ["true"]}]},
    }


@pytest.fixture
def core(sim_thread_api_only: SimThread) -> Iterator[client.CoreV1Api]:
    with kube_client(sim_thread_api_only.clusters[CLUSTER]) as api:
        yield client.CoreV1Api(api)


def test_pod_crud_with_server_filled_metadata(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_pod("default", pod("crud", app="a"))
    assert created.metadata.uid and created.metadata.resource_version and created.metadata.creation_timestamp
    assert created.spec.service_account_name == "default" and created.status.phase == "Pending"
    assert created.spec.containers[0].termination_message_path == "/dev/termination-log"
    got = core.read_namespaced_pod("crud", "default")
    assert got.metadata.uid == created.metadata.uid
    with pytest.raises(client.ApiException) as conflict:
        core.create_namespaced_pod("default", pod("crud"))
    assert conflict.value.status == 409 and '"reason":"AlreadyExists"' in conflict.value.body
    core.delete_namespaced_pod("crud", "default")
    with pytest.raises(client.ApiException) as missing:
        core.read_namespaced_pod("crud", "default")
    assert missing.value.status == 404 and 'pods \\"crud\\" not found' in missing.value.body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"metadata": {"name": "UPPER"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}, "metadata.name"),
        ({"metadata": {"name": "noimage"}, "spec": {"containers": [{"name": "c"}]}}, "spec.containers[0].image"),
        ({"metadata": {"name": "nocontainers"}, "spec": {"containers": []}}, "spec.containers"),
        (
            {
                "metadata": {"name": "badlabel", "labels": {"bad key": "v"}},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            },
            "metadata.labels",
        ),
        (
            {
                "metadata": {"name": "badvalue", "labels": {"k": "-x"}},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            },
            "metadata.labels",
        ),
    ],
)
def test_invalid_pods_are_422_with_causes(core: client.CoreV1Api, body: dict, field: str) -> None:
    with pytest.raises(client.ApiException) as error:
        core.create_namespaced_pod("default", body)
    assert error.value.status == 422
    assert f'"field":"{field}"' in error.value.body


def test_unknown_namespace_is_404_and_immutable_spec_is_422(core: client.CoreV1Api) -> None:
    with pytest.raises(client.ApiException) as error:
        core.create_namespaced_pod("nowhere", pod("x"))
    assert error.value.status == 404 and 'namespaces \\"nowhere\\" not found' in error.value.body
    core.create_namespaced_pod("default", pod("immutable"))
    with pytest.raises(client.ApiException) as invalid:
        core.patch_namespaced_pod("immutable", "default", {"spec": {"restartPolicy": "Never"}})
    assert invalid.value.status == 422 and "pod updates may not change fields" in invalid.value.body
    patched = core.patch_namespaced_pod(
        "immutable", "default", {"spec": {"containers": [{"name": "main", "image": "busybox:1.37"}]}}
    )
    assert patched.spec.containers[0].image == "busybox:1.37" and patched.spec.containers[0].command == ["true"]


def test_patch_flavours_and_status_subresource(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod("default", pod("patched", app="a"))
    merged = core.patch_namespaced_pod("patched", "default", {"metadata": {"labels": {"app": None, "tier": "x"}}})
    assert merged.metadata.labels == {"tier": "x"}
    core.api_client.set_default_header("Content-Type", "application/json-patch+json")
    jsonpatched = core.patch_namespaced_pod(
        "patched", "default", [{"op": "add", "path": "/metadata/annotations", "value": {"k": "v"}}]
    )
    assert jsonpatched.metadata.annotations == {"k": "v"}
    core.api_client.default_headers.pop("Content-Type")
    ignored = core.patch_namespaced_pod("patched", "default", {"status": {"phase": "Running"}})
    assert ignored.status.phase == "Pending"  # the main resource does not change status
    status = core.patch_namespaced_pod_status(
        "patched", "default", {"status": {"phase": "Running", "podIP": "10.0.0.9"}}
    )
    assert status.status.phase == "Running" and status.status.pod_ip == "10.0.0.9"
    stale = core.read_namespaced_pod("patched", "default")
    stale.metadata.resource_version = "1"
    with pytest.raises(client.ApiException) as conflict:
        core.replace_namespaced_pod("patched", "default", stale)
    assert conflict.value.status == 409 and "the object has been modified" in conflict.value.body


def test_pagination_and_selectors(core: client.CoreV1Api) -> None:
    for i in range(7):
        core.create_namespaced_pod("default", pod(f"page-{i}", app="web" if i % 2 else "db", idx=str(i)))
    names, token = [], None
    while True:
        page = core.list_namespaced_pod("default", limit=3, _continue=token)
        names += [p.metadata.name for p in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert names == [f"page-{i}" for i in range(7)]
    web = core.list_namespaced_pod("default", label_selector="app=web")
    assert [p.metadata.name for p in web.items] == ["page-1", "page-3", "page-5"]
    setbased = core.list_namespaced_pod("default", label_selector="app in (db),idx notin (0,2)")
    assert [p.metadata.name for p in setbased.items] == ["page-4", "page-6"]
    by_field = core.list_pod_for_all_namespaces(field_selector="metadata.name=page-3,status.phase=Pending")
    assert [p.metadata.name for p in by_field.items] == ["page-3"]
    with pytest.raises(client.ApiException) as bad:
        core.list_namespaced_pod("default", field_selector="spec.image=x")
    assert bad.value.status == 400 and "field label not supported" in bad.value.body


def test_watch_from_version_resumes_after_a_dropped_watch(
    sim_thread_api_only: SimThread, core: client.CoreV1Api
) -> None:
    cluster = sim_thread_api_only.clusters[CLUSTER]
    start = core.list_namespaced_pod("default").metadata.resource_version
    core.create_namespaced_pod("default", pod("w1"))
    seen: list[tuple[str, str]] = []
    last_rv = start
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_pod, "default", resource_version=start, timeout_seconds=10):
        seen.append((event["type"], event["object"].metadata.name))
        last_rv = event["object"].metadata.resource_version
        if len(seen) == 1:
            assert sim_thread_api_only.call(cluster.drop_watches) == 1
    assert seen == [("ADDED", "w1")]  # the stream ended when the watch was dropped
    core.create_namespaced_pod("default", pod("w2"))
    core.delete_namespaced_pod("w1", "default")
    resumed = []
    for event in watch.Watch().stream(core.list_namespaced_pod, "default", resource_version=last_rv, timeout_seconds=2):
        resumed.append((event["type"], event["object"].metadata.name))
        if len(resumed) == 2:
            break
    assert resumed == [("ADDED", "w2"), ("DELETED", "w1")]


def test_watch_on_a_compacted_version_is_410(sim_thread_api_only: SimThread, core: client.CoreV1Api) -> None:
    store = sim_thread_api_only.clusters[CLUSTER].store
    sim_thread_api_only.call(lambda: setattr(store, "_compacted", int(store.resource_version)))
    with pytest.raises(client.ApiException) as gone:
        for _ in watch.Watch().stream(core.list_namespaced_pod, "default", resource_version="1", timeout_seconds=2):
            pass
    assert gone.value.status == 410


def test_watch_bookmarks_and_timeout(sim_thread_api_only: SimThread, core: client.CoreV1Api) -> None:
    cluster = sim_thread_api_only.clusters[CLUSTER]
    cluster.context.bookmark_seconds = 0.2
    rv = core.list_namespaced_pod("default").metadata.resource_version
    response = core.list_namespaced_pod(
        "default",
        watch=True,
        resource_version=rv,
        allow_watch_bookmarks=True,
        timeout_seconds=1,
        _preload_content=False,
    )
    lines = [line for line in response.read().decode().splitlines() if line]
    assert lines and all('"type":"BOOKMARK"' in line for line in lines)
    assert f'"resourceVersion":"{rv}"' in lines[0]


def test_events_and_nodes_are_listed(core: client.CoreV1Api) -> None:
    nodes = core.list_node(label_selector="nvidia.com/gpu.product")
    assert [n.metadata.name for n in nodes.items] == ["eu-gpu-a100-1"]
    assert nodes.items[0].status.allocatable["nvidia.com/gpu"] == "2"
    assert nodes.items[0].metadata.labels["topology.kubernetes.io/region"] == "eu-west-1"
    core.create_namespaced_event(
        "default",
        {
            "metadata": {"name": "e1"},
            "involvedObject": {"kind": "Pod", "name": "x", "namespace": "default"},
            "reason": "Test",
            "message": "hello",
            "type": "Normal",
        },
    )
    events = core.list_namespaced_event("default", field_selector="involvedObject.name=x")
    assert [e.message for e in events.items] == ["hello"]


def test_graceful_delete_of_a_bound_pod_waits_for_the_kubelet(
    sim_thread_api_only: SimThread, core: client.CoreV1Api
) -> None:
    store = sim_thread_api_only.clusters[CLUSTER].store
    core.create_namespaced_pod("default", pod("bound"))
    sim_thread_api_only.call(store.mutate, "pods", "default", "bound", lambda p: p["spec"].update(nodeName="eu-cpu-1"))
    deleted = core.delete_namespaced_pod("bound", "default", grace_period_seconds=5)
    assert deleted.metadata.deletion_timestamp is not None and deleted.metadata.deletion_grace_period_seconds == 5
    assert core.read_namespaced_pod("bound", "default").metadata.deletion_timestamp is not None
    sim_thread_api_only.call(store.finalize_delete, "pods", "default", "bound")
    with pytest.raises(client.ApiException) as gone:
        core.read_namespaced_pod("bound", "default")
    assert gone.value.status == 404
