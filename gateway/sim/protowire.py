"""Just enough Kubernetes protobuf to read the bodies kubectl sends as protobuf (pure).

`kubectl auth can-i`, `auth whoami`, `create token`, `create role` and `create rolebinding` POST
`application/vnd.kubernetes.protobuf` and do not fall back to JSON. A body is the 4-byte magic "k8s\\0"
and a runtime.Unknown message {typeMeta: 1 {apiVersion: 1, kind: 2}, raw: 2}; `raw` is the object. We decode the wire format generically and map
the fields of those few kinds to the JSON shape the rest of the simulator handles; answers go back as
JSON, which kubectl accepts.
"""

from __future__ import annotations

import base64
from typing import Any

from gateway.sim.errors import BadRequest, UnsupportedMediaType

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


# A message's layout: field number -> (JSON name, kind); kind is "str", "int", "strs" (repeated string),
# "map" (string map), "bytesmap" (bytes map, base64 in JSON), a nested layout, or a one-element list holding a nested layout (repeated message).
Layout = dict[int, tuple[str, Any]]
OBJECT_META: Layout = {
    1: ("name", "str"),
    2: ("generateName", "str"),
    3: ("namespace", "str"),
    11: ("labels", "map"),
    12: ("annotations", "map"),
    14: ("finalizers", "strs"),
}
_RESOURCE_ATTRIBUTES: Layout = {
    1: ("namespace", "str"),
    2: ("verb", "str"),
    3: ("group", "str"),
    4: ("version", "str"),
    5: ("resource", "str"),
    6: ("subresource", "str"),
    7: ("name", "str"),
}
_RULE: Layout = {
    1: ("verbs", "strs"),
    2: ("apiGroups", "strs"),
    3: ("resources", "strs"),
    4: ("resourceNames", "strs"),
    5: ("nonResourceURLs", "strs"),
}
_SUBJECT: Layout = {1: ("kind", "str"), 2: ("apiGroup", "str"), 3: ("name", "str"), 4: ("namespace", "str")}
_ROLE_REF: Layout = {1: ("apiGroup", "str"), 2: ("kind", "str"), 3: ("name", "str")}
_BOUND_REF: Layout = {1: ("kind", "str"), 2: ("apiVersion", "str"), 3: ("name", "str"), 4: ("uid", "str")}
LAYOUTS: dict[str, Layout] = {
    "SelfSubjectAccessReview": {
        1: ("metadata", OBJECT_META),
        2: (
            "spec",
            {
                1: ("resourceAttributes", _RESOURCE_ATTRIBUTES),
                2: ("nonResourceAttributes", {1: ("path", "str"), 2: ("verb", "str")}),
            },
        ),
    },
    "SelfSubjectReview": {1: ("metadata", OBJECT_META)},
    "SelfSubjectRulesReview": {1: ("metadata", OBJECT_META), 2: ("spec", {1: ("namespace", "str")})},
    "ServiceAccount": {1: ("metadata", OBJECT_META)},
    "Namespace": {1: ("metadata", OBJECT_META)},
    "Secret": {1: ("metadata", OBJECT_META), 2: ("data", "bytesmap"), 3: ("type", "str"), 4: ("stringData", "map")},
    "Role": {1: ("metadata", OBJECT_META), 2: ("rules", [_RULE])},
    "RoleBinding": {1: ("metadata", OBJECT_META), 2: ("subjects", [_SUBJECT]), 3: ("roleRef", _ROLE_REF)},
    "TokenRequest": {
        1: ("metadata", OBJECT_META),
        2: (
            "spec",
            {
                1: ("audiences", "strs"),
                4: ("expirationSeconds", "int"),
                3: ("boundObjectRef", _BOUND_REF),
            },
        ),
    },
}


def _decode(msg: Fields, layout: Layout) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, values in msg.items():
        if number not in layout:
            continue
        name, kind = layout[number]
        if kind == "str" and not values[-1]:  # gogo-protobuf writes unset strings as empty: JSON omits them
            continue
        if kind == "str":
            out[name] = bytes(values[-1]).decode()
        elif kind == "int":
            out[name] = int(values[-1])
        elif kind == "strs":
            out[name] = [bytes(v).decode() for v in values]
        elif kind in ("map", "bytesmap"):
            entries = [fields(bytes(v)) for v in values]
            raw = {bytes(e[1][0]).decode(): bytes(e.get(2, [b""])[0]) for e in entries if 1 in e}
            encode = (lambda b: base64.b64encode(b).decode()) if kind == "bytesmap" else (lambda b: b.decode())
            out[name] = {k: encode(v) for k, v in raw.items()}
        elif isinstance(kind, list):
            out[name] = [_decode(fields(bytes(v)), kind[0]) for v in values]
        else:
            out[name] = _decode(fields(bytes(values[-1])), kind)
    return out


def decode(body: bytes) -> dict[str, Any]:
    """An object kubectl sent as protobuf, as the equivalent JSON object (for the kinds in LAYOUTS)."""
    if not body.startswith(MAGIC):
        raise BadRequest("protobuf body without the k8s\\0 prefix")
    unknown = fields(body[len(MAGIC) :])
    type_meta = _decode(fields(bytes(unknown.get(1, [b""])[0])), {1: ("apiVersion", "str"), 2: ("kind", "str")})
    kind = type_meta.get("kind", "")
    if kind not in LAYOUTS:
        raise UnsupportedMediaType(
            f"{PROTOBUF} bodies are accepted for {', '.join(LAYOUTS)}, not for {kind!r}: send JSON"
        )
    raw = fields(bytes(unknown.get(2, [b""])[0]))
    return {**type_meta, **_decode(raw, LAYOUTS[kind])}
