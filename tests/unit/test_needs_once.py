"""A pod's needs are read from its manifest once a request (issue 16): what every reader gets is what reading
the manifest afresh gives, nothing derived is compared or stored, and a request decoded from the store (or a
new manifest) reads them again. Also the integer roundings of quantities against the Fraction arithmetic
they replaced."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.domain import (
    ClusterHealth,
    ClusterSnapshot,
    ClusterSpec,
    CredentialsRef,
    NodeState,
    PlacementSpec,
    PodPhase,
    PodRecord,
    PodRequest,
)
from gateway.errors import InvalidArgument
from gateway.placement import engine
from gateway.placement.node_fit import PodNeeds, pod_needs, request_needs
from gateway.placement.quantity import QUANTITY_MAX, to_millis, to_units
from gateway.pods.validation import pod_violations, validate_request
from gateway.policy.admission import admit_submission, recheck_quota, usage_of
from gateway.policy.tenants import ResourceCaps, Tenant, TenantUsage
from gateway.store.codec import from_data, to_data
from tests.unit.test_fast_paths import _spec

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None)
OPEN = Tenant(name="", clusters=frozenset({"*"}), namespaces=frozenset({"*"}), admin=True)
QUOTAS = Tenant(name="t", clusters=frozenset({"*"}), namespaces=frozenset({"*"}), total_caps=ResourceCaps(gpus=10**6))


def _fleet() -> list[ClusterSnapshot]:
    spec = ClusterSpec(name="c", provider="sim", credentials=CredentialsRef(source="sim"), region="r")
    node = NodeState(name="n", cpu_millis=4000, memory_bytes=2**34)
    return [ClusterSnapshot(spec=spec, health=ClusterHealth.HEALTHY, nodes=(node,))]


def _outcome(read: Any) -> PodNeeds | tuple[str, list[Any]]:
    try:
        needs: PodNeeds = read()
    except InvalidArgument as e:
        return str(e), e.violations
    return needs


def _request(spec: dict[str, Any], request_id: str = "r", tenant: str = "") -> PodRequest:
    return PodRequest(request_id=request_id, pod={"metadata": {"namespace": "default"}, "spec": spec}, tenant=tenant)


@SETTINGS
@given(spec=_spec(), tolerations=st.booleans())
def test_the_needs_kept_with_a_request_are_the_manifests_read_afresh(spec: dict[str, Any], tolerations: bool) -> None:
    if tolerations:
        spec["tolerations"] = [{"key": "k", "operator": "Exists"}]
    request = _request(spec)
    expected = _outcome(lambda: pod_needs(request.pod))
    first = _outcome(lambda: request_needs(request))
    assert first == expected
    assert _outcome(lambda: request_needs(request)) == expected  # read again: raised afresh or kept
    if isinstance(first, PodNeeds):
        assert request_needs(request) is first
        assert engine.prepare(request).needs is first


@SETTINGS
@given(spec=_spec())
def test_validation_refuses_what_it_refused_reading_the_manifest_itself(spec: dict[str, Any]) -> None:
    """`validate_request` reads through the request's kept needs, `pod_violations` alone through pod_needs."""
    request = _request(spec)
    alone = pod_violations(request.pod)
    try:
        validate_request(request)
        kept: list[Any] = []
    except InvalidArgument as e:
        kept = e.violations
    assert kept == alone


def test_one_submission_reads_the_manifests_needs_once_for_every_later_reader() -> None:
    """Validation reads them; the tenant's caps, the admitted request (a copy with a narrowed placement),
    the placement at acceptance, the quota's recheck and the runner's check all get that very value."""
    request = _request({"containers": [{"name": "m", "image": "i", "resources": {"requests": {"cpu": "250m"}}}]})
    validate_request(request)
    needs = request_needs(request)
    assert needs == pod_needs(request.pod)
    admitted = admit_submission(QUOTAS, request, clusters=[s.spec for s in _fleet()], usage=TenantUsage())
    assert admitted is not request and admitted.tenant == "t"
    assert request_needs(admitted) is needs
    assert engine.prepare(admitted).needs is needs
    recheck_quota(QUOTAS, admitted, [])
    assert engine.is_candidate(admitted, _fleet(), "c")


def test_a_copy_with_another_manifest_reads_its_own_needs() -> None:
    small = {"containers": [{"name": "m", "image": "i", "resources": {"requests": {"cpu": "1"}}}]}
    large = {"containers": [{"name": "m", "image": "i", "resources": {"requests": {"cpu": "8"}}}]}
    request = _request(small)
    assert request_needs(request).cpu_millis == 1000
    for other in (request.replaced(pod={"spec": large}), replace(request, pod={"spec": large})):
        assert request_needs(other).cpu_millis == 8000
    plain_copy = replace(request, request_id="other")  # dataclasses.replace keeps nothing: read again, equal
    assert request_needs(plain_copy) == request_needs(request)
    assert request_needs(request.replaced(request_id="other")) is request_needs(request)


def test_what_is_kept_is_never_compared_shown_or_stored() -> None:
    spec = {"containers": [{"name": "m", "image": "i", "resources": {"limits": {"nvidia.com/gpu": 2}}}]}
    read, fresh = _request(spec), _request(spec)
    request_needs(read)
    assert read == fresh and repr(read) == repr(fresh)
    assert to_data(read) == to_data(fresh)
    decoded = from_data(PodRequest, to_data(read))  # as after a restart: read again from the stored manifest
    assert decoded == read
    assert request_needs(decoded) == request_needs(read) and request_needs(decoded).gpus == 2


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(specs=st.lists(_spec(), max_size=5), finished=st.lists(st.booleans(), max_size=5))
def test_a_tenants_usage_counts_what_reading_each_manifest_afresh_counts(
    specs: list[dict[str, Any]], finished: list[bool]
) -> None:
    now = datetime.now(UTC)
    records = [
        PodRecord(
            request=_request(spec, f"r{i}", tenant="t"),
            phase=PodPhase.SUCCEEDED if i < len(finished) and finished[i] else PodPhase.RUNNING,
            created_at=now,
        )
        for i, spec in enumerate(specs)
    ]
    pods = cpu = memory = gpus = 0
    for r in records:
        if r.phase.finished:
            continue
        try:
            needs = pod_needs(r.request.pod)
        except InvalidArgument:
            continue
        pods, cpu, memory, gpus = pods + 1, cpu + needs.cpu_millis, memory + needs.memory_bytes, gpus + needs.gpus
    expected = TenantUsage(running_pods=pods, cpu_millis=cpu, memory_bytes=memory, gpus=gpus)
    assert usage_of(records, "t") == expected
    assert usage_of(records, "t") == expected  # the second time from what the first kept


@SETTINGS
@given(value=st.fractions(min_value=-QUANTITY_MAX, max_value=QUANTITY_MAX, max_denominator=10**12))
def test_integer_roundings_are_the_fraction_ceilings(value: Fraction) -> None:
    assert to_millis(value) == math.ceil(value * 1000)
    assert to_units(value) == math.ceil(value)


@pytest.mark.parametrize(
    ("value", "millis", "units"),
    [(Fraction(1, 10_000), 1, 1), (Fraction(0), 0, 0), (Fraction(-1, 3), -333, 0), (Fraction(5, 2), 2500, 3)],
)
def test_integer_roundings_round_up(value: Fraction, millis: int, units: int) -> None:
    assert (to_millis(value), to_units(value)) == (millis, units)


def test_a_placement_spec_change_keeps_the_needs_of_the_same_manifest() -> None:
    """The dispatcher's alias resolution and the tenant's narrowing replace the placement, not the manifest."""
    request = _request({"containers": [{"name": "m", "image": "i"}]})
    needs = request_needs(request)
    narrowed = request.replaced(placement=PlacementSpec(clusters=frozenset({"a"})))
    assert narrowed.placement.clusters == {"a"} and request_needs(narrowed) is needs
