"""CPU of one submission's pure path, start to end, on a fresh request each time (issue 16, helper needs5).

Usage: [PYTHONPATH=<tree>] .venv/bin/python bench/submit_path.py [--calls N] [--rounds R] [--unfinished U]

What `bench/dispatch.py throughput` does per pod outside the store and the transport, in the order SubmitPod and
the runner do it: the conversion (`pod_request_from_proto`), the gateway's checks (`validate_request`), the
tenant's admission (Pod Security, caps, placement narrowed, `admit_submission`), the placement at acceptance with
the stored decision (`placement`, `carried_out`) and the runner's check that the cluster placed at acceptance
is still a candidate (`is_candidate`). Each request is new, as each pod's is: a figure per step on one kept
request (bench/pod_path.py) cannot show work done twice for the same request. Two tenants: the open gateway's
(the throughput bench's) and one with quotas whose `U` unfinished requests are counted at each submission
(`usage_of`, what `AccessControl.admit` does, and the store's recheck, `recheck_quota`).

Also printed: how often a submission reads the pod's needs from its manifest (`pod_needs`), counted with
cProfile. Best of R rounds of N submissions, process CPU time. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # appended, not first: PYTHONPATH=<tree> decides which gateway is measured
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from bench._pods import pod_request
from bench.placement import synthetic_clusters
from bench.pod_path import measure
from gateway.api.convert_pods import pod_request_from_proto
from gateway.domain import PodPhase, PodRecord
from gateway.placement import engine
from gateway.pods.explanations import carried_out
from gateway.pods.validation import validate_request
from gateway.policy import tenants as tp
from gateway.policy.admission import admit_submission, recheck_quota, usage_of

OPEN = tp.Tenant(name="", clusters=frozenset({tp.ANY}), namespaces=frozenset({tp.ANY}), admin=True)
QUOTA = tp.Tenant(
    name="team",
    clusters=frozenset({tp.ANY}),
    namespaces=frozenset({tp.ANY}),
    max_concurrent_pods=1_000_000,
    total_caps=tp.ResourceCaps(cpu_millis=10**9),
)


def _submission(proto: Any, tenant: tp.Tenant, live: list[PodRecord]) -> Callable[[], object]:
    fleet = synthetic_clusters(3, 2)
    specs = [s.spec for s in fleet]

    def submit() -> object:
        request = pod_request_from_proto(proto)
        validate_request(request)
        usage = usage_of(live, tenant.name) if tenant.name else tp.TenantUsage()
        request = admit_submission(tenant, request, clusters=specs, usage=usage)
        if tenant.name:
            recheck_quota(tenant, request, live)
        placement = engine.placement(request, fleet)
        cluster = placement.decision.cluster
        carried_out(placement, cluster)
        return engine.is_candidate(request, fleet, cluster)

    return submit


def _unfinished(proto: Any, tenant: str, count: int) -> list[PodRecord]:
    """The tenant's unfinished records as the dispatcher keeps them: each checked once, then kept."""
    now = datetime.now(UTC)
    records = []
    for _ in range(count):
        request = replace(pod_request_from_proto(proto), tenant=tenant)
        validate_request(request)
        records.append(PodRecord(request=request, phase=PodPhase.RUNNING, created_at=now))
    return records


def needs_reads(run: Callable[[], object], calls: int = 200) -> float:
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(calls):
        run()
    profile.disable()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    total = sum(s[1] for (path, _, name), s in stats.items() if name == "pod_needs" and path.endswith("node_fit.py"))
    return float(total) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--unfinished", type=int, default=200)
    args = parser.parse_args()
    import gateway

    proto = pod_request("bench-0123456789ab", duration=1.0)
    print(f"gateway from {Path(gateway.__file__).parent.parent}; best of {args.rounds} x {args.calls} submissions")
    cases = {
        "open gateway (the throughput bench's)": _submission(proto, OPEN, []),
        f"tenant with quotas, {args.unfinished} unfinished requests": _submission(
            proto, QUOTA, _unfinished(proto, QUOTA.name, args.unfinished)
        ),
    }
    for name, run in cases.items():
        reads = needs_reads(run)
        print(f"  {measure(run, args.calls, args.rounds):8.1f} us a submission, pod_needs {reads:6.1f} a submission  {name}")


if __name__ == "__main__":
    main()
