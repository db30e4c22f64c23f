"""Object lifecycle rules over HTTPS with the official client: namespaces, finalizers, delete options,
resourceVersionMatch, dry run, and node failure with a real kubelet."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from kubernetes import client

from tests.fixtures_sim import SimThread, kube_client
from tests.sim.leaks import no_leaks  # noqa: F401 - module-scoped check: no process or mount left


def pod(name: str, **spec: object) -> dict:
    return {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "30"]}], **spec},
    }


@pytest.fixture
def core(sim_thread_api_only: SimThread) -> Iterator[client.CoreV1Api]:
    with kube_client(sim_thread_api_only.clusters["local-eu-gpu"]) as api:
        yield client.CoreV1Api(api)


def test_namespace_gets_a_default_account_and_takes_its_content_when_deleted(core: client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "team-x"}})
    assert core.read_namespaced_service_account("default", "team-x").metadata.name == "default"
    core.create_namespaced_pod("team-x", pod("p"))
    core.create_namespaced_secret("team-x", {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    core.delete_namespace("team-x")
    assert core.list_namespaced_pod("team-x").items == []
    with pytest.raises(client.ApiException) as gone:
        core.read_namespace("team-x")
    assert gone.value.status == 404
    with pytest.raises(client.ApiException) as invalid:
        core.create_namespace({"metadata": {"name": "Bad.Name"}})
    assert invalid.value.status == 422


def test_pod_needs_an_existing_service_account(core: client.CoreV1Api) -> None:
    with pytest.raises(client.ApiException) as error:
        core.create_namespaced_pod("default", pod("p", serviceAccountName="ghost"))
    assert error.value.status == 403
    assert "error looking up service account default/ghost" in error.value.body


def test_finalizers_keep_an_object_until_removed(core: client.CoreV1Api) -> None:
    body = pod("held")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    core.create_namespaced_pod("default", body)
    core.delete_namespaced_pod("held", "default", grace_period_seconds=0)
    held = core.read_namespaced_pod("held", "default")
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_pod("held", "default", {"metadata": {"finalizers": None}})
    with pytest.raises(client.ApiException) as gone:
        core.read_namespaced_pod("held", "default")
    assert gone.value.status == 404


def test_delete_preconditions_dry_run_and_collections(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod("default", pod("a"))
    with pytest.raises(client.ApiException) as conflict:
        core.delete_namespaced_pod(
            "a", "default", body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="other"))
        )
    assert conflict.value.status == 409
    dry = core.create_namespaced_pod("default", pod("dry"), dry_run="All")
    assert dry.metadata.name == "dry"
    with pytest.raises(client.ApiException):
        core.read_namespaced_pod("dry", "default")
    core.create_namespaced_pod("default", {**pod("b"), "metadata": {"name": "b", "labels": {"batch": "1"}}})
    core.delete_collection_namespaced_pod("default", label_selector="batch=1")
    assert [p.metadata.name for p in core.list_namespaced_pod("default").items] == ["a"]


def test_resource_version_match(core: client.CoreV1Api) -> None:
    current = core.list_namespaced_pod("default").metadata.resource_version
    assert core.list_namespaced_pod("default", resource_version=current, resource_version_match="Exact").items == []
    core.create_namespaced_pod("default", pod("newer"))
    with pytest.raises(client.ApiException) as gone:
        core.list_namespaced_pod("default", resource_version=current, resource_version_match="Exact")
    assert gone.value.status == 410
    listed = core.list_namespaced_pod("default", resource_version="0", resource_version_match="NotOlderThan")
    assert [p.metadata.name for p in listed.items] == ["newer"]


def test_node_failure_kills_the_pod_and_reports_node_lost(sim_thread: SimThread) -> None:
    cluster = sim_thread.clusters["local-eu-cpu"]
    with kube_client(cluster) as api:
        core = client.CoreV1Api(api)
        core.create_namespaced_pod(
            "default", pod("victim", nodeSelector={"kubernetes.io/hostname": "eu-central-cpu-2"})
        )
        deadline = time.monotonic() + 20
        while core.read_namespaced_pod("victim", "default").status.phase != "Running":
            assert time.monotonic() < deadline, "the pod never ran"
            time.sleep(0.05)
        sim_thread.call(cluster.fail_node, "eu-central-cpu-2")
        lost = core.read_namespaced_pod("victim", "default")
        assert lost.status.phase == "Failed" and lost.status.reason == "NodeLost"
        assert "eu-central-cpu-2 which was running pod victim is unresponsive" in lost.status.message
        core.create_namespaced_pod("default", pod("after", nodeSelector={"kubernetes.io/hostname": "eu-central-cpu-2"}))
        time.sleep(0.3)
        after = core.read_namespaced_pod("after", "default")
        assert after.spec.node_name is None and after.status.conditions[0].reason == "Unschedulable"
        sim_thread.call(cluster.recover_node, "eu-central-cpu-2")
        deadline = time.monotonic() + 20
        while core.read_namespaced_pod("after", "default").status.phase != "Running":
            assert time.monotonic() < deadline, "the pod never ran after recovery"
            time.sleep(0.05)
