"""Authentication and authorization of the simulated API server, through the official client over HTTPS."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from gateway.sim.auth import Identity
from gateway.sim.cluster import SimWorld
from gateway.sim.config import parse
from tests.fixtures_sim import SimThread

CONFIG = {
    "clusters": [
        {
            "name": "auth",
            "allowedNamespaces": ["default", "team"],
            "sim": {
                "nodes": [{"name": "n1", "allocatable": {"cpu": "2"}}],
                "users": [
                    {
                        "name": "reader",
                        "token": "reader-token",
                        "namespaces": ["team"],
                        "resources": ["pods"],
                        "verbs": ["get", "list"],
                    },
                ],
            },
        }
    ]
}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[SimThread]:
    with SimThread(SimWorld(parse(CONFIG), kubeconfig_dir=tmp_path, node_side=False)) as running:
        yield running


def api_with(world: SimThread, tmp_path: Path, **credentials: object) -> client.CoreV1Api:
    cluster = world.clusters["auth"]
    path = tmp_path / "custom.kubeconfig"
    path.write_text(yaml.safe_dump(cluster.kubeconfig(**credentials)))
    return client.CoreV1Api(config.new_client_from_config(str(path)))


def status_of(call) -> tuple[int, str]:
    with pytest.raises(client.ApiException) as error:
        call()
    return error.value.status, error.value.body


def test_missing_or_bad_credentials_are_401_status(world: SimThread, tmp_path: Path) -> None:
    for api in (api_with(world, tmp_path), api_with(world, tmp_path, token="wrong")):
        code, body = status_of(lambda api=api: api.list_namespaced_pod("team"))
        assert code == 401 and '"kind":"Status"' in body and '"reason":"Unauthorized"' in body


def test_static_identity_is_limited_to_its_rules_with_kubernetes_wording(world: SimThread, tmp_path: Path) -> None:
    reader = api_with(world, tmp_path, token="reader-token")
    assert reader.list_namespaced_pod("team").items == []
    code, body = status_of(lambda: reader.list_namespaced_pod("default"))
    assert code == 403
    assert (
        'pods is forbidden: User \\"reader\\" cannot list resource \\"pods\\" in API group \\"\\" in the namespace \\"default\\"'
        in body
    )
    code, body = status_of(lambda: reader.delete_namespaced_pod("x", "team"))
    assert code == 403 and 'pods \\"x\\" is forbidden: User \\"reader\\" cannot delete resource' in body
    code, body = status_of(lambda: reader.list_node())
    assert code == 403 and "at the cluster scope" in body


def test_client_certificate_identifies_the_user(world: SimThread, tmp_path: Path) -> None:
    cluster = world.clusters["auth"]
    admin_cert = cluster.issue_client_certificate("root", ("system:masters",))
    assert len(api_with(world, tmp_path, client=admin_cert).list_node().items) == 1
    nobody = cluster.issue_client_certificate("nobody")
    code, body = status_of(lambda: api_with(world, tmp_path, client=nobody).list_node())
    assert code == 403 and 'User \\"nobody\\"' in body


def test_token_request_rolebinding_and_revocation_by_secret_deletion(world: SimThread, tmp_path: Path) -> None:
    admin = client.CoreV1Api(config.new_client_from_config(str(world.clusters["auth"].kubeconfig_path)))
    rbac = client.RbacAuthorizationV1Api(admin.api_client)
    admin.create_namespaced_service_account("team", {"metadata": {"name": "runner"}})
    issued = admin.create_namespaced_service_account_token("runner", "team", {"spec": {"expirationSeconds": 900}})
    token = issued.status.token
    assert issued.status.expiration_timestamp.timestamp() == pytest.approx(time.time() + 900, abs=30)
    runner = api_with(world, tmp_path, token=token)
    code, body = status_of(lambda: runner.list_namespaced_pod("team"))
    assert code == 403 and "system:serviceaccount:team:runner" in body
    rbac.create_namespaced_role(
        "team", {"metadata": {"name": "pods"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]}
    )
    rbac.create_namespaced_role_binding(
        "team",
        {
            "metadata": {"name": "runner-pods"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pods"},
            "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": "team"}],
        },
    )
    assert runner.list_namespaced_pod("team").items == []
    secret = issued.spec.bound_object_ref.name
    admin.delete_namespaced_secret(secret, "team")
    code, _ = status_of(lambda: runner.list_namespaced_pod("team"))
    assert code == 401


def test_token_request_enforces_minimum_and_expired_tokens_are_401(world: SimThread, tmp_path: Path) -> None:
    cluster = world.clusters["auth"]
    admin = client.CoreV1Api(config.new_client_from_config(str(cluster.kubeconfig_path)))
    code, body = status_of(
        lambda: admin.create_namespaced_service_account_token("default", "default", {"spec": {"expirationSeconds": 60}})
    )
    assert code == 422 and "spec.expirationSeconds" in body
    token = world.call(cluster.mint_service_account_token, "default", "default", seconds=1)
    time.sleep(2.1)
    code, _ = status_of(lambda: api_with(world, tmp_path, token=token).list_namespaced_pod("default"))
    assert code == 401


def test_pluggable_token_verifier_and_self_subject_access_review(world: SimThread, tmp_path: Path) -> None:
    cluster = world.clusters["auth"]
    cluster.add_token_verifier(
        lambda t: Identity("eks-user", ("system:masters",)) if t.startswith("k8s-aws-v1.") else None
    )
    eks = api_with(world, tmp_path, token="k8s-aws-v1.abc")
    assert len(eks.list_node().items) == 1
    reader = client.AuthorizationV1Api(api_with(world, tmp_path, token="reader-token").api_client)
    review = {"spec": {"resourceAttributes": {"namespace": "team", "verb": "list", "resource": "pods"}}}
    assert reader.create_self_subject_access_review(review).status.allowed is True
    review["spec"]["resourceAttributes"]["verb"] = "create"
    assert reader.create_self_subject_access_review(review).status.allowed is False
