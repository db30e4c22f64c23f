"""Random and malformed inputs for the gRPC fuzz test: pure functions of one seeded `random.Random`.

Nothing here does I/O, so a seed names exactly the same inputs on every machine. `Junk` makes values
(strings, integers, JSON documents, protobuf messages), `mutate` breaks a valid message in a few
places, and `raw_bytes` makes wire-level garbage out of a valid serialization.
"""

from __future__ import annotations

import copy
import json
import random
import string
from collections.abc import Callable, Sequence
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

F = FieldDescriptor
INT_BOUNDS = {F.TYPE_INT32: 31, F.TYPE_INT64: 63, F.TYPE_SINT32: 31, F.TYPE_SINT64: 63, F.TYPE_ENUM: 31}
MAX_DEPTH = 4

# A manifest the gateway accepts; on the fuzz world's virtual nodes it "runs" until cancelled.
VALID_MANIFEST: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "fuzz", "annotations": {"sim.podgate.io/duration": "600"}},
    "spec": {"containers": [{"name": "main", "image": "python:3.12", "command": ["python", "-c", "pass"]}]},
}
SELECTOR_BITS = ("=", "==", "!=", ",", "!", " in ", " notin ", "(", ")", " ", "a", "tier", "env", "gpu", ">", "<", "")
OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt", "in", "", "Equal", "exists")
EFFECTS = ("NoSelect", "PreferNoSelect", "NoSchedule", "", "noselect")
PATHS = ("/etc/passwd", "/proc/self/environ", "/dev/null", "/", "../../../etc/shadow", "~/.kube/config", "C:\\x")
PROVIDERS = ("sim", "kubeconfig", "eks", "gke", "aks", "in-cluster", "SIM", "", "docker")
NAMESPACES = ("default", "airflow", "kube-system", "*", "Default", "ns_1")


class Junk:
    """Values for protobuf fields and JSON documents, from a seeded generator.

    `names` are strings worth hitting on purpose (cluster names, regions, ids already accepted), so
    that some random requests reach past the first lookup.
    """

    def __init__(self, rng: random.Random, names: Sequence[str] = ()) -> None:
        self.rng = rng
        self.names = list(names) or ["x"]

    def pick(self, options: Sequence[Any]) -> Any:
        return options[self.rng.randrange(len(options))]

    # --- scalars -----------------------------------------------------------------------------

    def codepoint(self) -> str:
        while True:
            cp = self.rng.choice((self.rng.randrange(0x20, 0x7F), self.rng.randrange(0x110000)))
            if not 0xD800 <= cp <= 0xDFFF:  # surrogates cannot be UTF-8 encoded, so no client can send them
                return chr(cp)

    def text(self) -> str:
        rng, kind = self.rng, self.rng.randrange(12)
        if kind == 0:
            return ""
        if kind == 1:
            return "".join(rng.choices(string.ascii_letters + string.digits + "-._", k=rng.randint(1, 40)))
        if kind == 2:
            return rng.choice("ab-9.") * rng.choice((64, 254, 300, 4096, 70_000))
        if kind == 3:
            return "".join(chr(rng.randrange(0, 0x20)) for _ in range(rng.randint(1, 12))) + "\x00"
        if kind == 4:
            return "".join(self.codepoint() for _ in range(rng.randint(1, 30)))
        if kind == 5:
            return self.pick(self.names)
        if kind == 6:
            return self.pick(self.names) + self.pick(("\x00", " ", "\n", "-", "é", "/x", "*"))
        if kind == 7:
            return self.pick(
                ("%s%n%x", "{0}{name}", "${HOME}", "'; DROP TABLE pods;--", "<script>", "\u202e", "\ufeff")
            )
        if kind == 8:
            return self.pick(PATHS)
        if kind == 9:
            return " " * rng.randint(1, 5)
        if kind == 10:
            return "".join(self.pick(SELECTOR_BITS) for _ in range(rng.randint(1, 12)))
        return str(self.integer(63))

    def integer(self, bits: int) -> int:
        top = 2**bits
        return int(self.pick((0, 1, -1, top - 1, -top, 2, -2, 60, 600, 86_401, self.rng.randrange(-top, top))))

    def scalar(self) -> Any:
        return self.pick((None, True, False, 0, -1, 2**63, 1e308, -0.0, "", "x", self.text(), self.integer(63)))

    # --- JSON --------------------------------------------------------------------------------

    def json_value(self, depth: int = 0) -> Any:
        kind = self.rng.randrange(6)
        if depth > 3 or kind < 3:
            return self.scalar()
        if kind == 3:
            return [self.json_value(depth + 1) for _ in range(self.rng.randint(0, 3))]
        return {self.text(): self.json_value(depth + 1) for _ in range(self.rng.randint(0, 3))}

    def pod_json(self) -> str:
        """Mostly broken pod manifests, some valid; see the cases for what is broken."""
        rng, kind = self.rng, self.rng.randrange(14)
        if kind == 0:
            return ""
        if kind == 1:  # not JSON at all, or almost JSON
            return self.pick(
                ('{"kind": "Pod"', "{'a': 1}", "NaN", "[1,]", '{"a":1} trailing', "\x00", "{" + self.text())
            )
        if kind == 2:  # JSON, but not an object
            return json.dumps(self.pick((None, 1, "Pod", [VALID_MANIFEST], True, 1.5)))
        if kind == 3:  # nested far deeper than any manifest
            depth = self.pick((200, 1_000, 5_000, 100_000, 400_000))
            opener, closer = self.pick((("[", "]"), ('{"a":', "}")))
            return opener * depth + "1" + closer * depth
        if kind == 4:  # larger than the manifest limit
            return json.dumps({**VALID_MANIFEST, "pad": "x" * self.pick((1 << 20, (1 << 20) + 10, 3 << 20))})
        if kind == 5:  # Python's json accepts these; JSON does not
            return json.dumps({**VALID_MANIFEST, "spec": {"containers": [], "x": float("nan")}}) + self.pick(("", " "))
        if kind == 6:
            return json.dumps(self.json_value(), ensure_ascii=rng.random() < 0.5)
        if kind <= 11:
            return json.dumps(self.mutated_manifest(), ensure_ascii=rng.random() < 0.5)
        if kind == 12:
            manifest = copy.deepcopy(VALID_MANIFEST)
            manifest["metadata"]["name"] = self.text()
            manifest["spec"]["containers"][0]["name"] = self.text()
            return json.dumps(manifest, ensure_ascii=False)
        return json.dumps(VALID_MANIFEST)

    def mutated_manifest(self) -> Any:
        """The valid manifest with one to three nodes replaced, removed or added."""
        manifest: Any = copy.deepcopy(VALID_MANIFEST)
        for _ in range(self.rng.randint(1, 3)):
            manifest = self._mutate_json(manifest)
        return manifest

    def _mutate_json(self, node: Any) -> Any:
        if not isinstance(node, (dict, list)) or not node or self.rng.random() < 0.25:
            return self.json_value()
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        key, action = self.pick(keys), self.rng.randrange(5)
        if action == 0 and isinstance(node, dict):
            del node[key]
        elif action == 1 and isinstance(node, dict):
            node[self.pick((self.text(), "podgate.io/request-id", "hostPID", "privileged", "resources"))] = (
                self.json_value()
            )
        else:
            node[key] = self._mutate_json(node[key])
        return node

    # --- protobuf messages -------------------------------------------------------------------

    def string_for(self, name: str) -> str:
        """A string for field `name`: often one that the field's validation has to look at closely."""
        special: dict[str, Callable[[], str]] = {
            "pod_json": self.pod_json,
            "request_id": self.request_id,
            "expression": lambda: "".join(self.pick(SELECTOR_BITS) for _ in range(self.rng.randint(0, 10))),
            "operator": lambda: self.pick(OPERATORS),
            "effect": lambda: self.pick(EFFECTS),
            "provider": lambda: self.pick(PROVIDERS),
            "namespace": lambda: self.pick(NAMESPACES),
            "cursor": lambda: self.pick(("c0", "c1", f"c{self.integer(63)}", "c-1", "c", "c\u0661\u0662")),
            "credential_id": lambda: "/".join(
                (self.pick(self.names), self.pick(NAMESPACES), "podgate-kc-" + self.text())
            ),
        }
        generate = special.get(name)
        if generate is not None and self.rng.random() < 0.7:
            return generate()
        return self.text()

    def request_id(self) -> str:
        if self.rng.random() < 0.5:
            return f"fuzz-{self.rng.getrandbits(40):x}"
        return self.text()

    def fill(self, message: Message, depth: int = 0) -> Message:
        """Sets a random subset of the message's fields, recursively, to random values."""
        for field in message.DESCRIPTOR.fields:
            if self.rng.random() < 0.5:
                self.set_field(message, field, depth)
        return message

    def set_field(self, message: Message, field: FieldDescriptor, depth: int) -> None:
        target: Any = getattr(message, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            for _ in range(self.rng.randint(0, 3)):
                target[self.text()] = self.scalar_for(value_field)
        elif field.is_repeated:
            del target[:]
            for _ in range(self.rng.choice((0, 1, 2, 3, 200))):
                if field.message_type is None:
                    target.append(self.scalar_for(field))
                elif depth < MAX_DEPTH:
                    self.fill(target.add(), depth + 1)
        elif field.message_type is not None:
            if depth < MAX_DEPTH:
                target.SetInParent()
                self.fill(target, depth + 1)
        else:
            setattr(message, field.name, self.scalar_for(field))

    def scalar_for(self, field: FieldDescriptor) -> Any:
        if field.type == F.TYPE_STRING:
            return self.string_for(field.name)
        if field.type == F.TYPE_BOOL:
            return self.rng.random() < 0.5
        if field.type in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
            return self.pick((0.0, -1.0, float("inf"), float("nan"), 1e300))
        if field.type == F.TYPE_BYTES:
            return self.rng.randbytes(self.rng.randint(0, 20))
        if field.type == F.TYPE_ENUM and self.rng.random() < 0.5:
            return self.pick([v.number for v in field.enum_type.values])
        return self.integer(INT_BOUNDS.get(field.type, 31))


Metadata = tuple[tuple[str, str | bytes], ...]
AUTH_VALUES = ("Bearer", "Bearer ", "bearer  x", "Basic dXNlcjpwdw==", "Bearer eyJhbGciOiJub25lIn0.e30.", "Token x")


def metadata(junk: Junk) -> Metadata:
    """Call metadata a client may send: malformed credentials, odd tenant and request-id headers, binary junk.

    At most about 5 KiB in all: past gRPC's 8 KiB soft limit a server refuses headers at random.
    """
    rng, out = junk.rng, []
    printable = string.ascii_letters + string.digits + string.punctuation + " "
    for _ in range(rng.randint(0, 3)):
        value = "".join(rng.choices(printable, k=rng.choice((0, 1, 20, 300, 1500))))
        key = junk.pick(("authorization", "x-podgate-tenant", "x-request-id", "x-podgate-junk"))
        if key == "authorization" and rng.random() < 0.5:
            value = junk.pick(AUTH_VALUES) + value[:40]
        out.append((key, value))
    if rng.random() < 0.2:
        out.append(("x-podgate-junk-bin", rng.randbytes(rng.randint(0, 64))))
    return tuple(out)


def mutate(junk: Junk, valid: Message) -> Message:
    """A copy of a valid message with one to three fields (at any depth) given random values or cleared."""
    out = type(valid)()
    out.CopyFrom(valid)
    for _ in range(junk.rng.randint(1, 3)):
        message, depth = out, 0
        while True:
            field = junk.pick(message.DESCRIPTOR.fields)
            is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
            nested = field.message_type is not None and not field.is_repeated
            if nested and not is_map and junk.rng.random() < 0.6:
                message, depth = getattr(message, field.name), depth + 1
                continue
            if junk.rng.random() < 0.2:
                message.ClearField(field.name)
            else:
                junk.set_field(message, field, depth)
            break
    return out


def raw_bytes(junk: Junk, valid: bytes) -> bytes:
    """Wire-level garbage: random bytes, a valid message bit-flipped, cut short or wrapped in bad framing."""
    rng, kind = junk.rng, junk.rng.randrange(7)
    if kind == 0:
        return rng.randbytes(rng.randint(0, 64))
    if kind == 1 and valid:
        data = bytearray(valid)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return bytes(data)
    if kind == 2 and valid:
        return valid[: rng.randrange(len(valid))]
    if kind == 3:
        return valid + rng.randbytes(rng.randint(1, 16))
    if kind == 4:  # field 1, length-delimited, claiming far more bytes than follow
        return b"\x0a\xff\xff\xff\xff\x0f" + rng.randbytes(8)
    if kind == 5:  # groups nested deeper than any decoder's recursion limit
        depth = rng.choice((50, 200, 10_000))
        return b"\x7b" * depth + b"\x7c" * depth  # field 15 start-group / end-group
    return b"\x0a" + bytes([rng.randrange(128)]) + "é".encode()[:1] * 3  # a string field with bad UTF-8
