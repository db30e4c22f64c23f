"""The libraries' floor under a dispatched pod: what grpc, HTTP/2 over TLS, sqlite3 and msgspec cost per pod doing
exactly the I/O the gateway's pod path does, with nothing of the gateway around them (issue 16, helper floor6).

Set against the gateway's CPU a pod in `bench/dispatch.py throughput --pods 2000 --callers 200 --channels 20`
(`--gateway-ms`), the sum of the floors says how much of it is the libraries' and how much is ours. Each part
runs in a process of its own whose CPU comes from /proc (utime + stime, as bench/_measure.py reads it):

- grpc: a grpc.aio server on uvloop (the gateway's options) whose servicer only answers: one unary SubmitPod a
  pod, the request as the throughput bench builds it (bench/_pods.py), the answer of a real accepted pod's size
  (a record with its placement's 3 verdicts, as `record_to_proto` fills it); 200 callers on 20 channels in this
  process. The server's CPU a call.
- kube-ours / kube-h2: a pod's 4 HTTP/2 requests over TLS and the watch lines it causes, against `podgate sim`,
  by the gateway's own ClusterClient and by h2 used plainly (bench/_floor_kube.py). The client's CPU a pod.
- sqlite: a pod's 4 writes (15 statements: the ones the gateway's writer ran for each pod, from its SQLite trace;
  bench/_floor_sqlite.py) in transactions of 50 writes, sqlite3 directly, WAL, `synchronous` FULL (the gateway's
  default, decision 0032) and NORMAL, on the gateway's schema.
- decode: the pods and events watch lines the kube-h2 run recorded (those its pods caused), decoded by msgspec
  into the shapes the gateway reads (gateway/clusters/shapes.py; decision 0039), against the gateway's
  `decode_watch_line` and orjson's whole decode.

    .venv/bin/python bench/floor.py [--rounds 1] [--gateway-ms 2.79] [PART ...]   # parts: grpc kube sqlite decode
    .venv/bin/python bench/floor.py kube --rate 700 --py-spy /tmp/spy     # pods started a second; each client sampled
    .venv/bin/python bench/floor.py sqlite --per-transaction 13
    .venv/bin/python bench/floor.py --shares /tmp/spy/kube-ours-1.txt /tmp/gw.txt  # py-spy samples by library
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Generic, TypeVar

import msgspec

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._floor_sqlite import WRITES_A_TRANSACTION

PARTS = ("grpc", "kube", "sqlite", "decode")


def self_cpu() -> float:
    from bench._stack import cpu_seconds

    return cpu_seconds(os.getpid())


# --- grpc ------------------------------------------------------------------------------------------------


def answer() -> Any:
    """A SubmitPodResponse as the gateway answers a throughput bench pod (688 bytes in a capture at aed1249)."""
    from gateway._proto.podgate.v1 import dispatch_pb2 as d

    score = "score 110 = free capacity 100 (least-loaded) + weight 10"
    verdicts = [
        d.ClusterVerdict(cluster=c, region=r, verdict=d.VERDICT_ELIGIBLE, reason=f"fits on node {n}; {score}",
                         score=110, chosen=c == "local-eu-cpu")
        for c, r, n in (("local-eu-cpu", "eu-central-1", "eu-central-cpu-1"), ("local-eu-gpu", "eu-west-1", "eu-cpu-1"),
                        ("local-us-gpu", "us-east-1", "us-cpu-1"))
    ]  # fmt: skip
    placement = d.PlacementDecision(
        cluster="local-eu-cpu", region="eu-central-1", verdicts=verdicts,
        reason=f"placed on local-eu-cpu (eu-central-1): 3 of 3 clusters eligible; {verdicts[0].reason}",
    )  # fmt: skip
    pod = d.Pod(
        request_id="tp-9b7ee602c83f", phase=d.POD_PHASE_QUEUED, cluster="local-eu-cpu", region="eu-central-1",
        namespace="default", name="bench-w0xcu9qe", placement=placement, labels={"bench.podgate.io/id": "tp-9b7ee602c83f"},
    )  # fmt: skip
    pod.create_time.seconds, pod.create_time.nanos = 1796511513, 425947000
    return d.SubmitPodResponse(pod=pod, created=True)


async def grpc_serve() -> None:
    import grpc

    from gateway._proto.podgate.v1 import dispatch_pb2_grpc
    from gateway.api.server import EXCLUSIVE_PORT
    from gateway.policy.limits import DEFAULT_LIMITS

    reply = answer()

    class Floor(dispatch_pb2_grpc.DispatchServiceServicer):
        async def SubmitPod(self, request: Any, context: Any) -> Any:
            return reply

    server = grpc.aio.server(
        options=[("grpc.max_receive_message_length", DEFAULT_LIMITS.request_bytes), *EXCLUSIVE_PORT]
    )
    dispatch_pb2_grpc.add_DispatchServiceServicer_to_server(Floor(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
    await server.stop(None)


async def grpc_calls(pid: int, port: int, pods: int, callers: int, channels: int) -> dict[str, Any]:
    from bench._measure import submit_all
    from bench._pods import channels as open_channels
    from bench._pods import new_id, pod_request
    from bench._stack import cpu_seconds
    from gateway._proto.podgate.v1 import dispatch_pb2

    requests = [pod_request(new_id("tp"), duration=1.0) for _ in range(pods)]
    async with open_channels(f"127.0.0.1:{port}", channels) as stubs:
        await submit_all(stubs, [pod_request(new_id("w"), duration=1.0) for _ in range(2 * channels)], channels)
        before = cpu_seconds(pid)
        done = await submit_all(stubs, requests, callers)
        spent = cpu_seconds(pid) - before
    size = len(dispatch_pb2.SubmitPodRequest(pod=requests[0]).SerializeToString())
    return {"ms_a_pod": 1000 * spent / pods, "calls_per_s": pods / done.wall, "failed": sum(done.errors.values()),
            "request_bytes": size, "answer_bytes": len(answer().SerializeToString())}  # fmt: skip


def run_grpc(args: argparse.Namespace) -> dict[str, Any]:
    import uvloop

    child = subprocess.Popen(
        [sys.executable, __file__, "--child", "grpc"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        result: dict[str, Any] = uvloop.run(grpc_calls(child.pid, port, args.grpc_calls, args.callers, args.channels))
        return result
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)


# --- kube ------------------------------------------------------------------------------------------------


def run_kube(args: argparse.Namespace, kind: str, record: Path | None, number: int) -> dict[str, Any]:
    """`podgate sim` started afresh, the client `kind` in a child process against it."""
    from bench._stack import CLUSTERS, Simulator

    with tempfile.TemporaryDirectory(prefix="floor-kube-") as tmp:
        sim = Simulator(CLUSTERS, Path(tmp) / "kubeconfigs", Path(tmp) / "sim.log")
        try:
            time.sleep(1.0)
            sim_before = sim.cpu_seconds()
            command = [sys.executable, __file__, "--child", f"kube-{kind}", "--kubeconfigs", f"{tmp}/kubeconfigs",
                       "--pods", str(args.pods), "--rate", str(args.rate)]  # fmt: skip
            command += ["--record", str(record)] if record else []
            if args.py_spy:
                args.py_spy.mkdir(parents=True, exist_ok=True)
                command += ["--py-spy", str(args.py_spy / f"kube-{kind}-{number}.txt")]
            out = subprocess.run(command, capture_output=True, text=True, timeout=280)
            if out.returncode:
                raise RuntimeError(f"kube-{kind} failed:\n{out.stderr[-3000:]}")
            result: dict[str, Any] = json.loads(out.stdout.splitlines()[-1])
            result["sim_ms_a_pod"] = 1000 * (sim.cpu_seconds() - sim_before) / (args.pods + 20)
            counts = asyncio.run(sim.counts("local-eu-cpu"))
            result["requests_a_pod"] = {
                f"{v} {r}": round(n / (args.pods + 20), 2) for (v, r), n in sorted(counts.items())
            }
        finally:
            sim.stop()
    return result


# --- decode ----------------------------------------------------------------------------------------------

Shape = TypeVar("Shape")


class Line(msgspec.Struct, Generic[Shape]):
    """A watch line: its type and its object read into `Shape`, every other field skipped by msgspec in C."""

    type: str
    object: Shape


def decode_floor(lines_dir: Path, pods: int, repeats: int) -> dict[str, Any]:
    """msgspec's decode of each recorded watch line into the gateway's shape for it, against the gateway's
    `decode_watch_line` (the same decoder plus its checks and WatchEvent) and orjson's whole decode."""
    import orjson

    from gateway.clusters import shapes
    from gateway.clusters.kubeapi.decode import decode_watch_line

    watches = {"pods": (shapes.PodFields, shapes.PODS), "events": (shapes.EventFields, shapes.EVENTS)}
    lines = {kind: (lines_dir / f"{kind}.lines").read_bytes().splitlines() for kind in watches}
    out: dict[str, Any] = {"lines_a_pod": {kind: len(found) / pods for kind, found in lines.items()}}
    ways = {
        "msgspec": {kind: msgspec.json.Decoder(Line[fields]).decode for kind, (fields, _) in watches.items()},
        "ours": {
            kind: (lambda line, n=narrow: decode_watch_line(line, cluster="c", call="watch", narrow=n))
            for kind, (_, narrow) in watches.items()
        },
        "orjson_whole": {kind: orjson.loads for kind in watches},
    }
    for way, decoders in ways.items():
        before = self_cpu()
        for _ in range(repeats):
            for kind, decode in decoders.items():
                for line in lines[kind]:
                    decode(line)
        out[f"{way}_ms_a_pod"] = 1000 * (self_cpu() - before) / (pods * repeats)
    return out


def run_child(part: str, argv: list[str]) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", part, *argv]
    out = subprocess.run(command, capture_output=True, text=True, timeout=280)
    if out.returncode:
        raise RuntimeError(f"{part} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.splitlines()[-1])
    return result


# --- a py-spy file's samples by library ------------------------------------------------------------------

LIBRARIES = (  # (where the innermost Python frame is, what it is): the first that matches
    ("(asyncio/runners.py", "the loop's own C (uvloop: sockets, TLS records, callbacks, task steps)"),
    ("(ssl.py", "TLS: the ssl module's Python over OpenSSL"),
    ("(h2/", "h2, hpack, hyperframe"),
    ("(hpack/", "h2, hpack, hyperframe"),
    ("(hyperframe/", "h2, hpack, hyperframe"),
    ("(grpc/", "grpc's Python (grpc.aio)"),
    ("(sqlalchemy/", "SQLAlchemy"),
    ("(asyncio/", "asyncio's Python (tasks, locks, timeouts, futures)"),
    ("(gateway/_proto/", "protobuf (generated)"),
    ("(gateway/clusters/kubeapi/", "ours: the HTTP/2 client, gateway/clusters/kubeapi (and the C it calls)"),
    ("(gateway/store/", "ours: the store, gateway/store (and sqlite3's C under it)"),
    ("(gateway/api/", "ours: the gRPC edge, gateway/api"),
    ("(gateway/pods/", "ours: the pod runner and dispatcher, gateway/pods"),
    ("(gateway/clusters/", "ours: watches, capacity, tracks, gateway/clusters"),
    ("(gateway/", "ours: the rest of gateway/ (placement, policy, domain, ...)"),
    ("(floor.py", "this bench's driver"),
    ("(_floor_kube.py", "this bench's driver"),
)


def shares(path: Path) -> str:
    """Busy samples (bench/_pyspy.py's rule) by the library of their innermost Python frame: without --native, C
    called from Python counts for the Python line that called it."""
    from collections import Counter

    from bench._pyspy import samples

    found: Counter[str] = Counter()
    for frames, count in samples(path):
        leaf = frames[-1] if frames else ""
        found[next((what for where, what in LIBRARIES if where in leaf), "other (the standard library, threads)")] += (
            count
        )
    total = sum(found.values()) or 1
    rows = [f"{path}: {total} busy samples by the library of the innermost Python frame"]
    return "\n".join(rows + [f"  {100 * n / total:5.1f} %  {what}" for what, n in found.most_common()])


# --- the rounds and the report ---------------------------------------------------------------------------


def load() -> float:
    return round(os.getloadavg()[0], 1)


def one_round(args: argparse.Namespace, number: int, tmp: Path) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}

    def note(name: str, result: dict[str, Any]) -> None:
        result["load"] = load()
        found[name] = result
        print(f"  round {number} {name}: {json.dumps(result)}", flush=True)

    if "grpc" in args.parts:
        note("grpc", run_grpc(args))
    if "kube" in args.parts:
        record = tmp / f"lines-{number}"
        record.mkdir()
        kinds = ("ours", "h2") if number % 2 else ("h2", "ours")  # alternating which runs first
        for kind in kinds:
            note(f"kube-{kind}", run_kube(args, kind, record if kind == "h2" else None, number))
        if "decode" in args.parts:
            note(
                "decode",
                run_child("decode", ["--lines", str(record), "--pods", str(args.pods), "--repeats", str(args.repeats)]),
            )
    if "sqlite" in args.parts:
        for synchronous in ("normal", "full"):
            note(
                f"sqlite-{synchronous}",
                run_child(
                    f"sqlite-{synchronous}",
                    ["--pods", str(args.sqlite_pods), "--per-transaction", str(args.per_transaction)],
                ),
            )
    return found


ROWS = (  # (what, part, figure)
    ("grpc.aio server, one unary SubmitPod (uvloop)", "grpc", "ms_a_pod"),
    ("h2 used plainly over TLS: 4 requests, the watch lines", "kube-h2", "ms_a_pod"),
    ("msgspec: the pod's watch lines into their shapes", "decode", "msgspec_ms_a_pod"),
    ("sqlite3: 4 writes, WAL, FULL (the gateway's default)", "sqlite-full", "ms_a_pod"),
    ("the gateway's ClusterClient, same I/O, decoding included", "kube-ours", "ms_a_pod"),
    ("sqlite3 with synchronous=NORMAL", "sqlite-normal", "ms_a_pod"),
    ("the gateway's decode_watch_line, the same lines", "decode", "ours_ms_a_pod"),
    ("orjson, the same lines decoded whole", "decode", "orjson_whole_ms_a_pod"),
)
SUMS = (  # the libraries alone under each of the gateway's I/O parts; and with the gateway's own HTTP/2 client,
    # which does the Kubernetes side for less than h2 used plainly
    ("the libraries used plainly", ("grpc", "kube-h2", "decode", "sqlite-full")),
    ("with the gateway's HTTP/2 client", ("grpc", "kube-ours", "sqlite-full")),
)


def median_of(rounds: list[dict[str, dict[str, Any]]], part: str, figure: str) -> tuple[float, list[float]] | None:
    values = [r[part][figure] for r in rounds if part in r]
    return (statistics.median(values), values) if values else None


def report(args: argparse.Namespace, rounds: list[dict[str, dict[str, Any]]]) -> None:
    """Each figure's median (every round's beside), then each sum the rounds have all the parts of."""
    loads = sorted(r[p]["load"] for r in rounds for p in r)
    print(f"\nms a pod, median of {len(rounds)} round(s) (load average {loads[0]}-{loads[-1]}):")
    medians: dict[str, float] = {}
    for what, part, figure in ROWS:
        found = median_of(rounds, part, figure)
        if found is not None:
            medians.setdefault(part, found[0])
            print(f"  {what:<58}{found[0]:>7.3f} ms   ({', '.join(f'{v:.3f}' for v in found[1])})")
    gateway = statistics.median(args.gateway_ms) if args.gateway_ms else None
    for title, parts in SUMS:
        if all(part in medians for part in parts):
            total = sum(medians[part] for part in parts)
            gap = f"; the gateway (--gateway-ms) {gateway:.3f} ms: ours {gateway - total:.3f} ms" if gateway else ""
            print(f"  = {title} ({' + '.join(parts)}): {total:.3f} ms{gap}")


ROUND = re.compile(r"^  round (\d+) ([\w-]+): (\{.*\})$")
GATEWAY = re.compile(r"gateway CPU time per pod, first submit to last result: ([\d.]+) ms")


def from_logs(args: argparse.Namespace, paths: list[Path]) -> list[dict[str, dict[str, Any]]]:
    """The rounds printed in earlier runs' output (this script's, and bench/dispatch.py throughput's gateway CPU a
    pod, which become `--gateway-ms`), so that the medians of runs made apart are printed by one command."""
    rounds: list[dict[str, dict[str, Any]]] = []
    number = ""
    for path in paths:
        for line in path.read_text().splitlines():
            if found := ROUND.match(line):
                if found.group(1) != number or not rounds or found.group(2) in rounds[-1]:
                    rounds.append({})
                number = found.group(1)
                rounds[-1][found.group(2)] = json.loads(found.group(3))
            elif found := GATEWAY.search(line):
                args.gateway_ms.append(float(found.group(1)))
    return rounds


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parts", nargs="*", metavar="PART", help=f"what to measure: {', '.join(PARTS)} (default: all)")
    parser.add_argument("--pods", type=int, default=2000, help="kube: pods run (their lines: decode)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--grpc-calls", type=int, default=6000, help="grpc: SubmitPod calls (one a pod)")
    parser.add_argument("--sqlite-pods", type=int, default=10_000, help="sqlite: pods whose writes are made")
    parser.add_argument(
        "--per-transaction", type=int, default=WRITES_A_TRANSACTION, help="sqlite: writes a transaction"
    )
    parser.add_argument("--callers", type=int, default=200, help="grpc: concurrent SubmitPod callers")
    parser.add_argument("--channels", type=int, default=20, help="grpc: gRPC connections")
    parser.add_argument("--rate", type=float, default=400.0, help="kube: pods started a second (SubmitPod's rate)")
    parser.add_argument("--repeats", type=int, default=20, help="decode: passes over the recorded lines")
    parser.add_argument("--gateway-ms", type=float, nargs="*", default=[], help="the gateway's CPU a pod, to compare")
    parser.add_argument("--py-spy", type=Path, help="kube: py-spy each client over its measured pods, files here")
    parser.add_argument("--report", type=Path, nargs="+", help="only the medians of the rounds in these outputs")
    parser.add_argument("--shares", type=Path, nargs="+", help="only print these py-spy files' samples by library")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfigs", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--record", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--lines", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}: choose from {', '.join(PARTS)}")
    args.parts = args.parts or list(PARTS)
    return args


def child(args: argparse.Namespace) -> None:
    if args.child == "grpc":
        import uvloop

        uvloop.run(grpc_serve())
        return
    if args.child.startswith("kube-"):
        from bench import _floor_kube

        result = _floor_kube.run(args.child[5:], args.kubeconfigs, args.pods, args.rate, args.record, args.py_spy)
    elif args.child.startswith("sqlite-"):
        from bench._floor_sqlite import sqlite_floor

        result = sqlite_floor(args.pods, args.child[7:], args.per_transaction)
    else:
        result = decode_floor(args.lines, args.pods, args.repeats)
    print(json.dumps(result), flush=True)


def main() -> None:
    args = parse()
    if args.shares:
        print("\n".join(shares(path) for path in args.shares))
        return
    if args.report:
        rounds = from_logs(args, args.report)
        if args.gateway_ms:
            print(f"the gateway's CPU a pod in {len(args.gateway_ms)} runs: {', '.join(map(str, args.gateway_ms))} ms")
        report(args, rounds)
        return
    if args.child:
        child(args)
        return
    print(f"bench/floor.py {' '.join(sys.argv[1:])}: {args.pods} pods a part, load average {load()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="floor-") as tmp:
        rounds = [one_round(args, n, Path(tmp)) for n in range(1, args.rounds + 1)]
    report(args, rounds)


if __name__ == "__main__":
    main()
