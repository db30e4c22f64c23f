"""Retries bounded by time, and health fed by every call: a connection that could not be made marks the
cluster down at once; anything else keeps the probe's hysteresis."""

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


def test_a_decisive_failure_marks_down_at_once_and_others_need_two() -> None:
    tracker = HealthTracker()
    tracker.observe(None)
    assert not tracker.observe(REFUSED)  # one failure of an undecided kind: hysteresis
    tracker.observe(None)
    assert tracker.observe(REFUSED, decisive=True)
    assert tracker.state is domain.ClusterHealth.UNREACHABLE
    tracker.observe(None)
    assert tracker.observe(None) and tracker.state is domain.ClusterHealth.HEALTHY
