"""The `podgate` command. Sub-commands delegate to the client or to server entry points; no logic of their own."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from gateway.client.channel import DEFAULT_ADDRESS
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

    logs.configure(
        args.log_format or "text", level=logging.DEBUG if args.verbose else logging.INFO
    )  # before imports log
    from gateway.app import ServeOptions, serve_forever

    options = ServeOptions(
        config_file=args.config or "",
        listen=args.listen or "",
        cluster_files=tuple(args.clusters),
        state_dir=args.state_dir or "",
        metrics_listen=args.metrics_listen,
        health_listen=args.health_listen or "",
        log_format=args.log_format or "",
    )
    return asyncio.run(serve_forever(options))


def _sim(args: argparse.Namespace) -> int:
    from gateway.sim.main import main as sim_main

    return sim_main(args.config, args.kubeconfig_dir)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="podgate", description="Multi-cluster Kubernetes pod dispatch gateway.", epilog=EXIT_CODES)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"podgate {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument(
        "--config", metavar="FILE",
        help="the gateway's YAML configuration (listen, TLS, tenants, authentication, limits, audit); flags override it",
    )  # fmt: skip
    serve.add_argument("--listen", help=f"gRPC listen address (default {DEFAULT_ADDRESS})")
    serve.add_argument(
        "--clusters", action="append", default=[],
        help="cluster file or directory (repeatable); none: run the embedded local clusters of clusters/local.yaml",
    )  # fmt: skip
    serve.add_argument("--state-dir", help="database and kubeconfigs (default .podgate)")
    serve.add_argument(
        "--metrics-listen", metavar="HOST:PORT",
        help="Prometheus /metrics address (default 127.0.0.1:9464, skipped with a warning when taken); 'off' for none",
    )  # fmt: skip
    serve.add_argument(
        "--health-listen", metavar="HOST:PORT",
        help="a plain-text listener serving only grpc.health.v1, for kubelet probes (they cannot speak TLS)",
    )  # fmt: skip
    serve.add_argument(
        "--log-format", choices=("text", "json"),
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
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
