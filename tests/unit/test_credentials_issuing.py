"""Issuing plans (pure): least-privilege roles, TTL bounds, credential ids, kubeconfig documents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from gateway.credentials.base import Endpoint
from gateway.credentials.issuing import (
    IssuePolicy,
    KubeconfigAccess,
    build_kubeconfig,
    check_ttl,
    expired_secrets,
    parse_credential_id,
    plan_issue,
)
from gateway.credentials.kubeconfig_file import resolve_context
from gateway.errors import InvalidArgument

POLICY = IssuePolicy(max_ttl_seconds=3600)
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def granted(access: KubeconfigAccess) -> set[tuple[str, str]]:
    plan = plan_issue("team-a", access, 900, POLICY, now=NOW, suffix="abc")
    role = dict(plan.objects)["Role"]
    return {(resource, verb) for rule in role["rules"] for resource in rule["resources"] for verb in rule["verbs"]}


@pytest.mark.parametrize(
    ("access", "resource", "verb", "allowed"),
    [
        (KubeconfigAccess.VIEW, "pods", "list", True),
        (KubeconfigAccess.VIEW, "pods/log", "get", True),
        (KubeconfigAccess.VIEW, "events", "watch", True),
        (KubeconfigAccess.VIEW, "pods", "create", False),
        (KubeconfigAccess.VIEW, "pods/exec", "create", False),
        (KubeconfigAccess.EDIT, "pods", "create", True),
        (KubeconfigAccess.EDIT, "pods", "delete", True),
        (KubeconfigAccess.EDIT, "pods/exec", "create", True),
        (KubeconfigAccess.EDIT, "secrets", "get", False),
        (KubeconfigAccess.EDIT, "pods", "patch", False),
    ],
)
def test_roles_are_least_privilege(access: KubeconfigAccess, resource: str, verb: str, allowed: bool) -> None:
    assert ((resource, verb) in granted(access)) is allowed


def test_plan_ties_objects_together() -> None:
    plan = plan_issue("team-a", KubeconfigAccess.EDIT, 900, POLICY, now=NOW, suffix="abc")
    objects = dict(plan.objects)
    assert [kind for kind, _ in plan.objects] == ["ServiceAccount", "Role", "RoleBinding", "Secret"]
    binding = objects["RoleBinding"]
    assert binding["roleRef"]["name"] == objects["Role"]["metadata"]["name"] == "podgate-edit"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "podgate-edit", "namespace": "team-a"}]
    assert objects["Secret"]["metadata"]["name"] == plan.secret_name == "podgate-kc-abc"
    assert plan.credential_id("c1") == "c1/team-a/podgate-kc-abc"
    assert all(body["metadata"]["namespace"] == "team-a" for body in objects.values())


@pytest.mark.parametrize(("ttl", "ok"), [(599, False), (600, True), (3600, True), (3601, False), (0, False)])
def test_ttl_bounds(ttl: int, ok: bool) -> None:
    if ok:
        assert check_ttl(ttl, POLICY) == ttl
    else:
        with pytest.raises(InvalidArgument, match="ttl must be between 600s") as caught:
            check_ttl(ttl, POLICY)
        assert caught.value.violations[0].field == "ttl"


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("c1/team-a/podgate-kc-abc", ("c1", "team-a", "podgate-kc-abc")),
        ("team-a/podgate-kc-abc", None),
        ("c1/team-a/some-secret", None),
        ("c1//podgate-kc-abc", None),
        ("c1/team-a/podgate-kc-abc/x", None),
        ("c1/Team_A/podgate-kc-abc", None),
        ("c1/team-a/podgate-kc-" + "-" * 300, None),
        ("c1\x00/team-a/podgate-kc-abc", None),
    ],
)
def test_credential_ids(value: str, parsed: tuple[str, str, str] | None) -> None:
    if parsed is None:
        with pytest.raises(InvalidArgument, match="not one this gateway issued"):
            parse_credential_id(value)
    else:
        c = parse_credential_id(value)
        assert (c.cluster, c.namespace, c.secret_name) == parsed


def test_kubeconfig_document_resolves_back() -> None:
    endpoint = Endpoint(server="https://10.1.2.3:6443", ca_data=b"PEM-CA", tls_server_name="kubernetes")
    text = build_kubeconfig(cluster="c1", endpoint=endpoint, namespace="team-a", user="sa", token="tok")
    ctx = resolve_context(yaml.safe_load(text), "", Path("/"))
    assert (ctx.server, ctx.ca_data, ctx.namespace, ctx.token, ctx.tls_server_name) == (
        "https://10.1.2.3:6443",
        b"PEM-CA",
        "team-a",
        "tok",
        "kubernetes",
    )


def test_expired_issuance_secrets_are_listed_for_collection() -> None:
    plan = plan_issue("team-a", KubeconfigAccess.VIEW, 900, POLICY, now=NOW, suffix="old")
    secret = dict(plan.objects)["Secret"]
    assert secret["metadata"]["annotations"] == {"podgate.io/expires-at": "2030-01-01T12:15:00Z"}
    unrelated = {"metadata": {"name": "db-password", "annotations": {"podgate.io/expires-at": "2000-01-01T00:00:00Z"}}}
    assert expired_secrets([secret, unrelated], NOW + timedelta(minutes=14)) == []
    assert expired_secrets([secret, unrelated], NOW + timedelta(minutes=15)) == ["podgate-kc-old"]
