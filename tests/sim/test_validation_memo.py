"""The simulator's memoised schema checks answer exactly what a fresh check of each body answers.

Bodies that differ only in label or annotation values share one check (`_memo_key(loose=True)`); these
tests draw such values (strings, and the numbers, nulls, lists and maps a schema error names) and compare
every answer with the un-memoised one.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.sim import defaults, pod_resources
from gateway.sim.errors import BadRequest, Invalid
from gateway.sim.validation import (
    _label_causes,
    _name_causes,
    _pod_causes,
    _schema_causes_of,
    _unique,
    field_validation,
    free_text_maps,
    unknown_fields,
    validate_create,
)

TEMPLATE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p", "namespace": "default"},
    "spec": {"containers": [{"name": "main", "image": "busybox", "resources": {"requests": {"cpu": "10m"}}}]},
}
_KEYS = st.sampled_from(["a", "app", "example.com/run-id", "sim.podgate.io/duration", "x" * 70])
_VALUES = st.one_of(
    st.text(max_size=8),
    st.integers(-3, 3),
    st.none(),
    st.booleans(),
    st.lists(st.text(max_size=2), max_size=2),
    st.dictionaries(st.text(max_size=2), st.text(max_size=2), max_size=1),
)
_MAPS = st.one_of(st.dictionaries(_KEYS, _VALUES, max_size=4), st.none(), st.text(max_size=3), st.integers())
_EXTRA_FIELDS = st.dictionaries(st.sampled_from(["bogus", "spec", "priority"]), st.sampled_from([1, "x", None]), max_size=1)


def _pod(labels: Any, annotations: Any, extra: dict[str, Any]) -> dict[str, Any]:
    pod = copy.deepcopy(TEMPLATE)
    pod["metadata"].update(labels=labels, annotations=annotations)
    for field, value in extra.items():
        if field == "spec":
            pod["spec"]["activeDeadlineSeconds"] = value
        else:
            pod[field] = value
    defaults.APPLY["pods"](pod)
    return pod


def _schema_answer(pod: dict[str, Any]) -> list[tuple[str, str, str]]:
    try:
        validate_create("pods", pod)
    except Invalid as e:
        return [(c["reason"], c["field"], c["message"]) for c in (e.details or {}).get("causes", [])]
    return []


def _unmemoised_causes(pod: dict[str, Any]) -> list[tuple[str, str, str]]:
    """What validate_create answers with its schema part checked afresh (the rest is never memoised)."""
    meta = pod["metadata"]
    causes = _name_causes("pods", meta) + _label_causes(meta) + _schema_causes_of("pods", pod)
    return _unique(causes + _pod_causes(pod) + pod_resources.causes(pod))


@settings(max_examples=300, deadline=None)
@given(labels=_MAPS, annotations=_MAPS, extra=_EXTRA_FIELDS)
def test_memoised_checks_answer_as_fresh_ones(labels: Any, annotations: Any, extra: dict[str, Any]) -> None:
    pod = _pod(labels, annotations, extra)
    # Sorted: a memoised check walks the body's canonical JSON (keys sorted), a fresh one its own order.
    assert sorted(_schema_answer(pod)) == sorted(_unmemoised_causes(pod))
    expected_unknown = [f'unknown field "{f}"' for f in unknown_fields("pods", pod)]
    assert sorted(field_validation("pods", pod, "Warn")) == sorted(expected_unknown)
    if expected_unknown:
        with pytest.raises(BadRequest):
            field_validation("pods", pod, "Strict")


def test_a_wrong_label_value_is_named_after_a_right_one_was_memoised() -> None:
    """A body whose loose form was found valid before still has its own errors found, quoting its own values."""
    assert _schema_answer(_pod({"run": "one"}, {"note": "fine"}, {})) == []
    causes = _schema_answer(_pod({"run": 7}, {"note": "fine"}, {"spec": "soon"}))
    fields = {field: message for _, field, message in causes}
    assert fields["metadata.labels.run"] == "Invalid value: 7 is not of type 'string', 'null'"
    assert fields["spec.activeDeadlineSeconds"] == "Invalid value: 'soon' is not of type 'integer', 'null'"


@pytest.mark.parametrize("resource", ["pods", "nodes", "events", "namespaces", "secrets", "rolebindings"])
def test_labels_and_annotations_are_free_text_in_the_shipped_schemas(resource: str) -> None:
    """If a schema ever constrained these values more, the loose key would be turned off (and this would say so)."""
    assert free_text_maps(resource) == ("labels", "annotations")
