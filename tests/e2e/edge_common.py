"""Shared by the edge-input tests: a valid manifest, requests made from it, and what a refusal must look like."""

from __future__ import annotations

import base64
import copy
import json
import uuid
from typing import Any

import grpc
import pytest

from gateway._proto.podgate.v1 import dispatch_pb2
from gateway.sim.cluster import SimWorld

S = grpc.StatusCode
TRAILER_BUDGET = 8 * 1024  # gRPC's soft metadata limit: past it a client refuses trailers at random
MANIFEST: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "edge"},
    "spec": {"containers": [{"name": "main", "image": "python:3.12", "command": ["python", "-c", "pass"]}]},
}


def request(pod_json: str, **extra: Any) -> dispatch_pb2.PodRequest:
    return dispatch_pb2.PodRequest(request_id=f"edge-{uuid.uuid4().hex[:12]}", pod_json=pod_json, **extra)


def with_spec(**spec: Any) -> str:
    manifest = copy.deepcopy(MANIFEST)
    manifest["spec"].update(spec)
    return json.dumps(manifest)


def with_container(**fields: Any) -> str:
    manifest = copy.deepcopy(MANIFEST)
    manifest["spec"]["containers"][0].update(fields)
    return json.dumps(manifest)


def trailer_size(error: grpc.aio.AioRpcError) -> int:
    """Bytes of grpc-message (percent-encoded) and grpc-status-details-bin (base64) as sent."""
    details = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin", b"")
    message = (error.details() or "").encode()
    encoded = sum(1 if 0x20 <= b <= 0x7E and b != 0x25 else 3 for b in message)
    return encoded + len(base64.b64encode(details if isinstance(details, bytes) else details.encode()))


def no_pods(world: SimWorld) -> bool:
    return all(c.store.count("pods") == 0 for c in world.clusters.values())


async def refused(call: Any, message: Any, code: S = S.INVALID_ARGUMENT) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(message, timeout=30)
    error = caught.value
    assert error.code() == code, f"{error.code()}: {(error.details() or '')[:500]}"
    assert 0 < trailer_size(error) <= TRAILER_BUDGET
    return error


