"""GatewayClient rides out a gateway restart longer than its old retry budget: a real `podgate serve`,
stopped for 20 s and restarted on the same port, and a RunPod stream that resumes from its cursor."""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import AbstractContextManager, aclosing
from pathlib import Path

from gateway.client import ChannelSpec, GatewayClient, Log, PodSpecRequest, Result
from gateway.client.types import PodEvent, PodPhase
from gateway.sim.cluster import SimWorld
from tests.conftest import Served, podgate_serve
from tests.e2e.conftest import LOCAL

OUTAGE = 20.0  # the old default policy gave up about 11-21 s into an outage
TICKS = 150  # 0.2 s apart: the pod outlives the outage and the restart
CODE = f"import time\nfor i in range({TICKS}):\n    print(f'tick {{i}}', flush=True)\n    time.sleep(0.2)"


async def serve(state_dir: Path, listen: str) -> tuple[AbstractContextManager[Served], Served]:
    """`podgate serve` against the test's simulated clusters, started off the event loop (the loop serves them)."""
    context = podgate_serve(
        state_dir, "--listen", listen, "--clusters", str(LOCAL), "--metrics-listen", "off"
    )
    return context, await asyncio.to_thread(context.__enter__)


async def test_a_run_pod_stream_resumes_after_a_restart_longer_than_the_old_budget(
    world: SimWorld, tmp_path: Path
) -> None:
    context, served = await serve(tmp_path, "127.0.0.1:0")
    assert "podgate: event loop uvloop\n" in served.printed  # server.event_loop auto with cluster files
    request = PodSpecRequest.build(
        request_id="restart-ride-out",
        pod={"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ride"},
             "spec": {"containers": [{"name": "base", "image": "python:3.12", "command": ["python", "-c", CODE]}]}},
    )  # fmt: skip
    events: list[PodEvent] = []
    async with GatewayClient(ChannelSpec(address=served.address)) as client:

        async def follow() -> None:
            async with aclosing(client.run_pod(request)) as stream:
                async for event in stream:
                    events.append(event)

        reader = asyncio.create_task(follow())
        while not any(isinstance(e, Log) and e.text == "tick 5" for e in events):
            assert not reader.done(), reader
            await asyncio.sleep(0.1)
        await asyncio.to_thread(context.__exit__, None, None, None)  # SIGTERM: hands the stream over
        stopped = time.monotonic()
        await asyncio.sleep(OUTAGE)
        context, _ = await serve(tmp_path, served.address)
        try:
            await asyncio.wait_for(reader, 90)
        finally:
            await asyncio.to_thread(context.__exit__, None, None, None)
    assert time.monotonic() - stopped > OUTAGE
    lines = [e.text for e in events if isinstance(e, Log)]
    assert lines == [f"tick {i}" for i in range(TICKS)], json.dumps(lines[:20])
    results = [e.result for e in events if isinstance(e, Result)]
    assert len(results) == 1 and results[0].phase == PodPhase.SUCCEEDED
