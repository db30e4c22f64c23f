"""The watches decode each object into the fields the gateway reads (gateway/clusters/shapes.py): on any pod,
node or event, every reader reads the same from that narrow decode as from the whole object, and a line the
narrow decode refuses is read whole."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import domain
from gateway.clusters import shapes
from gateway.clusters.capacity import node_state, pod_usage, sizing
from gateway.clusters.kubeapi.decode import Narrow, WatchEvent, decode_watch_line
from gateway.clusters.runtime import event_key, involved_pod, kube_event, owned_by, pod_key
from gateway.clusters.tracking import kept

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)  # Kubernetes' integers (orjson reads larger as float)
LEAF = st.none() | st.booleans() | INT64 | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8)
JSON = st.recursive(
    LEAF, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8
)
WORDS = st.sampled_from(["", "a", "main", "default", "Running", "True", "node-1", "podgate.io/x"])


def obj(required: Mapping[str, st.SearchStrategy[Any]], extra: int = 3) -> st.SearchStrategy[Any]:
    """An object with any of these fields and a few others the readers never read; now and then not an
    object at all (a malformed answer: the narrow decode refuses it, and it is read whole)."""
    fields = st.fixed_dictionaries({}, optional=dict(required))
    others = st.dictionaries(st.text(max_size=10), JSON, max_size=extra)
    return some(st.builds(lambda o, f: {**o, **f}, others, fields), JSON.filter(lambda v: not isinstance(v, dict)))


def some(value: st.SearchStrategy[Any], odd: st.SearchStrategy[Any] = JSON) -> st.SearchStrategy[Any]:
    """Mostly `value`, one time in ten `odd`: mostly well-formed objects, so that a reader that fails on a
    malformed part (in both decodes alike) does not hide what it would read of the rest."""
    return st.integers(0, 9).flatmap(lambda i: odd if i == 0 else value)


QUANTITY = st.sampled_from(["10m", "1", "0.5", "16Mi", "1Gi", "2", "bad", ""]) | JSON
RESOURCES = obj({"requests": obj({"cpu": QUANTITY, "memory": QUANTITY, domain.GPU_RESOURCE: QUANTITY}),
                 "limits": obj({"cpu": QUANTITY, "memory": QUANTITY, domain.GPU_RESOURCE: QUANTITY})})  # fmt: skip
CONTAINER = obj({"name": some(WORDS), "resources": RESOURCES, "restartPolicy": some(st.just("Always")),
                 "image": st.text(max_size=5), "env": JSON})  # fmt: skip
STATE = obj({"running": obj({"startedAt": JSON}), "terminated": obj({"exitCode": some(INT64), "reason": JSON,
             "message": JSON}), "waiting": obj({"reason": some(WORDS), "message": JSON})})  # fmt: skip
LABELS = st.dictionaries(WORDS | st.sampled_from([domain.MANAGED_BY_LABEL, "podgate.io/request-id"]), some(WORDS))
POD = obj({
    "metadata": obj({
        "name": some(WORDS), "namespace": some(WORDS), "uid": some(WORDS), "resourceVersion": some(WORDS),
        "creationTimestamp": JSON, "deletionTimestamp": JSON, "labels": some(LABELS), "annotations": some(LABELS),
        "managedFields": JSON,
    }),
    "spec": obj({
        "nodeName": some(WORDS), "containers": some(st.lists(CONTAINER, max_size=3)),
        "initContainers": some(st.lists(CONTAINER, max_size=2)), "overhead": obj({"cpu": QUANTITY}),
        "tolerations": JSON,
    }),
    "status": obj({
        "phase": some(st.sampled_from(["Pending", "Running", "Succeeded", "Failed"])), "reason": JSON, "message": JSON,
        "conditions": some(st.lists(obj({"type": some(WORDS), "status": some(WORDS), "reason": JSON, "message": JSON,
                                         "lastTransitionTime": JSON}), max_size=4)),
        "containerStatuses": some(st.lists(obj({"name": some(WORDS), "state": STATE, "lastState": STATE,
                                                "image": JSON}), max_size=2)),
        "initContainerStatuses": some(st.lists(obj({"name": some(WORDS), "state": STATE}), max_size=2)),
    }),
})  # fmt: skip
NODE = obj({
    "metadata": obj({"name": some(WORDS), "labels": some(LABELS), "resourceVersion": some(WORDS)}),
    "spec": obj({"taints": some(st.lists(obj({"key": some(WORDS), "value": some(WORDS), "effect": some(WORDS)}))),
                 "unschedulable": some(st.booleans())}),
    "status": obj({"allocatable": obj({"cpu": QUANTITY, "memory": QUANTITY}), "capacity": obj({"cpu": QUANTITY}),
                   "conditions": some(st.lists(obj({"type": some(st.just("Ready")), "status": some(WORDS)}))),
                   "images": JSON}),
})  # fmt: skip
EVENT = obj({
    "metadata": obj({"uid": some(WORDS), "resourceVersion": some(WORDS), "name": JSON}),
    "involvedObject": obj({"kind": some(st.just("Pod")), "namespace": some(WORDS), "name": some(WORDS), "uid": JSON}),
    "type": some(st.sampled_from(["Normal", "Warning"])), "reason": JSON, "message": JSON, "count": some(INT64),
    "lastTimestamp": some(st.just("2020-01-02T10:00:00Z")), "eventTime": JSON, "firstTimestamp": JSON,
    "source": JSON,
})  # fmt: skip


def outcome(read: Callable[[Any], Any], value: Any) -> Any:
    """What a reader answers, or the kind of error it raises (a malformed object fails the same way)."""
    try:
        return read(value)
    except Exception as e:  # the error's kind is the outcome compared
        return type(e)


def read_pod(pod: Any) -> tuple[Any, ...]:
    readers: list[Callable[[Any], Any]] = [kept, sizing, pod_usage, pod_key, lambda p: owned_by(p, "podgate")]
    return tuple(outcome(read, pod) for read in readers)


def read_node(node: Any) -> tuple[Any, ...]:
    return outcome(node_state, node), outcome(lambda n: (n.get("metadata") or {}).get("name", ""), node)


def read_event(event: Any) -> tuple[Any, ...]:
    as_read = outcome(kube_event, event)
    if isinstance(as_read, domain.KubernetesEvent) and abs(as_read.time - datetime.now(UTC)) < timedelta(hours=1):
        as_read = replace(as_read, time=None)  # no time of its own (none, or not one): the time it was read
    return outcome(involved_pod, event), outcome(event_key, event), as_read


def both(kind: str, value: Any, narrow: Narrow) -> tuple[WatchEvent | type, WatchEvent | type]:
    line = orjson.dumps({"type": kind, "object": value})
    whole = outcome(lambda raw: decode_watch_line(raw, cluster="c", call="w"), line)
    return whole, outcome(lambda raw: decode_watch_line(raw, cluster="c", call="w", narrow=narrow), line)


def check(kind: str, value: Any, narrow: Narrow, read: Callable[[Any], tuple[Any, ...]]) -> None:
    whole, narrowed = both(kind, value, narrow)
    if not isinstance(whole, WatchEvent):
        assert narrowed is whole  # the same error
        return
    assert isinstance(narrowed, WatchEvent)
    assert (narrowed.type, narrowed.resource_version) == (whole.type, whole.resource_version)
    assert read(narrowed.object) == read(whole.object)


KIND = st.sampled_from(["ADDED", "MODIFIED", "DELETED", "BOOKMARK"])
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(kind=KIND, pod=POD)
def test_every_reader_reads_a_narrow_pod_as_the_whole_one(kind: str, pod: Any) -> None:
    check(kind, pod, shapes.PODS, read_pod)


@SETTINGS
@given(kind=KIND, node=NODE)
def test_every_reader_reads_a_narrow_node_as_the_whole_one(kind: str, node: Any) -> None:
    check(kind, node, shapes.NODES, read_node)


@SETTINGS
@given(kind=KIND, event=EVENT)
def test_every_reader_reads_a_narrow_event_as_the_whole_one(kind: str, event: Any) -> None:
    check(kind, event, shapes.EVENTS, read_event)


def running_pod() -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "default", "uid": "u1", "resourceVersion": "7",
                     "labels": {domain.MANAGED_BY_LABEL: "podgate", "app": "x"}, "managedFields": [{"manager": "k"}]},
        "spec": {"nodeName": "n1", "containers": [{"name": "main", "image": "busybox", "env": [{"name": "A"}],
                                                   "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]},
        "status": {"phase": "Running", "podIP": "10.0.0.1", "containerStatuses": [
            {"name": "main", "image": "busybox", "state": {"running": {"startedAt": "2026-12-05T10:00:00Z"}}}]},
    }  # fmt: skip


def test_the_narrow_decode_leaves_out_what_no_reader_reads() -> None:
    event = decode_watch_line(orjson.dumps({"type": "MODIFIED", "object": running_pod()}), cluster="c", call="w",
                              narrow=shapes.PODS)  # fmt: skip
    assert "managedFields" not in event.object["metadata"]
    assert event.object["spec"]["containers"] == [{"name": "main", "resources": {"requests": {"cpu": "10m",
                                                                                               "memory": "16Mi"}}}]
    assert event.object["status"]["containerStatuses"][0].keys() == {"name", "state"}
    assert "podIP" not in event.object["status"]
    assert (event.resource_version, read_pod(event.object)) == ("7", read_pod(running_pod()))


@pytest.mark.parametrize(
    "spec", [{"containers": "not a list"}, {"containers": [1]}, {"containers": None}], ids=["string", "item", "null"]
)
def test_a_pod_the_shape_does_not_fit_is_read_whole(spec: dict[str, Any]) -> None:
    pod = {**running_pod(), "spec": spec}
    event = decode_watch_line(orjson.dumps({"type": "ADDED", "object": pod}), cluster="c", call="w", narrow=shapes.PODS)
    assert event.object == pod  # whole, managed fields and all: as every reader read it before


def test_an_error_line_is_read_whole_through_a_narrow_decoder() -> None:
    from gateway.clusters.kubeapi.errors import Gone

    status = {"kind": "Status", "metadata": {}, "code": 410, "message": "too old resource version"}
    with pytest.raises(Gone, match="too old resource version"):
        decode_watch_line(orjson.dumps({"type": "ERROR", "object": status}), cluster="c", call="w", narrow=shapes.PODS)
