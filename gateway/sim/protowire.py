"""Just enough Kubernetes protobuf to read the review bodies kubectl sends as protobuf (pure).

`kubectl auth can-i` and `kubectl auth whoami` POST `application/vnd.kubernetes.protobuf` and do not
fall back to JSON. A body is the 4-byte magic "k8s\\0" and a runtime.Unknown message {typeMeta: 1
{apiVersion: 1, kind: 2}, raw: 2}; `raw` is the object. We decode the wire format generically and map
the few review fields we need to the JSON shape the rest of the simulator handles; answers go back as
JSON, which kubectl accepts.
"""

from __future__ import annotations

from typing import Any

from gateway.sim.errors import BadRequest

MAGIC = b"k8s\x00"
PROTOBUF = "application/vnd.kubernetes.protobuf"
Fields = dict[int, list[Any]]


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise BadRequest("truncated protobuf body")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(data: bytes) -> Fields:
    """Field number -> values (ints for varints, bytes for length-delimited) of one message."""
    out: Fields = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = data[pos : pos + size], pos + size
        else:
            raise BadRequest(f"unsupported protobuf wire type {wire}")
        out.setdefault(number, []).append(value)
    return out


def _text(msg: Fields, number: int) -> str:
    values = msg.get(number)
    return bytes(values[0]).decode() if values else ""


def _sub(msg: Fields, number: int) -> Fields | None:
    values = msg.get(number)
    return fields(bytes(values[0])) if values else None


def decode_review(body: bytes) -> dict[str, Any]:
    """A SelfSubjectAccessReview or SelfSubjectReview sent as protobuf, as the equivalent JSON object."""
    if not body.startswith(MAGIC):
        raise BadRequest("protobuf body without the k8s\\0 prefix")
    unknown = fields(body[len(MAGIC) :])
    type_meta = _sub(unknown, 1) or {}
    raw = _sub(unknown, 2) or {}
    obj: dict[str, Any] = {"apiVersion": _text(type_meta, 1), "kind": _text(type_meta, 2), "spec": {}}
    spec = _sub(raw, 2)
    if spec is None:
        return obj
    resource = _sub(spec, 1)
    if resource is not None:
        names = ("namespace", "verb", "group", "version", "resource", "subresource", "name")
        obj["spec"]["resourceAttributes"] = {n: _text(resource, i) for i, n in enumerate(names, 1)}
    non_resource = _sub(spec, 2)
    if non_resource is not None:
        obj["spec"]["nonResourceAttributes"] = {"path": _text(non_resource, 1), "verb": _text(non_resource, 2)}
    return obj
