"""Running out of descriptors is told apart from a cluster being unreachable, and never counts against it."""

from __future__ import annotations

import contextlib
import errno
import os
import resource

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey

from gateway import domain
from gateway.clusters.kubeapi import errors as kube
from gateway.clusters.runtime import HealthTracker
from gateway.observability.descriptors import Gauge, Limit, is_exhaustion

KEY = ConnectionKey("h", 443, True, None, None, None, None)


def chained(outer: BaseException, inner: BaseException) -> BaseException:
    outer.__cause__ = inner
    return outer


@pytest.mark.parametrize(
    ("error", "exhausted"),
    [
        (OSError(errno.EMFILE, "Too many open files"), True),
        (OSError(errno.ENFILE, "File table overflow"), True),
        (aiohttp.ClientConnectorError(KEY, OSError(errno.EMFILE, "Too many open files")), True),
        (chained(RuntimeError("wrapped"), OSError(errno.EMFILE, "x")), True),
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), False),
        (aiohttp.ClientConnectorError(KEY, ConnectionRefusedError(errno.ECONNREFUSED, "refused")), False),
        (TimeoutError(), False),
    ],
    ids=["emfile", "enfile", "aiohttp-emfile", "chained", "refused", "aiohttp-refused", "timeout"],
)
def test_exhaustion_is_recognised_wherever_it_is_wrapped(error: BaseException, exhausted: bool) -> None:
    assert is_exhaustion(error) is exhausted
    made = kube.unreachable("c1", "GET /version", error)
    assert isinstance(made, kube.GatewayExhausted) is exhausted
    assert isinstance(made, kube.ApiUnreachable) is not exhausted


def test_the_gateways_own_exhaustion_never_marks_a_cluster_unreachable() -> None:
    tracker = HealthTracker()
    assert tracker.observe(None)
    exhausted = kube.unreachable("c1", "GET /version", OSError(errno.EMFILE, "Too many open files"))
    for _ in range(10):
        assert not tracker.observe(exhausted)
    assert tracker.state is domain.ClusterHealth.HEALTHY


@pytest.mark.parametrize(("soft", "reserve"), [(160, 32), (1024, 64), (65536, 4096)])
def test_the_reserve_grows_with_the_limit(soft: int, reserve: int) -> None:
    limit = Limit(before=soft, soft=soft, hard=soft)
    assert limit.reserve == reserve
    assert f"about {soft - reserve} followed pods" in limit.describe()


def test_admitted_pods_promise_a_connection_each_on_http1_and_a_share_of_one_on_http2() -> None:
    """Pods admitted but not yet following their logs are counted at what their logs will hold: a connection
    (and slack) each over HTTP/1.1, a hundredth of one (and slack for their XCom exec) over HTTP/2."""
    gauge = Gauge()
    gauge.baseline = 0
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    usable = soft - Limit(before=soft, soft=soft, hard=soft).reserve
    assert gauge.short(usable // 2 + 1) is not None
    assert gauge.short(usable // 2 + 1, http2=True) is None
    assert gauge.short(5 * usable, http2=True) is None
    assert gauge.short(10 * usable, http2=True) == (usable, soft)


def test_descriptors_are_counted_less_often_far_from_the_limit() -> None:
    """Counting lists /proc/self/fd (a microsecond a descriptor), asked at every submission."""
    now = [0.0]
    gauge = Gauge(every=0.1, clock=lambda: now[0])
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert gauge.short() is None and gauge.open is not None and 2 * gauge.open < soft  # far from the limit
    before = gauge.open
    with contextlib.ExitStack() as held:
        for _ in range(5):
            held.enter_context(open(os.devnull))
        now[0] = 0.5  # past `every`, not past ten times it
        gauge.short()
        assert gauge.open == before
        now[0] = 1.0
        gauge.short()
        assert gauge.open == before + 5
