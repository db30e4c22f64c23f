"""Thousands of malformed manifests through the policy checks: answers are violations or InvalidArgument, never a crash."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from gateway.api.convert_pods import pod_violations_of_schema
from gateway.domain import ClusterSpec, CredentialsRef, PodRequest
from gateway.errors import FieldViolation, GatewayError, InvalidArgument
from gateway.pods.validation import pod_violations
from gateway.policy.admission import admit_submission
from gateway.policy.limits import pod_limit_violations
from gateway.policy.pod_security import Level, PodSecurityPolicy, check_pod
from gateway.policy.tenants import Tenant, TenantUsage

SEED_POD: dict[str, Any] = {
    "metadata": {"namespace": "ml", "labels": {"a": "b"}, "annotations": {"x": "y"}},
    "spec": {
        "hostNetwork": False,
        "securityContext": {"runAsNonRoot": True, "sysctls": [{"name": "kernel.shm_rmid_forced", "value": "1"}]},
        "containers": [
            {
                "name": "m",
                "image": "i",
                "ports": [{"containerPort": 1}],
                "env": [{"name": "A", "value": "b"}],
                "securityContext": {
                    "capabilities": {"add": ["CHOWN"], "drop": ["ALL"]},
                    "seccompProfile": {"type": "x"},
                },
                "livenessProbe": {"httpGet": {"port": 1}},
                "lifecycle": {"preStop": {"tcpSocket": {"port": 1}}},
                "resources": {"requests": {"cpu": "1"}},
            }
        ],
        "volumes": [{"name": "v", "emptyDir": {}}],
    },
}
JUNK: list[Any] = [None, 0, -1, 1.5, True, "", "x", [], [None], {}, {"a": None}, [1, "2"], {"": []}]
TENANT = Tenant(name="t", clusters=frozenset({"*"}), namespaces=frozenset({"*"}),
                pod_security=PodSecurityPolicy(level=Level.RESTRICTED))  # fmt: skip
CLUSTERS = [ClusterSpec(name="c", provider="sim", credentials=CredentialsRef(source="sim"), region="r")]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


PATHS = [p for p in _paths(SEED_POD) if p]


def refusals(pod: dict[str, Any]) -> list[FieldViolation]:
    """The API's answer to a manifest: the schema walk's problems (api/convert_pods.py), else the gateway's."""
    return pod_violations_of_schema(pod) or pod_violations(pod)


def mutate(rng: random.Random) -> dict[str, Any]:
    pod = copy.deepcopy(SEED_POD)
    for _ in range(rng.randint(1, 4)):
        path = rng.choice(PATHS)
        node: Any = pod
        try:
            for part in path[:-1]:
                node = node[part]
            node[path[-1]] = copy.deepcopy(rng.choice(JUNK))
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation replaced a parent: fine, that is a mutation too
    return pod


@pytest.mark.parametrize("seed", range(4))
def test_malformed_manifests_never_crash_the_checks(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(500):
        pod = mutate(rng)
        check_pod(pod, TENANT.pod_security)
        pod_limit_violations(pod)
        if refusals(pod):
            continue  # the API refuses it before any policy runs
        try:
            admit_submission(TENANT, PodRequest(request_id="r", pod=pod), clusters=CLUSTERS, usage=TenantUsage())
        except InvalidArgument as e:
            assert e.violations
        except GatewayError:
            pass


@pytest.mark.parametrize(
    ("resources", "field"),
    [
        (3, "resources"),
        ("x", "resources"),
        ({"requests": "1"}, "resources.requests"),
        ({"limits": [1]}, "resources.limits"),
    ],
)
def test_malformed_resources_found_by_the_fuzzer_are_field_violations(resources: Any, field: str) -> None:
    pod = copy.deepcopy(SEED_POD)
    pod["spec"]["containers"][0]["resources"] = resources
    assert [v.field for v in refusals(pod)] == [f"pod.pod_json.spec.containers[0].{field}"]
