"""The `podgate` command. Sub-commands delegate to the client or to server entry points; no logic of their own."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from gateway.commands.args import Parser, add_client_commands

EXIT_CODES = """exit codes:
  0        the pod succeeded (or the command did what it was asked)
  1-124    the pod's main container exited with this code (so do 128 and above)
  125      podgate's own error: bad flags, gateway unreachable, request refused
  126      no registered cluster can take the pod
  127      the pod failed without its command's exit code (never started, XCom unreadable, ...)
  130      the pod was cancelled (Ctrl-C on run cancels it)
"""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("podgate")
    except PackageNotFoundError:
        return "unknown"


def _serve(args: argparse.Namespace) -> int:
    from gateway.observability import logging as logs

    flags = {key: value for key, value in vars(args).items() if "." in key and value is not None}
    if args.verbose:
        flags["logging.level"] = "debug"
    logs.configure(flags.get("logging.format", "text"), level=logging.DEBUG if args.verbose else logging.INFO)
    from gateway.app import serve_forever, serve_loop_factory  # after logging is set up: imports may log
    from gateway.eventloop import LoopUnavailable, pin_malloc_thresholds

    try:
        factory = serve_loop_factory(args.config or "", flags)
    except LoopUnavailable as e:
        print(f"podgate: {e}", file=sys.stderr)
        return 2
    pin_malloc_thresholds()
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(serve_forever(args.config or "", flags))


def _sim(args: argparse.Namespace) -> int:
    from gateway.sim.main import main as sim_main

    return sim_main(args.config, args.kubeconfig_dir)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="podgate", description="Multi-cluster Kubernetes pod dispatch gateway.", epilog=EXIT_CODES)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"podgate {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # Each flag's dest is the settings key it sets (gateway.settings.overrides): flag > PODGATE_* > file.
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument(
        "--config", metavar="FILE",
        help="the gateway's YAML configuration (examples/podgate.yaml shows every key); flags override it",
    )  # fmt: skip
    serve.add_argument("--listen", dest="server.listen", help="gRPC listen address (key server.listen)")
    serve.add_argument(
        "--event-loop", dest="server.event_loop", choices=("auto", "uvloop", "asyncio"),
        help="auto (default): uvloop when installed; asyncio: the standard loop (key server.event_loop)",
    )  # fmt: skip
    serve.add_argument(
        "--clusters", dest="clusters.files", action="append",
        help="cluster file or directory (repeatable); none: run the embedded local clusters of clusters/local.yaml",
    )  # fmt: skip
    serve.add_argument("--state-dir", dest="server.state_dir", help="SQLite store and kubeconfigs (key server.state_dir)")
    serve.add_argument(
        "--database-url", dest="database.url", metavar="URL",
        help="SQLAlchemy async URL of the store, e.g. postgresql+asyncpg://... (key database.url; else SQLite in the state dir)",
    )  # fmt: skip
    serve.add_argument(
        "--metrics-listen", dest="metrics.listen", metavar="HOST:PORT",
        help="Prometheus /metrics address (key metrics.listen; its default is skipped with a warning when taken); 'off' for none",
    )  # fmt: skip
    serve.add_argument(
        "--health-listen", dest="server.health_listen", metavar="HOST:PORT",
        help="a plain-text listener serving only grpc.health.v1, for kubelet probes (they cannot speak TLS)",
    )  # fmt: skip
    serve.add_argument(
        "--log-format", dest="logging.format", choices=("text", "json"),
        help="text for a terminal, json for one object per line with request_id, tenant, cluster, pod",
    )  # fmt: skip
    serve.set_defaults(func=_serve)

    sim = sub.add_parser("sim", help="run the local Kubernetes simulator in the foreground")
    sim.add_argument("--config", default="clusters/local.yaml")
    sim.add_argument("--kubeconfig-dir", default=".podgate/kubeconfigs")
    sim.set_defaults(func=_sim)

    add_client_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command not in ("serve", "sim") and not args.verbose:
        # gRPC's core logs a failed connection or TLS handshake itself; the command reports it once. Read
        # when grpc is first imported, which client commands do only after this.
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
