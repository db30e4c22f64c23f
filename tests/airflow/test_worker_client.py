"""The worker-side install's client and trigger against the live gateway: the calls an Airflow worker or
triggerer makes, from an environment without the server's dependencies."""

from __future__ import annotations

import re
from typing import Any

import pytest

from gateway.airflow.triggers import PodgateTrigger
from gateway.client import (
    AlreadyExists,
    ChannelSpec,
    Cluster,
    GatewayClient,
    InvalidRequest,
    Log,
    NotFound,
    PlacementFailed,
    PodPhase,
    PodSpecRequest,
    Result,
)
from gateway.client.types import Taint
from tests.airflow.conftest import LiveGateway

CODE = "import time\nfor i in range(1, 6):\n    print(f'line {i}', flush=True)\n    time.sleep(0.1)\n"


def pod(code: str = CODE) -> dict[str, Any]:
    container = {"name": "base", "image": "python:3.12", "command": ["python", "-c", code]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "worker"}, "spec": {"containers": [container]}}


async def test_submit_is_idempotent_and_records_are_listed(gateway: LiveGateway) -> None:
    request = PodSpecRequest.build(request_id="worker-client-submit", pod=pod(), regions=["eu-central-1"])
    async with GatewayClient(ChannelSpec(address=gateway.address)) as client:
        first = await client.submit_pod(request)
        second = await client.submit_pod(request)
        assert first.created and not second.created
        assert first.pod.request_id == second.pod.request_id == request.request_id
        lines = [e.text async for e in client.watch_pod(request.request_id) if isinstance(e, Log)]
        assert lines == [f"line {i}" for i in range(1, 6)]
        record = await client.get_pod(request.request_id)
        assert record.phase == PodPhase.SUCCEEDED and record.result is not None and record.result.exit_code == 0
        assert record.cluster == "local-eu-cpu" and record.name.startswith("worker-")
        names = [p.name async for p in _all_pods(client)]
        assert names.count(record.name) == 1


async def _all_pods(client: GatewayClient) -> Any:
    token = ""
    while True:
        page = await client.list_pods(page_size=50, page_token=token)
        for p in page.pods:
            yield p
        if not (token := page.next_page_token):
            return


async def test_explain_cancel_and_refusals(gateway: LiveGateway) -> None:
    gpu_pod = pod("import time; time.sleep(30)")
    gpu_pod["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
    async with GatewayClient(ChannelSpec(address=gateway.address)) as client:
        decision = await client.explain_placement(
            PodSpecRequest.build(request_id="explain-1", pod=gpu_pod, regions=["eu-west-1", "eu-central-1"])
        )
        assert decision.cluster == "local-eu-gpu"
        verdicts = {v.cluster: v for v in decision.verdicts}
        assert set(verdicts) == {"local-eu-gpu", "local-eu-cpu", "local-us-gpu"}
        assert "outside the allowed regions" in verdicts["local-us-gpu"].reason

        with pytest.raises(PlacementFailed) as caught:
            await client.submit_pod(PodSpecRequest.build(request_id="never", pod=gpu_pod, regions=["eu-central-1"]))
        assert set(caught.value.reasons) >= {"local-eu-cpu"}

        with pytest.raises(InvalidRequest) as bad:
            await client.submit_pod(PodSpecRequest.build(request_id="bad", pod=gpu_pod, cluster_selector="a in (b"))
        assert bad.value.violations

        with pytest.raises(NotFound):
            await client.get_pod("no-such-request")

        sleeper = PodSpecRequest.build(request_id="to-cancel", pod=gpu_pod, regions=["eu-west-1"])
        await client.submit_pod(sleeper)
        cancelled = await client.cancel_pod("to-cancel", reason="test")
        async for event in client.watch_pod("to-cancel"):
            if isinstance(event, Result):
                assert event.result.phase == PodPhase.CANCELLED
        assert cancelled.request_id == "to-cancel"


async def test_clusters_are_listed_and_cordoned(gateway: LiveGateway) -> None:
    async with GatewayClient(ChannelSpec(address=gateway.address)) as client:
        clusters = {c.cluster.name: c for c in await client.list_clusters()}
        assert {"local-eu-gpu", "local-eu-cpu", "local-us-gpu"} <= set(clusters)
        assert clusters["local-us-gpu"].cluster.region == "us-east-1"
        gpu_clusters = {c.cluster.name for c in await client.list_clusters("accelerator=nvidia")}
        assert gpu_clusters == {"local-eu-gpu", "local-us-gpu"}
        assert {c.cluster.name for c in await client.list_clusters({"tier": "dev"})} >= gpu_clusters | {"local-eu-cpu"}
        cordoned = await client.cordon_cluster("local-us-gpu", reason="maintenance")
        assert cordoned.status.cordoned and cordoned.status.cordon_reason == "maintenance"
        back = await client.uncordon_cluster("local-us-gpu")
        assert not back.status.cordoned
        assert (await client.get_cluster("local-eu-gpu")).status.gpus_free


def _logged_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Airflow's structured logging writes the trigger's records to stdout."""
    return re.findall(r"\[base\] line \d", capsys.readouterr().out)


async def test_trigger_and_resume_hand_over_at_the_cursor(
    gateway: LiveGateway, capsys: pytest.CaptureFixture[str]
) -> None:
    """The trigger logs every line it sees and fires with its last cursor; watching from that cursor (what the
    resumed task does) yields the result and no line twice. A trigger restarted mid-way (a new triggerer) logs
    only the lines after its cursor."""
    channel = ChannelSpec(address=gateway.address)
    request = PodSpecRequest.build(request_id="trigger-handover", pod=pod(), regions=["eu-central-1"])
    async with GatewayClient(channel) as client:
        await client.submit_pod(request)
        events = [e async for e in client.watch_pod(request.request_id)]
    cursors = [e.cursor for e in events]
    third_line = next(e for e in events if isinstance(e, Log) and e.text == "line 3")

    capsys.readouterr()
    fired = [e async for e in PodgateTrigger(request_id=request.request_id, channel=channel.serialize()).run()]
    assert [f.payload["status"] for f in fired] == ["done"]
    assert fired[0].payload["cursor"] == cursors[-2]  # the event before the result
    assert _logged_lines(capsys) == [f"[base] line {i}" for i in range(1, 6)]
    async with GatewayClient(channel) as client:
        rest = [e async for e in client.watch_pod(request.request_id, fired[0].payload["cursor"])]
    assert len(rest) == 1 and isinstance(rest[0], Result)

    restarted = PodgateTrigger(request_id=request.request_id, channel=channel.serialize(), cursor=third_line.cursor)
    assert [f.payload["status"] async for f in restarted.run()] == ["done"]
    assert _logged_lines(capsys) == ["[base] line 4", "[base] line 5"]


async def test_trigger_reports_an_unknown_request(gateway: LiveGateway) -> None:
    trigger = PodgateTrigger(request_id="never-submitted", channel=ChannelSpec(address=gateway.address).serialize())
    (event,) = [e async for e in trigger.run()]
    assert event.payload["status"] == "error" and event.payload["error"] == "NotFound"
    classpath, kwargs = trigger.serialize()
    assert classpath == "gateway.airflow.triggers.PodgateTrigger"
    assert PodgateTrigger(**kwargs).serialize() == (classpath, kwargs)


async def test_killing_a_deferred_task_cancels_its_pod(gateway: LiveGateway) -> None:
    channel = ChannelSpec(address=gateway.address)
    request = PodSpecRequest.build(request_id="deferred-kill", pod=pod("import time; time.sleep(60)"))
    async with GatewayClient(channel) as client:
        await client.submit_pod(request)
        await PodgateTrigger(request_id=request.request_id, channel=channel.serialize()).on_kill()
        results = [e.result async for e in client.watch_pod(request.request_id) if isinstance(e, Result)]
    assert [r.phase for r in results] == [PodPhase.CANCELLED]


async def test_cluster_registration_round_trip(gateway: LiveGateway) -> None:
    async with GatewayClient(ChannelSpec(address=gateway.address)) as client:
        source = (await client.get_cluster("local-eu-cpu")).cluster
        copy = Cluster(
            name="extra-eu",
            provider=source.provider,
            region="eu-central-1",
            credentials=source.credentials,
            labels={"tier": "batch"},
            taints=(Taint(key="spot", value="true", effect="PreferNoSelect"),),
            allowed_namespaces=("default",),
            max_concurrent_pods=3,
            weight=20,
        )
        registered = await client.register_cluster(copy)
        assert registered.cluster == copy and registered.source == "api"
        with pytest.raises(AlreadyExists):
            await client.register_cluster(copy)
        await client.deregister_cluster("extra-eu")
        with pytest.raises(NotFound):
            await client.get_cluster("extra-eu")


async def test_issue_and_revoke_a_kubeconfig(gateway: LiveGateway) -> None:
    async with GatewayClient(ChannelSpec(address=gateway.address)) as client:
        issued = await client.issue_kubeconfig("local-eu-cpu", "default", ttl=900, access="view")
        assert "server: https://127.0.0.1:" in issued.kubeconfig and issued.credential_id
        assert issued.expire_time is not None and "kubeconfig=" not in repr(issued)
        await client.revoke_kubeconfig(issued.credential_id)
