"""grpc.aio alone on uvloop: the server's CPU, system calls and context switches a unary call (helper grpc5).

A child process serves one generic unary handler that echoes 40 bytes; this process makes the calls (200
callers on 20 channels by default) and reads the child's CPU from /proc, split by thread (the loop's own
thread, grpc.aio's poller, grpc's event_engine threads), and its system calls and context switches with
`perf stat` (left out when perf is not there). Channel options for either side and grpc's environment
variables (GRPC_EXPERIMENTS, GRPC_POLL_STRATEGY, ...) are what is compared; nothing of the gateway runs.

    .venv/bin/python bench/edge_grpc.py [--calls 6000] [--callers 200] [--channels 20]
    .venv/bin/python bench/edge_grpc.py --server-option grpc.enable_channelz=0
    .venv/bin/python bench/edge_grpc.py --client-option grpc.http2.bdp_probe=0
    GRPC_EXPERIMENTS=pollset_alternative .venv/bin/python bench/edge_grpc.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Any

import grpc
import uvloop

TICKS = os.sysconf("SC_CLK_TCK")


def options(pairs: list[str]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for pair in pairs:
        key, value = pair.split("=", 1)
        out.append((key, int(value) if value.lstrip("-").isdigit() else value))
    return out


async def serve(server_options: list[tuple[str, Any]]) -> None:
    async def echo(request: bytes, context: Any) -> bytes:
        return request[:40]

    class Echo(grpc.GenericRpcHandler):
        def service(self, handler_call_details: Any) -> Any:
            return grpc.unary_unary_rpc_method_handler(echo)

    server = grpc.aio.server(options=[*server_options, ("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((Echo(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
    await server.stop(None)


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds by thread kind: the loop's thread ("loop"), grpc.aio's poller ("poller"), grpc's own."""
    out: dict[str, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                raw = f.read()
        except FileNotFoundError:
            continue
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw.rsplit(")", 1)[1].split()
        kind = "loop" if tid == str(pid) else "poller" if name.startswith("python") else name
        out[kind] = out.get(kind, 0.0) + (int(fields[11]) + int(fields[12])) / TICKS
    return out


async def measure(args: argparse.Namespace, pid: int, port: int) -> dict[str, Any]:
    client_options = options(args.client_option)
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=client_options) for _ in range(args.channels)]
    stubs = [channel.unary_unary("/bench.Echo/Call") for channel in channels]
    payload = b"x" * 600  # about a SubmitPod request
    for stub in stubs:
        await stub(payload)
    left = [args.calls]

    async def caller(i: int) -> None:
        stub = stubs[i % len(stubs)]
        while left[0] > 0:
            left[0] -= 1
            await stub(payload)

    before, started = thread_cpu(pid), time.monotonic()
    await asyncio.gather(*(caller(i) for i in range(args.callers)))
    after, took = thread_cpu(pid), time.monotonic() - started
    result: dict[str, Any] = {
        "us_a_call": round((sum(after.values()) - sum(before.values())) / args.calls * 1e6, 1),
        "by_thread_us": {k: round((v - before.get(k, 0.0)) / args.calls * 1e6) for k, v in after.items()},
        "calls_per_s": round(args.calls / took),
        "load": round(os.getloadavg()[0], 1),
    }
    for channel in channels:
        await channel.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=6000)
    parser.add_argument("--callers", type=int, default=200)
    parser.add_argument("--channels", type=int, default=20)
    parser.add_argument("--server-option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--client-option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the child
    args = parser.parse_args()
    if args.serve:
        uvloop.run(serve(options(args.server_option)))
        return
    command = [sys.executable, __file__, "--serve"] + [f"--server-option={o}" for o in args.server_option]
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        perf = None
        if shutil.which("perf"):  # counted from before the 20 warm-up calls: within the rounding
            events = ["-e", "raw_syscalls:sys_enter,context-switches"]
            perf = subprocess.Popen(["perf", "stat", "-x,", *events, "-p", str(child.pid)], stderr=subprocess.PIPE, text=True)
            time.sleep(0.3)
        result = uvloop.run(measure(args, child.pid, port))
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            counts = [line.split(",") for line in perf.communicate()[1].splitlines() if line[:1].isdigit()]
            result.update({f"{c[2]}_a_call": round(float(c[0]) / args.calls, 1) for c in counts})
        print(json.dumps(result))
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)


if __name__ == "__main__":
    main()
