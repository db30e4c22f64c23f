"""The client-side commands' flags (argparse only, so `podgate --help` stays fast; the handlers import lazily).

Every parser refuses abbreviations (`--name` must never be read as `--namespace`), and a usage error exits
with podgate's own code 125, never 2, which a pod may well exit with.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, NoReturn

EXIT_USAGE = 125
OUTPUTS = ("wide", "json", "yaml", "name")

Handler = Callable[[argparse.Namespace], int]


class Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: {message}\n")


def command(module: str, function: str) -> Handler:
    """Imports the command's module only when it runs."""

    def handler(args: argparse.Namespace) -> int:
        import importlib

        result: int = getattr(importlib.import_module(f"gateway.commands.{module}"), function)(args)
        return result

    return handler


def gateway_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("gateway connection (each defaults to its PODGATE_* variable)")
    g.add_argument(
        "--gateway",
        help="gateway address, or several replicas a:50051,b:50051 (calls fail over between them), or a gRPC "
        "target such as dns:///name:50051 ($PODGATE_GATEWAY, else 127.0.0.1:50051)",
    )
    g.add_argument("--tls", action="store_true", help="TLS with the system's trusted roots ($PODGATE_TLS=1)")
    g.add_argument("--ca-file", help="CA bundle that signed the gateway's certificate, implies TLS ($PODGATE_CA_FILE)")
    g.add_argument("--cert-file", help="client certificate for mTLS, implies TLS ($PODGATE_CERT_FILE)")
    g.add_argument("--key-file", help="the client certificate's key ($PODGATE_KEY_FILE)")
    g.add_argument(
        "--server-name",
        help="the name the gateway's certificate carries, when it is not the (first) address's host ($PODGATE_SERVER_NAME)",
    )
    g.add_argument("--token-file", help="file holding a bearer token ($PODGATE_TOKEN_FILE; else $PODGATE_TOKEN)")


def _workload_flags(p: argparse.ArgumentParser) -> None:
    """What the pod is and needs: shared by run and explain, so both judge the same pod."""
    p.add_argument("-f", "--filename", metavar="POD.yaml", help="a Pod manifest; the flags below override it")
    p.add_argument("--namespace", help="the pod's namespace (default: the manifest's, else 'default')")
    p.add_argument("--cpu", help="CPU request of the main container, e.g. 500m or 2")
    p.add_argument("--memory", help="memory request of the main container, e.g. 512Mi or 4Gi")
    p.add_argument("--gpus", type=int, default=0, help="nvidia.com/gpu count")
    p.add_argument("--gpu-type", help="GPU product, e.g. NVIDIA-A100-SXM4-40GB (node selector nvidia.com/gpu.product)")
    p.add_argument("--node-selector", action="append", default=[], metavar="K=V", help="repeatable")
    p.add_argument(
        "--toleration", action="append", default=[], metavar="KEY[=VALUE][:EFFECT]",
        help="a Kubernetes toleration of node taints (repeatable)",
    )  # fmt: skip
    p.add_argument("--select", default="", help="cluster label selector, e.g. 'tier=prod,gpu in (a100)'")
    p.add_argument("--region", action="append", default=[], help="allowed region (repeatable)")
    p.add_argument("--cluster", action="append", default=[], help="allowed cluster or alias (repeatable)")
    p.add_argument(
        "--cluster-toleration", action="append", default=[], metavar="KEY[=VALUE][:EFFECT]",
        help="tolerate a cluster's taint (repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--prefer", action="append", default=[], metavar="[WEIGHT:]SELECTOR",
        help="prefer clusters matching SELECTOR by WEIGHT (1..100, default 50; repeatable)",
    )  # fmt: skip


def _run(sub: Any) -> None:
    run = sub.add_parser("run", help="run a pod through the gateway and stream its logs")
    gateway_flags(run)
    _workload_flags(run)
    run.add_argument("--image", help="container image of the main container (required without -f)")
    run.add_argument("--name", help="the pod's name (the gateway adds a unique suffix)")
    run.add_argument("--env", action="append", default=[], metavar="K=V")
    run.add_argument("--label", action="append", default=[], metavar="K=V", help="pod label (repeatable)")
    run.add_argument("--annotation", action="append", default=[], metavar="K=V", help="pod annotation (repeatable)")
    run.add_argument("--request-id", help="idempotency key: the same id never creates a second pod (default: new)")
    run.add_argument("--xcom-mode", choices=("auto", "sidecar", "disabled"), default="auto",
                     help="auto: termination message, up to 4096 bytes; sidecar: any size")  # fmt: skip
    run.add_argument("--xcom-sidecar-image", help="image of the XCom sidecar (the gateway's default when unset)")
    run.add_argument("--xcom-out", metavar="FILE", help="write the pod's XCom (return.json) here")
    run.add_argument("--logs", metavar="main|all|none|NAME,...", help="which containers' logs to stream")
    run.add_argument("--keep-pod", action="store_true", help="keep the pod on its cluster after it finishes")
    run.add_argument("--placement-timeout", metavar="DURATION", help="how long to wait for capacity, e.g. 10m")
    run.add_argument("--startup-timeout", metavar="DURATION", help="how long the pod may stay Pending, e.g. 5m")
    run.add_argument("--reattach-grace", metavar="DURATION",
                     help="how long the pod keeps running with no client attached (default 5m; 24h with --detach)")  # fmt: skip
    run.add_argument("-d", "--detach", action="store_true", help="return once the pod is placed")
    run.add_argument("command_", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")
    run.set_defaults(func=command("run", "run"))

    explain = sub.add_parser("explain", help="dry run: where a pod would be placed, and why")
    gateway_flags(explain)
    _workload_flags(explain)
    explain.set_defaults(func=command("explain", "explain"))


def _pods(sub: Any) -> None:
    pods = sub.add_parser("pods", help="list and inspect the gateway's pods")
    psub = pods.add_subparsers(dest="pods_command", required=True, metavar="ACTION")
    ls = psub.add_parser("list", help="pods, newest first")
    gateway_flags(ls)
    ls.add_argument("--phase", action="append", default=[], help="Queued, Pending, Running, Succeeded, ... (repeatable)")
    ls.add_argument("--cluster", default="")
    ls.add_argument("--namespace", default="")
    ls.add_argument("-l", "--selector", default="", help="pod labels, e.g. team=ml,tier!=dev")
    ls.add_argument("--tenant", default="", help="one tenant's pods (admins see every tenant's)")
    ls.add_argument("--dag", default="", help="an Airflow DAG id")
    ls.add_argument("--limit", type=int, default=100)
    ls.add_argument("-o", "--output", choices=OUTPUTS)
    ls.add_argument("-w", "--watch", action="store_true", help="then print each pod whose phase changes")
    ls.set_defaults(func=command("pods", "pods"))
    get = psub.add_parser("get", help="one pod: request, placement, phase, result, XCom and events")
    gateway_flags(get)
    get.add_argument("request_id", metavar="REQUEST_ID")
    get.add_argument("-o", "--output", choices=("json", "yaml"))
    get.set_defaults(func=command("pods", "pods"))

    logs = sub.add_parser("logs", help="a pod's log lines, replayed from the gateway's journal")
    gateway_flags(logs)
    logs.add_argument("request_id", metavar="REQUEST_ID")
    logs.add_argument("-f", "--follow", action="store_true", help="keep following until the pod ends")
    logs.add_argument("-c", "--container", help="only this container's lines")
    logs.set_defaults(func=command("streams", "logs_command"))

    attach = sub.add_parser("attach", help="follow a pod to its end, as `podgate run` does (Ctrl-C detaches)")
    gateway_flags(attach)
    attach.add_argument("request_id", metavar="REQUEST_ID")
    attach.add_argument("--cursor", default="", help="resume right after this cursor (from the start by default)")
    attach.set_defaults(func=command("streams", "attach_command"))

    cancel = sub.add_parser("cancel", help="cancel a pod")
    gateway_flags(cancel)
    cancel.add_argument("request_id", metavar="REQUEST_ID")
    cancel.add_argument("--reason", default="cancelled with podgate cancel")
    cancel.set_defaults(func=command("pods", "cancel_command"))


def _clusters(sub: Any) -> None:
    clusters = sub.add_parser("clusters", help="manage registered clusters")
    csub = clusters.add_subparsers(dest="clusters_command", required=True, metavar="ACTION")
    handler = command("clusters", "clusters")
    ls = csub.add_parser("list", help="clusters with health, labels and free capacity")
    ls.add_argument("-o", "--output", choices=("wide", "json", "yaml"))
    ls.add_argument("-w", "--watch", action="store_true", help="then print each cluster whose state changes")
    describe = csub.add_parser("describe", help="one cluster: health and why, capacity per node, taints, pods")
    describe.add_argument("name")
    describe.add_argument("-o", "--output", choices=("json", "yaml"))
    register = csub.add_parser("register", help="register clusters from a YAML file")
    register.add_argument("file")
    register.add_argument("--replace", action="store_true", help="update clusters already registered")
    deregister = csub.add_parser("deregister", help="remove a cluster")
    deregister.add_argument("name")
    deregister.add_argument("--force", action="store_true", help="even with pods still running there")
    cordon = csub.add_parser("cordon", help="stop new placements on a cluster")
    cordon.add_argument("name")
    cordon.add_argument("--reason", default="cordoned with podgate clusters cordon")
    uncordon = csub.add_parser("uncordon", help="allow placements on a cluster again")
    uncordon.add_argument("name")
    for p in (ls, describe, register, deregister, cordon, uncordon):
        gateway_flags(p)
        p.set_defaults(func=handler)


def _kubeconfig(sub: Any) -> None:
    kubeconfig = sub.add_parser(
        "kubeconfig", help="issue a short-lived, namespace-scoped kubeconfig (`kubeconfig revoke ID` revokes one)"
    )
    gateway_flags(kubeconfig)
    kubeconfig.add_argument("--cluster", help="cluster to issue for (required)")
    kubeconfig.add_argument("--namespace", help="namespace to issue for (required)")
    kubeconfig.add_argument("--ttl", default="15m")
    kubeconfig.add_argument("--access", choices=("view", "edit"), default="view")
    kubeconfig.add_argument("-o", "--output", help="write to this file (mode 0600) instead of stdout")
    kubeconfig.set_defaults(func=command("kubeconfig", "kubeconfig"), kubeconfig_command="issue")
    ksub = kubeconfig.add_subparsers(dest="kubeconfig_command", metavar="[revoke]")
    revoke = ksub.add_parser("revoke", help="revoke an issued kubeconfig by its credential id")
    gateway_flags(revoke)
    revoke.add_argument("credential_id", metavar="CREDENTIAL_ID")


def _dev_certs(sub: Any) -> None:
    p = sub.add_parser("dev-certs", help="a local CA, server and client certificates, and a config using them")
    p.add_argument("--dir", default=".podgate/certs", help="where to write them (default %(default)s)")
    p.add_argument("--client", action="append", metavar="NAME",
                   help="a client certificate (CN NAME) and an admin tenant of that name; repeatable (default admin)")  # fmt: skip
    p.add_argument("--force", action="store_true", help="replace certificates already there")
    p.set_defaults(func=command("devcerts", "dev_certs_command"))


def add_client_commands(sub: Any) -> None:
    _dev_certs(sub)
    _run(sub)
    _pods(sub)
    _clusters(sub)
    _kubeconfig(sub)
