"""Property (issue 12): no manifest can make the gateway answer INTERNAL, create a pod it refused, or stall.

Hypothesis walks the compiled Pod schema for its field paths (about 1,650) and puts a hostile value at one
to three of them: a value of a type the field does not take, a number beyond the field's range or beyond
strict JSON (NaN, Infinity, 5,000 digits, 1e400), invalid Unicode, nesting far deeper than any Pod, or a
merely odd value (any text, any integer, true/false) that the gateway may accept, into a minimal pod or
one with every part the API server's rules look at (ports, probes, volumes, affinity, ...). Each goes to
SubmitPod over real gRPC against simulated clusters, while a pod's log stream runs alongside.

Each answer must be INVALID_ARGUMENT naming the mutated field (or, for a merely odd value, one of the
documented caller-error codes or OK), in trailers any client can receive; a pod exists only for requests
answered OK; and the log stream keeps delivering every line, in order, while the barrage runs.

The gateway and simulator run on their own event loop in a thread, so that Hypothesis drives plain
blocking calls and can shrink a failure to its smallest manifest. Examples are derandomized (no example
database), so CI runs the same ones every time.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway._proto.podgate.v1 import dispatch_pb2, dispatch_pb2_grpc
from gateway.app import start_gateway
from gateway.pods.builder import REQUEST_ID_ANNOTATION
from gateway.pods.pod_schema import Key, Node, field_path, json_type, pod_root
from tests.e2e.conftest import gateway_settings, virtual_world
from tests.e2e.edge_common import MANIFEST, TRAILER_BUDGET, trailer_size

S = grpc.StatusCode
EXAMPLES = 400
MAYBE_CODES = {S.OK, S.INVALID_ARGUMENT, S.FAILED_PRECONDITION, S.PERMISSION_DENIED}
STREAM_LINES = 900
STREAM_SECONDS = 90


# --- the schema's field paths ----------------------------------------------------------------------

Path_ = tuple[str | int, ...]


def schema_paths() -> list[tuple[Path_, Node]]:
    """Every field path of the Pod schema (a list as index 0, a map as key "k"), each definition once per
    branch so recursion cannot loop."""
    out: list[tuple[Path_, Node]] = []
    stack: list[tuple[Node, Path_, frozenset[str]]] = [(pod_root(), (), frozenset())]
    while stack:
        node, path, seen = stack.pop()
        out.append((path, node))
        if node.items is not None:
            stack.append((node.items, (*path, 0), seen))
        for key, child in node.properties.items():
            if not child.definition or child.definition not in seen:
                stack.append((child, (*path, key), seen | {child.definition}))
        if isinstance(node.additional, Node):
            stack.append((node.additional, (*path, Key("k")), seen))
    return sorted(out, key=lambda p: [str(x) for x in p[0]])


PATHS = schema_paths()


@dataclass(frozen=True)
class Raw:
    """JSON text placed as is: what json.dumps cannot write (NaN, 5,000 digits, lone surrogates)."""

    text: str


SAMPLES: dict[str, Any] = {
    "object": {"x": 1},
    "array": [1, "x"],
    "string": "x",
    "integer": 7,
    "number": 1.5,
    "boolean": True,
}
ALWAYS_BAD_NUMBERS = [Raw("9" * 5000), Raw("-" + "9" * 4400), Raw("NaN"), Raw("Infinity"), Raw("-Infinity")]
RANGES = {"int32": (-(2**31), 2**31 - 1), "": (-(2**63), 2**63 - 1), "int64": (-(2**63), 2**63 - 1)}


def _accepts(node: Node, value: Any) -> bool:
    kind = json_type(value)
    return kind in node.types or (kind == "integer" and "number" in node.types)


def _nested(depth: int) -> Any:
    value: Any = "deep"
    for i in range(depth):
        value = {"a": value} if i % 2 else [value]
    return value


@dataclass(frozen=True)
class Mutation:
    path: Path_
    kind: str  # wrong-type, extreme-number, bad-unicode, deep, odd
    value: Any

    @property
    def certainly_invalid(self) -> bool:
        return self.kind != "odd"


@st.composite
def mutations(draw: st.DrawFn, paths: list[tuple[Path_, Node]] = PATHS) -> Mutation:
    path, node = draw(st.sampled_from(paths))
    kinds = ["deep", "extreme-number"]
    if wrong := [v for v in SAMPLES.values() if not _accepts(node, v)]:
        kinds.append("wrong-type")
    if "string" in node.types:
        kinds += ["bad-unicode", "odd"]
    if "integer" in node.types or "boolean" in node.types:
        kinds.append("odd")
    kind = draw(st.sampled_from(kinds))
    if kind == "wrong-type":
        return Mutation(path, kind, draw(st.sampled_from(wrong)))
    if kind == "deep":  # a free-form object (FieldsV1) takes any JSON, but not deeper than any Pod nests
        free_form = node.additional is True and not node.properties
        return Mutation(path, kind, _nested(draw(st.integers(65 if free_form else 3, 300))))
    if kind == "bad-unicode":
        return Mutation(path, kind, Raw('"' + draw(st.sampled_from(["\\ud800", "x\\udfff", "\\udbff\\u0041"])) + '"'))
    if kind == "extreme-number":
        low, high = RANGES.get(node.format, RANGES[""])
        beyond = [n for n in (2**31, -(2**31) - 1, 2**63, -(2**63) - 1, 10**19) if not low <= n <= high]
        numbers: list[Any] = [*ALWAYS_BAD_NUMBERS, *(beyond if "integer" in node.types else [])]
        if "number" not in node.types:  # a quantity takes any decimal number (saturated at 2^63-1)
            numbers += [2.5, Raw("1e400"), Raw("1." + "9" * 5000)]
        return Mutation(path, kind, draw(st.sampled_from(numbers)))
    odd = st.text(max_size=80) if "string" in node.types else st.none()
    if "integer" in node.types:
        odd = st.integers(-(2**63), 2**63 - 1)
    if "boolean" in node.types:
        odd = st.booleans()
    return Mutation(path, kind, draw(odd))


def _set(document: Any, path: Path_, value: Any) -> Any:
    """`document` with `value` at `path`, creating the objects and lists on the way."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(head, int):
        items = document if isinstance(document, list) and document else [{} if rest and isinstance(rest[0], str) else []]
        items = list(items)
        items[0] = _set(items[0], rest, value)
        return items
    out = dict(document) if isinstance(document, dict) else {}
    out[head] = _set(out.get(head), rest, value)
    return out


def _apart(found: list[Mutation]) -> bool:
    """No mutation inside another's value (the later would overwrite or sit under the earlier)."""
    return not any(a is not b and b.path[: len(a.path)] == a.path for a in found for b in found)


RICH: dict[str, Any] = {  # every part the API server's rules look at, so that odd values reach the rules
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "rich", "labels": {"app": "edge"}, "annotations": {"note": "x"}},
    "spec": {
        "containers": [{
            "name": "main", "image": "python:3.12", "command": ["python"], "args": ["-c", "pass"],
            "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
            "env": [{"name": "A", "value": "1"}], "imagePullPolicy": "IfNotPresent",
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "64Mi"}},
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            "livenessProbe": {"httpGet": {"port": "http", "path": "/"}, "periodSeconds": 10},
            "lifecycle": {"preStop": {"sleep": {"seconds": 1}}},
        }],
        "initContainers": [{"name": "init", "image": "busybox", "command": ["true"]}],
        "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "1Gi"}}],
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}}
            ]},
            "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 5, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                                  "labelSelector": {"matchLabels": {"app": "edge"}}}}
            ]},
        },
        "activeDeadlineSeconds": 600, "terminationGracePeriodSeconds": 5, "priority": 0, "dnsPolicy": "ClusterFirst",
    },
}  # fmt: skip


def _inside(document: Any, path: Path_) -> bool:
    """Whether the object or list that holds `path`'s last step exists in `document`."""
    for step in path[:-1]:
        if isinstance(step, int) and isinstance(document, list) and document:
            document = document[0]
        elif isinstance(step, str) and isinstance(document, dict) and step in document:
            document = document[step]
        else:
            return False
    return True


RICH_PATHS = [(path, node) for path, node in PATHS if path and _inside(RICH, path)]


def manifest_text(found: list[Mutation], base: dict[str, Any] = MANIFEST) -> str:
    document: Any = copy.deepcopy(base)
    raws: dict[str, str] = {}
    for m in found:
        value = m.value
        if isinstance(value, Raw):
            placeholder = f"@@raw-{len(raws)}@@"
            raws[f'"{placeholder}"'] = value.text
            value = placeholder
        document = _set(document, m.path, value)
    text = json.dumps(document)
    for placeholder, raw in raws.items():
        text = text.replace(placeholder, raw)
    return text


# --- the world, on its own loop ----------------------------------------------------------------------


@dataclass
class Served:
    port: int
    pods: list[str] = field(default_factory=list)  # request id of every pod any cluster created


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """Simulated clusters (virtual nodes) and a gateway, served by an event loop in another thread."""
    ready, box = threading.Event(), {}

    async def main() -> None:
        stop = asyncio.Event()
        box["stop"], box["loop"] = stop, asyncio.get_running_loop()
        async with virtual_world(tmp_path) as world:
            gateway = await start_gateway(gateway_settings(tmp_path))
            served = box["served"] = Served(port=gateway.port)
            for cluster in world.clusters.values():
                cluster.store.subscribe("pods", lambda kind, new, old: _record(served, kind, new))
            ready.set()
            try:
                await stop.wait()
            finally:
                await gateway.stop()

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as e:  # reported by the test, not lost in the thread
            box["error"] = e
            ready.set()

    thread = threading.Thread(target=run, name="edge-world")
    thread.start()
    assert ready.wait(60) and "error" not in box, box.get("error")
    yield box["served"]
    box["loop"].call_soon_threadsafe(box["stop"].set)
    thread.join(60)
    assert "error" not in box, box["error"]


def _record(served: Served, kind: str, pod: Any) -> None:
    if kind == "ADDED":
        served.pods.append(pod["metadata"].get("annotations", {}).get(REQUEST_ID_ANNOTATION, ""))


class LogStream(threading.Thread):
    """RunPod of a virtual pod that logs STREAM_LINES lines over STREAM_SECONDS, collected as they come."""

    def __init__(self, stub: dispatch_pb2_grpc.DispatchServiceStub) -> None:
        super().__init__(name="edge-log-stream")
        self.request_id = f"edge-stream-{uuid.uuid4().hex[:8]}"
        self.lines: list[str] = []
        self.result: dispatch_pb2.PodResult | None = None
        self._stub = stub

    def run(self) -> None:
        manifest = copy.deepcopy(MANIFEST)
        manifest["metadata"]["annotations"] = {
            "sim.podgate.io/duration": str(STREAM_SECONDS),
            "sim.podgate.io/log-lines": "\n".join(f"line {i}" for i in range(STREAM_LINES)),
        }
        pod = dispatch_pb2.PodRequest(request_id=self.request_id, pod_json=json.dumps(manifest))
        for response in self._stub.RunPod(dispatch_pb2.RunPodRequest(pod=pod), timeout=STREAM_SECONDS + 60):
            event = response.event
            if event.WhichOneof("event") == "log":
                self.lines.append(event.log.text)
            elif event.WhichOneof("event") == "result":
                self.result = event.result


def _violation_fields(error: grpc.RpcError) -> list[str]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    bad = error_details_pb2.BadRequest()
    if status is None or not status.details or not status.details[0].Unpack(bad):
        return []
    return [v.field for v in bad.field_violations]


def _related(reported: str, mutated: Path_) -> bool:
    path = field_path("pod.pod_json", mutated)
    return path.startswith(reported) or reported.startswith(path)


def _wait_for(check: Any, within: float) -> None:
    event = threading.Event()
    for _ in range(int(within * 10)):
        if check():
            return
        event.wait(0.1)
    raise AssertionError(f"not within {within}s")


def test_hostile_manifests_at_every_schema_path(served: Served) -> None:
    accepted: set[str] = set()
    codes: Counter[str] = Counter()
    with grpc.insecure_channel(f"127.0.0.1:{served.port}") as channel:
        stub = dispatch_pb2_grpc.DispatchServiceStub(channel)
        stream = LogStream(stub)
        stream.start()
        try:
            _wait_for(lambda: len(stream.lines) > 0, within=30)
            before = len(stream.lines)

            @settings(
                max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            )  # fmt: skip
            @given(
                st.sampled_from([(MANIFEST, PATHS), (RICH, RICH_PATHS)]).flatmap(
                    lambda b: st.tuples(st.just(b[0]), st.lists(mutations(b[1]), min_size=1, max_size=3).filter(_apart))
                )
            )
            def answer_is_a_caller_error(case: tuple[dict[str, Any], list[Mutation]]) -> None:
                base, found = case
                text = manifest_text(found, base)
                pod = dispatch_pb2.PodRequest(request_id=f"edge-{uuid.uuid4().hex[:12]}", pod_json=text)
                refusal: Any = None
                try:
                    stub.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=pod), timeout=30)
                except grpc.RpcError as error:
                    refusal = error
                code = refusal.code() if refusal is not None else S.OK
                codes[code.name] += 1
                if refusal is None:
                    accepted.add(pod.request_id)
                else:
                    assert code in MAYBE_CODES, f"{code}: {refusal.details()[:300]}"
                    assert 0 < trailer_size(refusal) <= TRAILER_BUDGET
                if any(m.certainly_invalid for m in found):
                    assert code == S.INVALID_ARGUMENT, found
                    fields = _violation_fields(refusal)
                    if "..." not in fields:
                        for m in (m for m in found if m.certainly_invalid):
                            assert any(_related(f, m.path) for f in fields), (m, fields)

            answer_is_a_caller_error()
            during = len(stream.lines) - before
            print(f"answers {dict(codes)}; {during} log lines streamed meanwhile")
        finally:
            stub.CancelPod(dispatch_pb2.CancelPodRequest(request_id=stream.request_id), timeout=30)
            stream.join(60)
    assert during > 0, "no log line arrived while the barrage ran"
    assert stream.lines == [f"line {i}" for i in range(len(stream.lines))], "log lines lost, repeated or reordered"
    assert stream.result is not None and stream.result.phase == dispatch_pb2.POD_PHASE_CANCELLED
    assert set(served.pods) <= accepted | {stream.request_id}, set(served.pods) - accepted
