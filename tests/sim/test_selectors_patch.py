"""Pure logic of the simulated API server: selectors, patches, protobuf review decoding."""

from __future__ import annotations

import pytest

from gateway.sim import patch, protowire
from gateway.sim.errors import BadRequest, UnsupportedMediaType
from gateway.sim.selectors import parse_field_selector, parse_label_selector

LABELS = {"app": "web", "tier": "gold", "gpus": "4"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("", True),
        ("app=web", True),
        ("app==web,tier=gold", True),
        ("app!=web", False),
        ("app in (db, web)", True),
        ("app notin (web)", False),
        ("missing notin (x)", True),
        ("tier", True),
        ("!tier", False),
        ("!missing", True),
        ("gpus>2", True),
        ("gpus<2", False),
        ("app=web,tier in (silver)", False),
    ],
)
def test_label_selectors(selector: str, expected: bool) -> None:
    assert parse_label_selector(selector).matches(LABELS) is expected


@pytest.mark.parametrize("selector", ["app in (x", "a=b=c", "=x", "app in x", "bad key!=x"])
def test_bad_label_selectors_are_400(selector: str) -> None:
    with pytest.raises(BadRequest):
        parse_label_selector(selector)


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("metadata.name=p", True),
        ("metadata.name!=p", False),
        ("spec.nodeName=n1,status.phase=Running", True),
        ("status.phase=Pending", False),
        ("spec.nodeName=", False),
    ],
)
def test_field_selectors(selector: str, expected: bool) -> None:
    pod = {"metadata": {"name": "p", "namespace": "d"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}}
    assert parse_field_selector(selector, "pods").matches(pod) is expected


POD = {
    "metadata": {"name": "p", "labels": {"a": "1"}, "finalizers": ["x"]},
    "spec": {
        "containers": [
            {"name": "main", "image": "i:1", "env": [{"name": "A", "value": "1"}]},
            {"name": "side", "image": "s:1"},
        ]
    },
}


@pytest.mark.parametrize(
    ("content_type", "body", "check"),
    [
        (
            patch.MERGE_PATCH,
            {"metadata": {"labels": {"a": None, "b": "2"}}},
            lambda o: o["metadata"]["labels"] == {"b": "2"},
        ),
        (
            patch.MERGE_PATCH,
            {"spec": {"containers": [{"name": "only"}]}},
            lambda o: [c["name"] for c in o["spec"]["containers"]] == ["only"],
        ),
        (
            patch.STRATEGIC_MERGE_PATCH,
            {"spec": {"containers": [{"name": "main", "image": "i:2"}]}},
            lambda o: (
                [(c["name"], c["image"]) for c in o["spec"]["containers"]] == [("main", "i:2"), ("side", "s:1")]
                and o["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}]
            ),
        ),
        (
            patch.STRATEGIC_MERGE_PATCH,
            {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}},
            lambda o: [c["name"] for c in o["spec"]["containers"]] == ["main"],
        ),
        (
            patch.STRATEGIC_MERGE_PATCH,
            {"spec": {"containers": [{"name": "main", "env": [{"name": "B", "value": "2"}]}]}},
            lambda o: [e["name"] for e in o["spec"]["containers"][0]["env"]] == ["A", "B"],
        ),
        (
            patch.STRATEGIC_MERGE_PATCH,
            {"metadata": {"finalizers": ["y"]}},
            lambda o: o["metadata"]["finalizers"] == ["x", "y"],
        ),
        (
            patch.STRATEGIC_MERGE_PATCH,
            {"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}},
            lambda o: o["metadata"]["finalizers"] == [],
        ),
        (
            patch.JSON_PATCH,
            [
                {"op": "replace", "path": "/spec/containers/1/image", "value": "s:2"},
                {"op": "remove", "path": "/metadata/labels/a"},
            ],
            lambda o: o["spec"]["containers"][1]["image"] == "s:2" and o["metadata"]["labels"] == {},
        ),
    ],
)
def test_patch_flavours(content_type: str, body: object, check) -> None:
    assert check(patch.apply(content_type, POD, body))


def test_patch_errors() -> None:
    with pytest.raises(UnsupportedMediaType):
        patch.apply(patch.APPLY_PATCH, POD, {})
    with pytest.raises(BadRequest):
        patch.apply(patch.JSON_PATCH, POD, [{"op": "test", "path": "/metadata/name", "value": "other"}])


def _field(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_protobuf_access_review_is_decoded() -> None:
    attrs = _field(1, b"team") + _field(2, b"create") + _field(5, b"pods")
    raw = _field(2, _field(1, attrs))
    type_meta = _field(1, b"authorization.k8s.io/v1") + _field(2, b"SelfSubjectAccessReview")
    body = protowire.MAGIC + _field(1, type_meta) + _field(2, raw)
    review = protowire.decode(body)
    assert review["kind"] == "SelfSubjectAccessReview"
    assert review["spec"]["resourceAttributes"] == {"namespace": "team", "verb": "create", "resource": "pods"}


def test_protobuf_role_binding_is_decoded_and_unknown_kinds_are_415() -> None:
    meta = _field(1, b"rb") + _field(11, _field(1, b"team") + _field(2, b"x"))
    subject = _field(1, b"ServiceAccount") + _field(3, b"runner") + _field(4, b"ns")
    raw = _field(1, meta) + _field(2, subject) + _field(3, _field(2, b"Role") + _field(3, b"pods"))
    type_meta = _field(1, b"rbac.authorization.k8s.io/v1") + _field(2, b"RoleBinding")
    binding = protowire.decode(protowire.MAGIC + _field(1, type_meta) + _field(2, raw))
    assert binding == {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "rb", "labels": {"team": "x"}},
        "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": "ns"}],
        "roleRef": {"kind": "Role", "name": "pods"},
    }
    with pytest.raises(UnsupportedMediaType):
        protowire.decode(protowire.MAGIC + _field(1, _field(1, b"v1") + _field(2, b"Pod")) + _field(2, b""))
