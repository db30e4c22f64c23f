"""What a finished pod means for the task, and how stream events read in a task log. Pure: no Airflow."""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass

from gateway.client import types as t

LogFormatter = Callable[[str, str], str]


class Verdict(enum.Enum):
    SUCCESS = "success"
    SKIP = "skip"
    FAIL = "fail"


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    message: str = ""


def pod_label(cluster: str, namespace: str, name: str) -> str:
    where = f" on cluster {cluster}" if cluster else ""
    return f"pod {namespace}/{name}{where}" if name else f"the pod{where}"


def judge(result: t.PodResult, skip_codes: Collection[int], label: str, with_events: bool) -> Outcome:
    """Succeeded -> success; an exit code listed in skip_on_exit_code -> skip; anything else -> fail, with the
    exit code, the reason and (when asked) the warning events in the message."""
    if result.phase == t.PodPhase.SUCCEEDED:
        return Outcome(Verdict.SUCCESS)
    if result.exit_code in skip_codes:
        return Outcome(Verdict.SKIP, f"{label} returned exit code {result.exit_code}. Skipping.")
    lines = [
        f"{label} returned a failure: phase {result.phase}, exit code {result.exit_code}, reason {result.reason or '-'}"
    ]
    if result.message:
        lines.append(f"message: {result.message}")
    if result.reason == "XComError" and "sidecar" in result.message:
        lines.append("hint: GatewayPodOperator(..., xcom_mode='sidecar') returns results of any size")
    lines.extend(
        f"container {c.name}: exit code {c.exit_code}, reason {c.reason or '-'}"
        + (f": {c.message}" if c.message else "")
        for c in result.containers
    )
    if with_events:
        lines.extend(f"event: {e.type} {e.reason}: {e.message}" for e in result.warning_events)
    return Outcome(Verdict.FAIL, "\n".join(lines))


@dataclass(frozen=True)
class LogRecord:
    level: int
    message: str


def describe(event: t.PodEvent, *, prefix: bool = True, formatter: LogFormatter | None = None) -> LogRecord | None:
    """How one stream event reads in the task log; None for the Result (the operator reports it itself).
    Log lines read "[container] text", as KubernetesPodOperator writes them."""
    if isinstance(event, t.Log):
        if formatter is not None:
            return LogRecord(logging.INFO, formatter(event.container, event.text))
        return LogRecord(logging.INFO, f"[{event.container}] {event.text}" if prefix else event.text)
    if isinstance(event, t.Placed):
        d = event.decision
        return LogRecord(logging.INFO, f"Placed on cluster {d.cluster} ({d.region}): {d.reason}")
    if isinstance(event, t.Phase):
        detail = ": ".join(x for x in (event.reason, event.message) if x)
        return LogRecord(logging.INFO, f"Pod phase {event.phase}" + (f" ({detail})" if detail else ""))
    if isinstance(event, t.Notice):
        e = event.event
        level = logging.WARNING if e.type == "Warning" else logging.INFO
        return LogRecord(level, f"Pod Event: {e.reason} - {e.message}")
    return None
