"""What a finished pod means for the task, and how stream events read in the task log (pure)."""

from __future__ import annotations

import logging

import pytest

from gateway.airflow.outcome import Verdict, describe, judge, pod_label
from gateway.client import types as t

LABEL = pod_label("eu", "default", "p-1")
WARN = t.KubernetesEvent(time=None, type="Warning", reason="BackOff", message="pulling image")


def result(phase: t.PodPhase, code: int, reason: str = "") -> t.PodResult:
    return t.PodResult(
        phase=phase,
        exit_code=code,
        reason=reason,
        containers=(t.ContainerResult(name="base", exit_code=code, reason=reason, message="oops" if code else ""),),
        warning_events=(WARN,),
    )


@pytest.mark.parametrize(
    ("res", "skip", "events", "verdict", "words", "absent"),
    [
        (result(t.PodPhase.SUCCEEDED, 0, "Completed"), (), True, Verdict.SUCCESS, [], []),
        (result(t.PodPhase.FAILED, 42, "Error"), (42,), True, Verdict.SKIP, ["exit code 42. Skipping."], []),
        (
            result(t.PodPhase.FAILED, 3, "Error"),
            (42,),
            True,
            Verdict.FAIL,
            ["pod default/p-1 on cluster eu", "exit code 3", "reason Error", "container base", "oops", "BackOff"],
            [],
        ),
        (result(t.PodPhase.FAILED, 137, "OOMKilled"), (), False, Verdict.FAIL, ["OOMKilled"], ["BackOff"]),
        (result(t.PodPhase.CANCELLED, -1), (), False, Verdict.FAIL, ["phase Cancelled", "exit code -1"], []),
    ],
    ids=["success", "skip", "fail-with-events", "fail-without-events", "cancelled"],
)
def test_judge(
    res: t.PodResult, skip: tuple[int, ...], events: bool, verdict: Verdict, words: list[str], absent: list[str]
) -> None:
    outcome = judge(res, skip, LABEL, events)
    assert outcome.verdict == verdict
    assert all(w in outcome.message for w in words), outcome.message
    assert not any(w in outcome.message for w in absent)


@pytest.mark.parametrize(
    ("event", "level", "message"),
    [
        (t.Log(cursor="c", time=None, container="base", text="hi"), logging.INFO, "[base] hi"),
        (
            t.Notice(cursor="c", time=None, event=WARN),
            logging.WARNING,
            "Pod Event: BackOff - pulling image",
        ),
        (
            t.Phase(cursor="c", time=None, phase=t.PodPhase.RUNNING),
            logging.INFO,
            "Pod phase Running",
        ),
        (
            t.Placed(cursor="c", time=None, decision=t.PlacementDecision(cluster="eu", region="eu-west-1", reason="r")),
            logging.INFO,
            "Placed on cluster eu (eu-west-1): r",
        ),
    ],
)
def test_describe(event: t.PodEvent, level: int, message: str) -> None:
    record = describe(event)
    assert record is not None and (record.level, record.message) == (level, message)


def test_describe_log_prefix_and_formatter() -> None:
    line = t.Log(cursor="c", time=None, container="side", text="x")
    assert describe(line, prefix=False).message == "x"  # type: ignore[union-attr]
    assert describe(line, formatter=lambda c, m: f"{c}>{m}").message == "side>x"  # type: ignore[union-attr]
    assert describe(t.Result(cursor="c", time=None, result=result(t.PodPhase.SUCCEEDED, 0))) is None


def test_an_xcom_too_big_for_the_termination_message_hints_at_sidecar_mode() -> None:
    res = t.PodResult(
        phase=t.PodPhase.FAILED, exit_code=0, reason="XComError", message="too big; use xcom mode sidecar"
    )
    assert "xcom_mode='sidecar'" in judge(res, (), LABEL, False).message
    other = t.PodResult(phase=t.PodPhase.FAILED, exit_code=0, reason="XComError", message="not valid JSON")
    assert "xcom_mode" not in judge(other, (), LABEL, False).message
