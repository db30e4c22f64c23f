"""Hostile manifests at the gRPC edge (issue 12): the whole Pod is validated before placement.

Each case here answered INTERNAL (a traceback per call) or was accepted and a pod created from it (or a
Rejected record left when the API server refused it later). Now: INVALID_ARGUMENT, every problem at once
with its field path, and no pod on any cluster.
"""

from __future__ import annotations

import copy
import json

import pytest

from gateway._proto.podgate.v1 import dispatch_pb2, dispatch_pb2_grpc
from gateway.sim.cluster import SimWorld
from tests.e2e.conftest import violations
from tests.e2e.edge_common import MANIFEST, S, no_pods, refused, request, with_container, with_spec

# --- malformed manifests ---------------------------------------------------------------------------

WRONG_TYPES = {
    "nodeSelector-string": with_spec(nodeSelector="gpu"),
    "nodeSelector-list": with_spec(nodeSelector=["a"]),
    "nodeSelector-number": with_spec(nodeSelector=5),
    "tolerations-string": with_spec(tolerations="abc"),
    "tolerations-number": with_spec(tolerations=5),
    "tolerations-list-of-number": with_spec(tolerations=[5]),
    "tolerations-list-of-string": with_spec(tolerations=["x"]),
    "affinity-string": with_spec(affinity="x"),
    "nodeAffinity-list": with_spec(affinity={"nodeAffinity": [1]}),
    "required-string": with_spec(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": "x"}}),
    "nodeSelectorTerms-number": with_spec(
        affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": 7}}}
    ),
    "nodeSelectorTerms-list-of-string": with_spec(
        affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": ["t"]}}}
    ),
    "matchFields-string": with_spec(
        affinity={
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchFields": "x"}]}
            }
        }
    ),
    "matchFields-list-of-number": with_spec(
        affinity={
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchFields": [3]}]}
            }
        }
    ),
    "overhead-list": with_spec(overhead=["cpu"]),
    "int-of-5000-digits": json.dumps(MANIFEST)[:-2] + ', "activeDeadlineSeconds": ' + "9" * 5000 + "}}",
    "float-of-5000-digits": json.dumps(MANIFEST)[:-2] + ', "activeDeadlineSeconds": 1.' + "9" * 5000 + "}}",
    "int-beyond-int64": with_spec(activeDeadlineSeconds=2**63),
    "containerPort-minus-1": with_container(ports=[{"containerPort": -1}]),
    "containerPort-70000": with_container(ports=[{"containerPort": 70000}]),
    "activeDeadlineSeconds-minus-5": with_spec(activeDeadlineSeconds=-5),
    "terminationGracePeriodSeconds-minus-1": with_spec(terminationGracePeriodSeconds=-1),
    "command-string": with_container(command="echo"),
    "env-string": with_container(env="x"),
    "resources-list": with_container(resources=[]),
    "priority-string": with_spec(priority="high"),
    "env-name-with-equals": with_container(env=[{"name": "A=B", "value": "1"}]),
    "unknown-field": with_container(comand=["typo"]),
    "imagePullPolicy-bogus": with_container(imagePullPolicy="Sometimes"),
    "NaN": json.dumps(MANIFEST)[:-2] + ', "activeDeadlineSeconds": NaN}}',
    "Infinity": json.dumps(MANIFEST)[:-2] + ', "activeDeadlineSeconds": Infinity}}',
    "minus-Infinity": json.dumps(MANIFEST)[:-2] + ', "priority": -Infinity}}',
    "duplicate-key": json.dumps(MANIFEST)[:-2] + ', "priority": 1, "priority": 2}}',
}


@pytest.mark.parametrize("manifest", list(WRONG_TYPES.values()), ids=list(WRONG_TYPES))
async def test_a_malformed_manifest_is_refused_at_the_edge(
    stub: dispatch_pb2_grpc.DispatchServiceStub, world: SimWorld, manifest: str
) -> None:
    pod = request(manifest)
    error = await refused(stub.ExplainPlacement, dispatch_pb2.ExplainPlacementRequest(pod=pod))
    assert all(field.startswith("pod.pod_json") for field in violations(error)), violations(error)
    await refused(stub.SubmitPod, dispatch_pb2.SubmitPodRequest(pod=pod))
    await refused(stub.GetPod, dispatch_pb2.GetPodRequest(request_id=pod.request_id), S.NOT_FOUND)
    assert no_pods(world)


async def test_every_problem_comes_back_at_once_with_its_path(stub: dispatch_pb2_grpc.DispatchServiceStub) -> None:
    manifest = copy.deepcopy(MANIFEST)
    manifest["spec"].update(activeDeadlineSeconds=-5, tolerations="abc", priority="high")
    manifest["spec"]["containers"][0].update(ports=[{"containerPort": -1}], env="x")
    error = await refused(stub.SubmitPod, dispatch_pb2.SubmitPodRequest(pod=request(json.dumps(manifest))))
    assert {
        "pod.pod_json.spec.activeDeadlineSeconds",
        "pod.pod_json.spec.tolerations",
        "pod.pod_json.spec.priority",
        "pod.pod_json.spec.containers[0].ports[0].containerPort",
        "pod.pod_json.spec.containers[0].env",
    } <= set(violations(error))
