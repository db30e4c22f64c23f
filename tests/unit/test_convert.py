"""The protobuf edge: shape validation with field violations, and lossless round trips."""

from __future__ import annotations

import json

import pytest

from gateway import domain, errors
from gateway._proto.podgate.v1 import clusters_pb2, common_pb2, dispatch_pb2
from gateway.api import convert_clusters, convert_pods
from gateway.placement import selectors

POD = json.dumps(
    {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "base", "image": "python:3.12"}]}}
)


def request(**overrides: object) -> dispatch_pb2.PodRequest:
    fields: dict[str, object] = {"request_id": "r-1", "pod_json": POD}
    fields.update(overrides)
    return dispatch_pb2.PodRequest(**fields)  # type: ignore[arg-type]


BAD = [
    ("empty request id", request(request_id=""), "pod.request_id"),
    ("space in request id", request(request_id="a b"), "pod.request_id"),
    ("missing manifest", request(pod_json=""), "pod.pod_json"),
    ("manifest not json", request(pod_json="{nope"), "pod.pod_json"),
    ("manifest not an object", request(pod_json="[1]"), "pod.pod_json"),
    ("oversized manifest", request(pod_json=" " * (convert_pods.MAX_POD_JSON_BYTES + 1)), "pod.pod_json"),
    ("manifest deeper than the parser's stack", request(pod_json="[" * 100_000 + "]" * 100_000), "pod.pod_json"),
    (
        "airflow dag id with no label character",
        request(airflow=dispatch_pb2.AirflowContext(dag_id="\u00e9\u00e9")),
        "pod.airflow.dag_id",
    ),
    (
        "negative try number",
        request(airflow=dispatch_pb2.AirflowContext(dag_id="d", try_number=-1)),
        "pod.airflow.try_number",
    ),
    ("manifest nested past the depth limit", request(pod_json='{"a":' * 65 + "1" + "}" * 65), "pod.pod_json"),
    (
        "bad selector",
        request(placement=common_pb2.Placement(cluster_selector=common_pb2.LabelSelector(expression="tier in ("))),
        "pod.placement.cluster_selector.expression",
    ),
    (
        "bad operator",
        request(
            placement=common_pb2.Placement(
                cluster_selector=common_pb2.LabelSelector(
                    match_expressions=[common_pb2.LabelSelectorRequirement(key="a", operator="Near", values=["b"])]
                )
            )
        ),
        "pod.placement.cluster_selector.match_expressions[0]",
    ),
    ("empty region", request(placement=common_pb2.Placement(regions=[""])), "pod.placement.regions[0]"),
    (
        "bad toleration",
        request(placement=common_pb2.Placement(cluster_tolerations=[common_pb2.Toleration(key="k", operator="Maybe")])),
        "pod.placement.cluster_tolerations[0].operator",
    ),
    (
        "preference weight",
        request(placement=common_pb2.Placement(preferences=[common_pb2.Preference(weight=0)])),
        "pod.placement.preferences[0].weight",
    ),
    (
        "named logs without names",
        request(logs=dispatch_pb2.LogOptions(selection=dispatch_pb2.LOG_SELECTION_NAMED)),
        "pod.logs.containers",
    ),
]


@pytest.mark.parametrize(("name", "proto", "field"), BAD, ids=[b[0] for b in BAD])
def test_bad_requests_name_the_field(name: str, proto: dispatch_pb2.PodRequest, field: str) -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        convert_pods.pod_request_from_proto(proto)
    assert any(v.field.startswith(field) for v in caught.value.violations), caught.value.violations


def test_every_violation_is_reported_at_once() -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        convert_pods.pod_request_from_proto(request(request_id="", pod_json="{"))
    assert {v.field for v in caught.value.violations} >= {"pod.request_id", "pod.pod_json"}


def test_good_request_maps_every_option() -> None:
    proto = request(
        placement=common_pb2.Placement(
            cluster_selector=common_pb2.LabelSelector(match_labels={"tier": "prod"}, expression="gpu in (a100)"),
            regions=["eu-west-1"],
            clusters=["c1"],
            cluster_tolerations=[common_pb2.Toleration(key="scarce", operator="Exists")],
        ),
        xcom=dispatch_pb2.XcomOptions(mode=dispatch_pb2.XCOM_MODE_SIDECAR),
        logs=dispatch_pb2.LogOptions(selection=dispatch_pb2.LOG_SELECTION_ALL),
        lifecycle=dispatch_pb2.LifecycleOptions(
            on_finish=dispatch_pb2.ON_FINISH_ACTION_KEEP_POD, on_disconnect=dispatch_pb2.DISCONNECT_POLICY_CANCEL
        ),
        airflow=dispatch_pb2.AirflowContext(dag_id="d", task_id="t", run_id="r", map_index=-1, try_number=2),
    )
    req = convert_pods.pod_request_from_proto(proto, tenant="team-a")
    assert req.placement.regions == frozenset({"eu-west-1"})
    assert len(req.placement.selector.requirements) == 2
    assert req.xcom_mode is domain.XcomMode.SIDECAR
    assert req.log_selection is domain.LogSelection.ALL
    assert req.on_finish is domain.OnFinishAction.KEEP_POD
    assert req.on_disconnect is domain.DisconnectPolicy.CANCEL
    assert req.airflow == domain.AirflowContext(dag_id="d", task_id="t", run_id="r", map_index=-1, try_number=2)
    assert req.tenant == "team-a"
    assert req.pod["spec"]["containers"][0]["image"] == "python:3.12"


def test_xcom_defaults_to_disabled_without_options_and_auto_with_them() -> None:
    assert convert_pods.pod_request_from_proto(request()).xcom_mode is domain.XcomMode.DISABLED
    assert (
        convert_pods.pod_request_from_proto(request(xcom=dispatch_pb2.XcomOptions())).xcom_mode is domain.XcomMode.AUTO
    )


@pytest.mark.parametrize(("cursor", "seq"), [("", 0), ("c0", 0), ("c41", 41)])
def test_cursor_round_trip(cursor: str, seq: int) -> None:
    assert convert_pods.parse_cursor(cursor) == seq


@pytest.mark.parametrize("cursor", ["41", "c", "cx", "c-1", "c\u0661\u0662", "c" + "9" * 5000, "c 1"])
def test_foreign_cursor_is_invalid(cursor: str) -> None:
    with pytest.raises(errors.InvalidArgument):
        convert_pods.parse_cursor(cursor)


@pytest.mark.parametrize(
    "credentials",
    [
        clusters_pb2.ClusterCredentials(
            eks=clusters_pb2.EksSource(cluster_name="prod", region="eu-west-1", role_arn="arn:aws:iam::1:role/x")
        ),
        clusters_pb2.ClusterCredentials(kubeconfig=clusters_pb2.KubeconfigSource(path="/etc/k.yaml", context="c")),
        clusters_pb2.ClusterCredentials(aks=clusters_pb2.AksSource(client_secret_env="AZ_SECRET", tenant_id="t")),
        clusters_pb2.ClusterCredentials(sim=clusters_pb2.SimSource()),
    ],
)
def test_cluster_credentials_round_trip(credentials: clusters_pb2.ClusterCredentials) -> None:
    proto = clusters_pb2.Cluster(
        name="c1",
        provider=credentials.WhichOneof("source") or "",
        region="r",
        credentials=credentials,
        labels={"a": "b"},
        taints=[common_pb2.Taint(key="gpu", value="scarce", effect="NoSelect")],
    )
    spec = convert_clusters.spec_from_proto(proto)
    assert convert_clusters.spec_to_proto(spec).credentials == credentials
    assert spec.taints == (domain.Taint(key="gpu", value="scarce", effect=domain.TaintEffect.NO_SELECT),)


def test_eks_params_use_the_cluster_file_key_names() -> None:
    creds = clusters_pb2.ClusterCredentials(
        eks=clusters_pb2.EksSource(cluster_name="prod", sts_endpoint_url="http://x")
    )
    ref = convert_clusters.credentials_from_proto(creds, "eks")
    assert ref == domain.CredentialsRef(source="eks", params={"clusterName": "prod", "stsEndpointUrl": "http://x"})


def test_sim_kubeconfig_path_uses_the_cluster_file_key() -> None:
    creds = clusters_pb2.ClusterCredentials(sim=clusters_pb2.SimSource(kubeconfig_path="/tmp/k"))
    ref = convert_clusters.credentials_from_proto(creds, "sim")
    assert ref.params == {"path": "/tmp/k"}
    assert convert_clusters.credentials_to_proto(ref) == creds


@pytest.mark.parametrize(
    "placement",
    [
        common_pb2.Placement(),
        common_pb2.Placement(cluster_selector=common_pb2.LabelSelector()),  # set, but empty
        common_pb2.Placement(regions=["eu"], cluster_selector=common_pb2.LabelSelector()),
        common_pb2.Placement(cluster_selector=common_pb2.LabelSelector(match_labels={"tier": "prod"})),
        common_pb2.Placement(cluster_selector=common_pb2.LabelSelector(expression="tier in (prod)")),
    ],
)
def test_an_empty_placement_or_selector_converts_as_the_full_path_converts_it(placement: common_pb2.Placement) -> None:
    """The conversion's shortcuts for what most requests send (no placement, no selector) give what the
    full path gives: PlacementSpec's and Selector's defaults."""
    converted = convert_pods.pod_request_from_proto(request(placement=placement)).placement
    selector = placement.cluster_selector
    full = selectors.from_parts(
        match_labels=dict(selector.match_labels), match_expressions=[], expression=selector.expression, field="f"
    )
    assert converted.selector == full
    assert converted.regions == frozenset(placement.regions)
    if not placement.ListFields():
        assert converted == domain.PlacementSpec(selector=full, timeout_seconds=convert_pods.seconds(placement.timeout))
