"""CPU of the pure steps each dispatched pod goes through, one at a time, on the throughput bench's own pod.

Usage: [PYTHONPATH=<tree>] .venv/bin/python bench/pod_path.py [--calls N] [--rounds R]

The steps outside the store and the Kubernetes transport that `bench/dispatch.py throughput` runs per pod
(issue 16): the SubmitPod conversion (strict JSON, depth, schema walk and the API server's rules), the
gateway's own checks, Pod Security (an open gateway's baseline), the pod's needs as placement reads them
(3-4 times a pod), the body sent to the API server, the log line parse, a watch event's view and the pod name suffix. Each figure is the
best of R rounds of N calls, in process CPU time (microseconds a call). Run it with `PYTHONPATH` set to
each tree to compare them: only functions both trees have are called. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # appended, not first: PYTHONPATH=<tree> decides which gateway is measured
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from bench._pods import pod_request
from bench.placement import synthetic_clusters
from gateway.api.convert_pods import pod_request_from_proto
from gateway.placement import engine
from gateway.placement.node_fit import pod_needs
from gateway.pods import status
from gateway.pods.builder import build_pod
from gateway.pods.creation import new_suffix
from gateway.pods.explanations import carried_out
from gateway.pods.logs import parse_line
from gateway.pods.validation import validate_request
from gateway.policy.pod_security import check_pod

RUNNING: dict[str, Any] = {
    "metadata": {"name": "bench-abc12345", "namespace": "default"},
    "spec": {"containers": [{"name": "main"}], "nodeName": "node-1"},
    "status": {"phase": "Running", "containerStatuses": [{"name": "main", "state": {"running": {}}}]},
}


def _changing_fleet(count: int) -> Callable[[], list[Any]]:
    """A fleet of `count` clusters, one of them a pod busier at each call (as the dispatched pods change them)."""
    fleet = synthetic_clusters(count, 2)
    calls = [0]

    def current() -> list[Any]:
        calls[0] += 1
        i = calls[0] % count
        first, *rest = fleet[i].nodes
        used = (first.cpu_millis_used + 10) % first.cpu_millis
        fleet[i] = replace(fleet[i], nodes=(replace(first, cpu_millis_used=used), *rest))
        return fleet

    return current


def _accepted(request: Any, fleet: Callable[[], list[Any]]) -> object:
    placement = engine.placement(request, fleet())
    return carried_out(placement, placement.decision.cluster)


def steps() -> dict[str, Callable[[], object]]:
    proto = pod_request("bench-0123456789ab", duration=1.0)
    request = pod_request_from_proto(proto)
    three = _changing_fleet(3)
    return {
        "placement at acceptance, 3 clusters (placement, carried_out)": lambda: _accepted(request, three),
        "the runner's placement, 3 clusters": lambda: engine.placement(request, three()),
        **(
            {"the runner's check of the cluster placed at acceptance, 3 clusters (is_candidate)": lambda: engine.is_candidate(
                request, three(), "cluster-0000"
            )}
            if hasattr(engine, "is_candidate")
            else {}
        ),
        "SubmitPod conversion (pod_request_from_proto)": lambda: pod_request_from_proto(proto),
        "gateway checks (validate_request)": lambda: validate_request(request),
        "Pod Security, baseline (check_pod)": lambda: check_pod(request.pod),
        "needs read by placement (pod_needs)": lambda: pod_needs(request.pod),
        "the pod's body for the create (build_pod)": lambda: build_pod(
            request, cluster="c1", gateway_id="gw", name_suffix="abcd1234"
        ),
        "log line (parse_line)": lambda: parse_line("2026-12-05T05:30:01.123456789Z virtual line 1\n", "main"),
        "watch event's view (status.interpret)": lambda: status.interpret(RUNNING),
        "pod name suffix (new_suffix)": new_suffix,
    }


def measure(run: Callable[[], object], calls: int, rounds: int) -> float:
    run()
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(calls):
            run()
        best = min(best, (time.process_time() - started) / calls)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import gateway

    print(f"gateway from {Path(gateway.__file__).parent.parent}; best of {args.rounds} x {args.calls} calls, CPU us a call")
    for name, run in steps().items():
        print(f"  {measure(run, args.calls, args.rounds):8.1f}  {name}")


if __name__ == "__main__":
    main()
