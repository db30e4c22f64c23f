"""What decoding a pod list costs: our raw-dict decoding against the official client's models.

Usage: .venv/bin/python bench/decode.py [--pods N] [--rounds R]
Builds a PodList of N realistic pods (status, conditions, container statuses, volumes, env), encodes it
once, then times (best of R) our `decode_list` (json.loads, dicts kept as they are) against the
`kubernetes` package's ApiClient deserializing the same body into V1PodList models, as its
`list_pod_for_all_namespaces` does. `kubernetes` is a dev dependency only. Nothing is asserted.

Then one pod's watch line, as the pods watch hands it to the cluster's runtime: decoded whole (orjson) or
into the fields the gateway reads (gateway/clusters/shapes.py), then what the runtime does with it (the
tracker's kept copy, the capacity book's sizing); the same pod with the managed fields a real API server adds.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from gateway.clusters import shapes
from gateway.clusters.capacity import sizing
from gateway.clusters.kubeapi.decode import decode_list, decode_watch_line
from gateway.clusters.tracking import kept


def pod(i: int) -> dict[str, Any]:
    name = f"job-{i:06d}"
    return {
        "metadata": {
            "name": name, "namespace": "airflow", "uid": f"00000000-0000-0000-0000-{i:012d}",
            "resourceVersion": str(1000 + i), "creationTimestamp": "2026-12-04T10:00:00Z",
            "labels": {"app.kubernetes.io/managed-by": "podgate", "podgate.io/request-id": name},
            "annotations": {"podgate.io/cluster": "eu-gpu"},
        },
        "spec": {
            "restartPolicy": "Never", "nodeName": f"node-{i % 10}", "serviceAccountName": "default",
            "containers": [{
                "name": "base", "image": "python:3.12", "command": ["python", "-c", "print(1)"],
                "env": [{"name": f"VAR_{k}", "value": str(k)} for k in range(5)],
                "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "1Gi"}},
                "volumeMounts": [{"name": "xcom", "mountPath": "/airflow/xcom"}],
                "terminationMessagePath": "/airflow/xcom/return.json",
            }],
            "volumes": [{"name": "xcom", "emptyDir": {}}],
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
        "status": {
            "phase": "Running", "podIP": "10.0.0.1", "hostIP": "192.0.2.1", "startTime": "2026-12-04T10:00:01Z",
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": "2026-12-04T10:00:02Z"}
                for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
            ],
            "containerStatuses": [{
                "name": "base", "ready": True, "restartCount": 0, "image": "python:3.12",
                "imageID": "sha256:abc", "containerID": "containerd://abc", "started": True,
                "state": {"running": {"startedAt": "2026-12-04T10:00:02Z"}},
            }],
        },
    }  # fmt: skip


def best(rounds: int, fn: Any) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    body = json.dumps({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "9"},
                       "items": [pod(i) for i in range(args.pods)]}).encode()  # fmt: skip

    from kubernetes.client import ApiClient  # dev dependency only

    api = ApiClient()
    ours = best(args.rounds, lambda: decode_list(body, cluster="bench", call="list pods"))
    official = best(args.rounds, lambda: api.deserialize(body.decode(), "V1PodList", "application/json"))
    print(f"{args.pods} pods, {len(body) / 2**20:.1f} MiB body, best of {args.rounds}")
    print(f"  ours (raw dicts):            {ours * 1e6 / args.pods:8.1f} µs per pod")
    print(f"  kubernetes ApiClient models: {official * 1e6 / args.pods:8.1f} µs per pod")
    print(f"  ratio: {official / ours:.1f}x")
    watch_lines(args.rounds)


def managed(obj: dict[str, Any]) -> dict[str, Any]:
    """The pod as a real API server sends it: with managedFields (server-side apply's field ownership)."""
    fields = {f"f:{k}": {} for k in ("command", "env", "image", "name", "resources", "volumeMounts")}
    entries = [{"manager": m, "operation": "Update", "apiVersion": "v1", "time": "2026-12-04T10:00:02Z",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:containers": {'k:{"name":"base"}': fields}},
                                                      "f:status": {"f:conditions": {}, "f:phase": {}}}}
               for m in ("podgate", "kube-scheduler", "kubelet")]  # fmt: skip
    return {**obj, "metadata": {**obj["metadata"], "managedFields": entries}}


def watch_lines(rounds: int, count: int = 100) -> None:
    rounds *= 10  # short rounds, many of them: the best is one no other process interrupted
    for label, obj in (("bench pod", pod(1)), ("with managedFields", managed(pod(1)))):
        line = json.dumps({"type": "MODIFIED", "object": obj}).encode()
        print(f"a pod's watch line ({label}, {len(line)} bytes), best of {rounds}, µs per line:")
        for how, narrow in (("whole", None), ("narrow", shapes.PODS)):
            def decode(narrow: Any = narrow, line: bytes = line) -> Any:
                return decode_watch_line(line, cluster="bench", call="watch pods", narrow=narrow).object

            def handle(decode: Any = decode) -> None:
                obj = decode()
                sizing(obj)
                kept(obj)

            alone = best(rounds, lambda decode=decode: [decode() for _ in range(count)]) / count
            handled = best(rounds, lambda handle=handle: [handle() for _ in range(count)]) / count
            print(f"  {how:6s}  decoded {alone * 1e6:6.2f}   decoded, sized and kept {handled * 1e6:6.2f}")


if __name__ == "__main__":
    main()
