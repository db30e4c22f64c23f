"""Retries bounded by time, and health fed by every call: two connection attempts failed in a row mark the cluster
down, however many calls waited on each; anything else keeps the probe's hysteresis."""

from __future__ import annotations

import pytest

from gateway import domain
from gateway.clusters.kubeapi import errors as kube
from gateway.clusters.kubeapi.retry import DEFAULT_RETRY, decide
from gateway.clusters.runtime import HealthTracker

REFUSED = kube.ApiUnreachable("refused", cluster="c1")


@pytest.mark.parametrize(
    ("error", "elapsed", "retried"),
    [
        (REFUSED, 0.0, True),
        (REFUSED, DEFAULT_RETRY.budget - 0.1, False),  # the wait (0.2 s) would end past the budget
        (kube.ServerError("boom", status=500), DEFAULT_RETRY.budget + 1, False),
        (kube.TooManyRequests("slow down", status=429, retry_after=3), DEFAULT_RETRY.budget + 1, True),
    ],
    ids=["early", "late-unreachable", "late-5xx", "late-429-server-chose"],
)
def test_retries_are_bounded_by_time(error: kube.KubeError, elapsed: float, retried: bool) -> None:
    assert decide(DEFAULT_RETRY, error, 1, draw=1.0, elapsed=elapsed).retry is retried


# Each step: (what happened, the failed attempt's start or None for a success, the time it was seen).
Step = tuple[str, float | None, float]


@pytest.mark.parametrize(
    ("steps", "down"),
    [
        ([("fail", 0.0, 5.0)], False),  # one connection attempt timed out: no verdict
        ([("fail", 0.0, 5.0)] + [("fail", 0.1 * i, 5.0) for i in range(1, 50)], False),  # 50 waiters of that attempt
        ([("fail", 0.0, 5.0), ("fail", 5.1, 10.1)], True),  # a fresh attempt after it failed too
        ([("fail", 0.0, 0.001), ("fail", 0.05, 0.051)], True),  # refused twice in a row: down within a backoff
        ([("fail", 0.0, 5.0), ("ok", None, 5.5), ("fail", 5.2, 10.2)], False),  # an answer between: not in a row
        ([("fail", 0.0, 5.0), ("fail", 4.9, 5.0), ("fail", 5.0, 10.0)], True),  # begun as the first was seen: new
    ],
    ids=["one-timeout", "one-attempt-many-waiters", "two-attempts", "refused-twice", "answer-between", "boundary"],
)
def test_failed_attempts_count_once_for_all_who_waited_on_them_and_two_in_a_row_mark_down(
    steps: list[Step], down: bool
) -> None:
    tracker = HealthTracker()
    tracker.observe(None, now=-1.0)
    for what, started, seen in steps:
        tracker.observe(None if what == "ok" else REFUSED, started=started, now=seen)
    assert (tracker.state is domain.ClusterHealth.UNREACHABLE) is down


def test_a_down_cluster_comes_back_after_two_answers_and_an_unknown_one_is_judged_at_its_first_result() -> None:
    tracker = HealthTracker()
    assert tracker.observe(REFUSED, started=0.0, now=1.0)  # never reached yet: the first failure decides
    assert tracker.state is domain.ClusterHealth.UNREACHABLE
    assert not tracker.observe(None, now=2.0)
    assert tracker.observe(None, now=3.0) and tracker.state is domain.ClusterHealth.HEALTHY
    assert not tracker.observe(REFUSED, started=3.5, now=4.0)  # healthy again: one failure is no verdict
