"""`run` and `explain` flags (and `-f pod.yaml`) into one PodSpecRequest. Pure: no I/O but reading -f.

Flags override the manifest: --image, the command, --cpu/--memory/--gpus apply to the main (first) container;
--label, --annotation, --node-selector and --toleration are merged into the manifest's own.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gateway.client.request import REQUEST_ID_RE, OnFinishAction, PodSpecRequest, PreferenceSpec, SelectorSpec
from gateway.commands.common import CommandError

GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
# A container image reference: [registry[:port]/]path[:tag][@digest], path components in lower case.
_IMAGE = re.compile(
    r"^(?:[A-Za-z0-9.-]+(?::\d+)?/)?[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)
_QUANTITY = re.compile(r"^[0-9]+(?:\.[0-9]+)?(?:m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_TOLERATION = re.compile(r"^(?P<key>[^=:]+)(?:=(?P<value>[^:]*))?(?::(?P<effect>NoSchedule|PreferNoSchedule|NoExecute))?$")
DETACHED_REATTACH_GRACE = 24 * 3600.0
PLACEHOLDER_IMAGE = "busybox"


def duration(text: str | None, flag: str) -> float | None:
    """Seconds from "90", "90s", "5m", "1h" or "250ms"."""
    if text is None:
        return None
    m = _DURATION.match(text.strip())
    if not m:
        raise CommandError(f"{flag} wants a duration like 30s, 5m or 1h, got {text!r}")
    return float(m.group(1)) * _UNIT_SECONDS[m.group(2) or "s"]


def pairs(items: Sequence[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CommandError(f"{flag} wants KEY=VALUE, got {item!r}")
        out[key] = value
    return out


def check_image(image: str) -> str:
    if not image.strip():
        raise CommandError("--image is empty: name the container image to run, e.g. --image python:3.12")
    if not _IMAGE.match(image):
        raise CommandError(f"--image {image!r} is not an image reference like python:3.12 or registry/team/app:1.0")
    return image


def _quantity(value: str, flag: str) -> str:
    if not _QUANTITY.match(value):
        raise CommandError(f"{flag} wants a Kubernetes quantity like 500m, 2, 512Mi or 4Gi, got {value!r}")
    return value


def toleration(text: str) -> dict[str, str]:
    """A Kubernetes toleration from "key=value:Effect", "key:Effect" or "key"."""
    m = _TOLERATION.match(text.strip())
    if not m:
        raise CommandError(f"--toleration wants key=value:Effect, key:Effect or key, got {text!r}")
    out = {"key": m["key"], "operator": "Equal" if m["value"] is not None else "Exists"}
    if m["value"] is not None:
        out["value"] = m["value"]
    if m["effect"]:
        out["effect"] = m["effect"]
    return out


def preference(text: str) -> PreferenceSpec:
    """--prefer "WEIGHT:SELECTOR" or "SELECTOR" (weight 50)."""
    weight, sep, selector = text.partition(":")
    if not sep or not weight.strip().isdigit():
        weight, selector = "50", text
    if not 1 <= int(weight) <= 100 or not selector.strip():
        raise CommandError(f"--prefer wants WEIGHT:SELECTOR with a weight of 1..100, e.g. 80:tier=prod, got {text!r}")
    return PreferenceSpec(weight=int(weight), selector=SelectorSpec.of(selector))


def read_manifest(path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise CommandError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        import yaml

        document = yaml.safe_load(text)
    except ImportError:
        document = json.loads(text)
    except yaml.YAMLError as e:
        raise CommandError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(document, dict) or document.get("kind") != "Pod":
        raise CommandError(f"{path} must hold one Kubernetes Pod manifest (kind: Pod)")
    containers = (document.get("spec") or {}).get("containers")
    if not isinstance(containers, list) or not containers or not isinstance(containers[0], dict):
        raise CommandError(f"{path}: spec.containers must list at least one container")
    return document


def _main_container(args: argparse.Namespace, pod: dict[str, Any], command: Sequence[str]) -> None:
    main = pod["spec"]["containers"][0]
    main.setdefault("name", "base")
    image = getattr(args, "image", None)
    if image is None and "image" not in main and args.command == "explain":
        image = PLACEHOLDER_IMAGE  # placement does not depend on the image
    if image is not None or "image" not in main:
        main["image"] = check_image(image or "")
    if command:
        main["command"] = list(command)
        main.pop("args", None)
    env = pairs(getattr(args, "env", []), "--env")
    if env:
        kept = [e for e in main.get("env") or [] if e.get("name") not in env]
        main["env"] = kept + [{"name": k, "value": v} for k, v in env.items()]
    resources = main.setdefault("resources", {})
    for flag, key in (("cpu", "cpu"), ("memory", "memory")):
        value = getattr(args, flag, None)
        if value:
            resources.setdefault("requests", {})[key] = _quantity(value, f"--{flag}")
    if args.gpus:
        resources.setdefault("limits", {})[GPU_RESOURCE] = str(args.gpus)
    if not resources:
        del main["resources"]


def _metadata(args: argparse.Namespace, pod: dict[str, Any]) -> None:
    meta = pod.setdefault("metadata", {})
    if getattr(args, "name", None):
        meta["name"] = args.name
    meta.setdefault("name", "podgate-run")
    if args.namespace:
        meta["namespace"] = args.namespace
    meta.setdefault("namespace", "default")
    for flag, key in (("label", "labels"), ("annotation", "annotations")):
        extra = pairs(getattr(args, flag, []), f"--{flag}")
        if extra:
            meta[key] = {**(meta.get(key) or {}), **extra}


def _scheduling(args: argparse.Namespace, spec: dict[str, Any]) -> None:
    selector = pairs(getattr(args, "node_selector", []), "--node-selector")
    if getattr(args, "gpu_type", None):
        selector[GPU_PRODUCT_LABEL] = args.gpu_type
    if selector:
        spec["nodeSelector"] = {**(spec.get("nodeSelector") or {}), **selector}
    tolerations = [toleration(x) for x in getattr(args, "toleration", [])]
    if tolerations:
        spec["tolerations"] = [*(spec.get("tolerations") or []), *tolerations]


def pod_manifest(args: argparse.Namespace, command: Sequence[str] = ()) -> dict[str, Any]:
    base: Mapping[str, Any] = (
        read_manifest(args.filename)
        if getattr(args, "filename", None)
        else {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "base"}]}}
    )
    pod = copy.deepcopy(dict(base))
    pod.setdefault("apiVersion", "v1")
    _main_container(args, pod, command)
    _metadata(args, pod)
    _scheduling(args, pod["spec"])
    return pod


def request_id(args: argparse.Namespace) -> str:
    rid = getattr(args, "request_id", None) or f"cli-{uuid.uuid4().hex}"
    if not REQUEST_ID_RE.match(rid):
        raise CommandError(f"--request-id {rid!r}: use 1..253 characters of letters, digits and ._:/@+=-")
    return rid


def spec_request(args: argparse.Namespace, command: Sequence[str] = ()) -> PodSpecRequest:
    detach = bool(getattr(args, "detach", False))
    grace = duration(getattr(args, "reattach_grace", None), "--reattach-grace")
    logs = getattr(args, "logs", None) or "main"
    try:
        return PodSpecRequest.build(
            request_id=request_id(args),
            pod=pod_manifest(args, command),
            cluster_selector=args.select or None,
            regions=args.region,
            clusters=args.cluster,
            cluster_tolerations=getattr(args, "cluster_toleration", []),
            preferences=[preference(p) for p in getattr(args, "prefer", [])],
            xcom=getattr(args, "xcom_mode", None) or "auto",
            xcom_sidecar_image=getattr(args, "xcom_sidecar_image", None) or "",
            logs=logs if logs in ("main", "all", "none") else [c.strip() for c in logs.split(",")],
            on_finish=OnFinishAction.KEEP_POD if getattr(args, "keep_pod", False) else OnFinishAction.DELETE_POD,
            placement_timeout=duration(getattr(args, "placement_timeout", None), "--placement-timeout"),
            startup_timeout=duration(getattr(args, "startup_timeout", None), "--startup-timeout"),
            reattach_grace=DETACHED_REATTACH_GRACE if detach and grace is None else grace,
        )
    except (TypeError, ValueError) as e:
        raise CommandError(str(e)) from None
