"""What checking a Pod manifest against the Kubernetes schema costs: our compiled walk against jsonschema.

Usage: .venv/bin/python bench/pod_schema.py [--rounds R]
Times (best of R) `pod_schema.walk` with the API server's rules and `jsonschema`'s Draft 2020-12 validator
on the same strict Pod schema from kubernetes-validate, for a small pod, a legal 520 KB pod (64 containers of
256 env vars, the input limits' maximum), a pod with 100,000 args and one with 100,000 invalid tolerations
(all errors listed). The facts behind docs/decisions/0008. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

import jsonschema  # type: ignore[import-untyped]
from referencing import Registry, Resource

from gateway.pods import pod_rules, pod_schema

SMALL: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "x"},
    "spec": {"containers": [{"name": "main", "image": "python:3.12", "command": ["python", "-c", "pass"]}]},
}


def cases() -> dict[str, dict[str, Any]]:
    env = copy.deepcopy(SMALL)
    env["spec"]["containers"] = [
        {"name": f"c{i}", "image": "x", "env": [{"name": f"E{j}", "value": "v"} for j in range(256)]} for i in range(64)
    ]
    args = copy.deepcopy(SMALL)
    args["spec"]["containers"][0]["args"] = ["x" * 8] * 100_000
    bad = copy.deepcopy(SMALL)
    bad["spec"]["tolerations"] = [5] * 100_000
    return {"small pod": SMALL, "64 containers x 256 env (520 KB)": env, "100,000 args": args,
            "100,000 bad tolerations": bad}  # fmt: skip


def reference() -> Any:
    base = resources.files("kubernetes_validate").joinpath(f"kubernetes-json-schema/{pod_schema.SCHEMA_SET}")
    definitions = Resource.from_contents(json.loads(base.joinpath("_definitions.json").read_text()))
    schema = json.loads(base.joinpath("pod-v1.json").read_text())
    registry = Resource.from_contents(schema) @ (definitions @ Registry())
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def best(rounds: int, run: Callable[[], int]) -> tuple[float, int]:
    times, found = [], 0
    for _ in range(rounds):
        started = time.perf_counter()
        found = run()
        times.append(time.perf_counter() - started)
    return min(times), found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    root, validator = pod_schema.pod_root(), reference()
    print(f"{'manifest':36} {'ours':>12} {'jsonschema':>12} {'ratio':>7}")
    for name, pod in cases().items():
        ours, n_ours = best(rounds, lambda pod=pod: len(pod_schema.walk(pod, root, pod_rules.RULES)))
        theirs, n_theirs = best(rounds, lambda pod=pod: sum(1 for _ in validator.iter_errors(pod)))
        print(f"{name:36} {ours * 1e3:9.2f} ms {theirs * 1e3:9.2f} ms {theirs / ours:6.1f}x"
              f"   problems: ours {n_ours} (capped at {pod_schema.MAX_PROBLEMS}), jsonschema {n_theirs}")  # fmt: skip


if __name__ == "__main__":
    main()
