"""The example configurations work as shipped: a newcomer can try tenants and tokens in minutes."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import grpc
import pytest

from gateway._proto.podgate.v1 import clusters_pb2, clusters_pb2_grpc, common_pb2, dispatch_pb2, dispatch_pb2_grpc
from tests.conftest import ROOT, podgate_serve

LOCAL = ROOT / "examples" / "local.yaml"
ML_TOKEN, OPS_TOKEN = "ml-dev.not-a-secret-ml", "ops-dev.not-a-secret-ops"  # as the file's comments say


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def test_local_yaml_serves_tenants_with_the_tokens_it_documents(tmp_path: Path) -> None:
    for token in (ML_TOKEN, OPS_TOKEN):
        assert token in LOCAL.read_text()
    with podgate_serve(tmp_path / "state", "--config", str(LOCAL)) as served:
        async with grpc.aio.insecure_channel(served.address) as channel:
            clusters = clusters_pb2_grpc.ClusterServiceStub(channel)
            pods = dispatch_pb2_grpc.DispatchServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await clusters.ListClusters(clusters_pb2.ListClustersRequest(), timeout=10)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED

            seen = await clusters.ListClusters(clusters_pb2.ListClustersRequest(), metadata=bearer(ML_TOKEN), timeout=10)
            assert {c.cluster.name for c in seen.clusters} == {"local-eu-gpu"}  # the one in its region

            outside = dispatch_pb2.PodRequest(
                request_id="try-us", pod_json=json.dumps({"spec": {"containers": [{"name": "base", "image": "busybox"}]}}),
                placement=common_pb2.Placement(regions=["us-east-1"]),
            )  # fmt: skip
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await pods.SubmitPod(dispatch_pb2.SubmitPodRequest(pod=outside), metadata=bearer(ML_TOKEN), timeout=10)
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "us-east-1" in (caught.value.details() or "")

            with pytest.raises(grpc.aio.AioRpcError) as caught:  # ml is no admin
                await clusters.CordonCluster(
                    clusters_pb2.CordonClusterRequest(name="local-eu-cpu", reason="try"), metadata=bearer(ML_TOKEN), timeout=10
                )  # fmt: skip
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
            await clusters.CordonCluster(
                clusters_pb2.CordonClusterRequest(name="local-eu-cpu", reason="try"), metadata=bearer(OPS_TOKEN), timeout=10
            )  # fmt: skip
        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(timeout=30) == 0
        assert served.process.stderr is not None
        logged = served.process.stderr.read()
        assert "not-a-secret" not in logged
