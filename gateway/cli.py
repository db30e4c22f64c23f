"""The `podgate` command. Sub-commands delegate to the client or to server entry points; no logic of their own."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence

from gateway.client.channel import DEFAULT_ADDRESS


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


def _command(module: str, function: str) -> Callable[[argparse.Namespace], int]:
    """Imports the command's module only when it runs, so `podgate --help` stays fast."""

    def handler(args: argparse.Namespace) -> int:
        import importlib

        result: int = getattr(importlib.import_module(f"gateway.commands.{module}"), function)(args)
        return result

    return handler


def _add_gateway_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gateway", default=DEFAULT_ADDRESS, help="gateway address (default %(default)s)")
    p.add_argument("--tls", action="store_true", help="TLS with the system's trusted roots")
    p.add_argument("--ca-file", help="CA bundle that signed the gateway's certificate (implies TLS)")
    p.add_argument("--cert-file", help="client certificate, for mTLS (implies TLS)")
    p.add_argument("--key-file", help="the client certificate's key")
    p.add_argument("--token-file", help="file holding a bearer token (else $PODGATE_TOKEN)")


def _add_constraint_flags(p: argparse.ArgumentParser) -> None:
    _add_gateway_flags(p)
    p.add_argument("--select", default="", help="cluster label selector, e.g. 'tier=prod,gpu in (a100)'")
    p.add_argument("--region", action="append", default=[], help="allowed region (repeatable)")
    p.add_argument("--cluster", action="append", default=[], help="allowed cluster (repeatable)")
    p.add_argument("--namespace", default="default")
    p.add_argument("--gpus", type=int, default=0, help="nvidia.com/gpu count")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="podgate", description="Multi-cluster Kubernetes pod dispatch gateway.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
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

    run = sub.add_parser("run", help="run a pod through the gateway and stream its logs")
    _add_constraint_flags(run)
    run.add_argument("--image", required=True)
    run.add_argument("--env", action="append", default=[], metavar="K=V")
    run.add_argument("--xcom-out", metavar="FILE")
    run.add_argument("command_", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")
    run.set_defaults(func=_command("run", "run"))

    explain = sub.add_parser("explain", help="show where a pod would be placed, and why")
    _add_constraint_flags(explain)
    explain.set_defaults(func=_command("explain", "explain"))

    clusters = sub.add_parser("clusters", help="manage registered clusters")
    csub = clusters.add_subparsers(dest="clusters_command", required=True, metavar="ACTION")
    for name, helptext in (
        ("list", "list clusters with health, labels and free capacity"),
        ("register", "register clusters from a YAML file"),
        ("deregister", "remove a cluster"),
        ("cordon", "stop new placements on a cluster"),
        ("uncordon", "allow placements on a cluster again"),
    ):
        p = csub.add_parser(name, help=helptext)
        _add_gateway_flags(p)
        if name == "register":
            p.add_argument("file")
        elif name != "list":
            p.add_argument("name")
        p.set_defaults(func=_command("clusters", "clusters"))

    kubeconfig = sub.add_parser("kubeconfig", help="issue a short-lived, namespace-scoped kubeconfig")
    _add_gateway_flags(kubeconfig)
    kubeconfig.add_argument("--cluster", required=True)
    kubeconfig.add_argument("--namespace", required=True)
    kubeconfig.add_argument("--ttl", default="15m")
    kubeconfig.add_argument("--access", choices=("view", "edit"), default="view")
    kubeconfig.add_argument("-o", "--output", help="write to this file (mode 0600) instead of stdout")
    kubeconfig.set_defaults(func=_command("kubeconfig", "kubeconfig"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
