"""Round trips of every domain type the store keeps in JSON columns, and the page tokens."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from gateway.domain import (
    AirflowContext,
    ClusterSpec,
    ClusterVerdict,
    ContainerResult,
    CredentialsRef,
    DisconnectPolicy,
    JournalEvent,
    JournalKind,
    KubernetesEvent,
    LogSelection,
    OnFinishAction,
    Operator,
    PlacementDecision,
    PlacementSpec,
    PodPhase,
    PodRecord,
    PodRequest,
    PodResult,
    Preference,
    Requirement,
    Selector,
    Taint,
    TaintEffect,
    Toleration,
    Verdict,
    XcomMode,
)
from gateway.errors import InvalidArgument
from gateway.store import codec
from gateway.store.rows import (
    decode_page_token,
    encode_page_token,
    event_from_row,
    event_values,
    record_from_row,
    record_values,
)

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)

SELECTOR = Selector(
    requirements=(
        Requirement(key="gpu", operator=Operator.IN, values=("a100", "h100")),
        Requirement(key="tier", operator=Operator.DOES_NOT_EXIST),
    )
)
FULL_REQUEST = PodRequest(
    request_id="req-1",
    pod={"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "main", "args": ["a", 1, None]}]}},
    placement=PlacementSpec(
        selector=SELECTOR,
        regions=frozenset({"eu-west-1", "eu-central-1"}),
        clusters=frozenset({"c1"}),
        tolerations=(Toleration(key="dedicated", operator="Exists"),),
        preferences=(Preference(weight=5, selector=SELECTOR),),
        timeout_seconds=30.5,
    ),
    xcom_mode=XcomMode.SIDECAR,
    xcom_sidecar_image="alpine:3",
    log_selection=LogSelection.NAMED,
    log_containers=("main", "side"),
    on_finish=OnFinishAction.KEEP_POD,
    startup_timeout_seconds=60,
    on_disconnect=DisconnectPolicy.CANCEL,
    reattach_grace_seconds=10.0,
    airflow=AirflowContext(dag_id="d", task_id="t", run_id="r", map_index=3, try_number=2),
    tenant="team-a",
)
DECISION = PlacementDecision(
    verdicts=(
        ClusterVerdict(
            cluster="c1", region="eu-west-1", verdict=Verdict.ELIGIBLE, reason="fits", score=0.75, chosen=True
        ),
        ClusterVerdict(cluster="c2", region="us-east-1", verdict=Verdict.REJECTED, reason="region"),
    ),
    cluster="c1",
    region="eu-west-1",
    reason="best score",
)
RESULT = PodResult(
    phase=PodPhase.FAILED,
    exit_code=137,
    reason="OOMKilled",
    message="out of memory",
    containers=(ContainerResult(name="main", exit_code=137, reason="OOMKilled"),),
    xcom_json='{"v": 42}',
    warning_events=(KubernetesEvent(time=T0, type="Warning", reason="BackOff", message="m", count=3),),
)
CLUSTER = ClusterSpec(
    name="c1",
    provider="eks",
    credentials=CredentialsRef(source="eks", params={"cluster_name": "prod", "region": "eu-west-1"}),
    region="eu-west-1",
    zone="eu-west-1a",
    labels={"gpu": "nvidia-a100", "tier": "prod"},
    taints=(Taint(key="dedicated", value="ml", effect=TaintEffect.PREFER_NO_SELECT),),
    allowed_namespaces=frozenset({"default", "airflow"}),
    max_concurrent_pods=7,
    weight=50,
    source="clusters/prod.yaml",
)


@pytest.mark.parametrize(
    ("value", "encode", "decode"),
    [
        (FULL_REQUEST, codec.encode_pod_request, codec.decode_pod_request),
        (PodRequest(request_id="minimal", pod={}), codec.encode_pod_request, codec.decode_pod_request),
        (DECISION, codec.encode_decision, codec.decode_decision),
        (None, codec.encode_decision, codec.decode_decision),
        (RESULT, codec.encode_result, codec.decode_result),
        (PodResult(phase=PodPhase.SUCCEEDED, exit_code=0), codec.encode_result, codec.decode_result),
        (None, codec.encode_result, codec.decode_result),
        (CLUSTER, codec.encode_cluster, codec.decode_cluster),
        (
            ClusterSpec(name="m", provider="sim", credentials=CredentialsRef(source="sim"), region="r"),
            codec.encode_cluster,
            codec.decode_cluster,
        ),
    ],
    ids=[
        "request",
        "request-minimal",
        "decision",
        "no-decision",
        "result",
        "result-minimal",
        "no-result",
        "cluster",
        "cluster-minimal",
    ],
)
def test_round_trip_through_json_text(value: Any, encode: Any, decode: Any) -> None:
    text = json.dumps(encode(value))
    assert decode(json.loads(text)) == value


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        (datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))), "2026-01-01T10:00:00+00:00"),
        (datetime(2026, 1, 1, 12, 0), "2026-01-01T12:00:00+00:00"),
    ],
    ids=["offset-normalised-to-utc", "naive-taken-as-utc"],
)
def test_datetimes_are_stored_in_utc(given: datetime, stored: str) -> None:
    assert codec.to_data(given) == stored
    assert codec.from_data(datetime, stored) == given if given.tzinfo else given.replace(tzinfo=UTC)


def test_missing_fields_take_defaults_and_unknown_fields_are_ignored() -> None:
    """Rows written before a field existed, or by a newer gateway, still decode."""
    data = {"request_id": "x", "pod": {"kind": "Pod"}, "field_from_the_future": 1}
    assert codec.decode_pod_request(data) == PodRequest(request_id="x", pod={"kind": "Pod"})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"pod": {}}, "request_id"),
        ({"request_id": 5, "pod": {}}, "expected str"),
        ({"request_id": "x", "pod": [], "log_containers": []}, "expected Mapping"),
        ({"request_id": "x", "pod": {}, "log_containers": "main"}, "expected list"),
    ],
    ids=["missing-required", "wrong-scalar", "wrong-mapping", "string-for-tuple"],
)
def test_bad_stored_data_is_a_clear_codec_error(data: dict[str, Any], message: str) -> None:
    with pytest.raises(codec.CodecError, match=message):
        codec.decode_pod_request(data)


def test_bad_enum_value_names_the_value() -> None:
    with pytest.raises(ValueError, match="'Sideways'"):
        codec.decode_result({"phase": "Sideways"})


def test_record_row_round_trip() -> None:
    record = PodRecord(
        request=FULL_REQUEST,
        phase=PodPhase.RUNNING,
        cluster="c1",
        region="eu-west-1",
        namespace="airflow",
        name="pod-abc",
        created_at=T0,
        finished_at=T0 + timedelta(minutes=1),
        decision=DECISION,
        result=RESULT,
    )
    row = record_values(record, now=T0)
    assert (row["dag_id"], row["tenant"], row["phase"]) == ("d", "team-a", "Running")
    assert record_from_row(row) == record


def test_unplaced_record_stores_null_keys_and_takes_now_as_creation_time() -> None:
    row = record_values(PodRecord(request=PodRequest(request_id="r", pod={}), phase=PodPhase.QUEUED), now=T0)
    assert (row["cluster"], row["namespace"], row["name"], row["dag_id"], row["tenant"]) == (None,) * 5
    assert row["created_at"] == T0


def test_journal_event_row_round_trip() -> None:
    event = JournalEvent(kind=JournalKind.LOG, time=T0, payload={"container": "main", "text": "hello"})
    row = event_values(7, 3, event)
    assert event_from_row(row | {"payload": json.loads(row["payload"])}) == event  # the column's type decodes it


@pytest.mark.parametrize("last_id", [1, 99, 2**53])
def test_page_token_round_trip(last_id: int) -> None:
    assert decode_page_token(encode_page_token(last_id)) == last_id


def test_empty_page_token_is_the_first_page() -> None:
    assert decode_page_token("") is None


@pytest.mark.parametrize("token", ["garbage", "dj", "!!!!", encode_page_token(5)[:-2] + "zz"])
def test_foreign_page_token_is_invalid_argument(token: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid page token"):
        decode_page_token(token)
