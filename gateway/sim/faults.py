"""Faults of one simulated cluster, switchable at run time, and the log of the requests it served.

`Faults` is plain state the API server consults on every request (latency, error rate, lost answers)
plus the request log and counters per (verb, resource) that benchmarks read to count API calls. A
request is recorded when it ends: an open watch, log stream or exec session is counted once it closes.
Outages, dropped watches and node failures act on the running server and store: see `SimCluster`.

Two faults model a network that drops packets without FIN or RST (a NAT or load balancer forgetting a
flow, a node's link going away): `blackhole` (a new request is accepted, then never answered) and
silenced log streams (every log stream open at that moment sends nothing more, ever). Only a client's
read deadline or TCP keepalive gets it out; the kernel still ACKs, so keepalive alone cannot.

A lost answer is the fault a client cannot tell from an outage, and the one that makes creates risky:
the server carries the request out (a create is stored), then the connection is dropped before a byte
of the answer is sent. The client sees the connection reset after sending, and must find out itself
whether its request was applied.

Throttling, as a kube-apiserver under a burst answers it: `max_in_flight` is its --max-requests-inflight (at most
that many short requests served at once, watches, logs and exec being long-running and not counted; one more is
answered 429 with Retry-After at once), and `throttle_requests` answers the next requests of one kind 429. The
peak of concurrent requests per (verb, resource) is kept, so that benchmarks and tests can see a client's burst.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from gateway.sim.errors import InternalError, Invalid, SimError, TooManyRequests

REQUEST_LOG_SIZE = 10_000
LONG_RUNNING_SUBRESOURCES = frozenset({"log", "exec", "attach", "portforward", "proxy"})  # kube-apiserver: not counted


@dataclass(frozen=True)
class RequestRecord:
    verb: str
    resource: str
    namespace: str
    name: str
    user: str
    code: int
    path: str


@dataclass
class Faults:
    """Mutable by design: tests and the control endpoint flip these while the cluster runs."""

    latency: float = 0.0  # seconds added before every API request
    error_rate: float = 0.0  # fraction of API requests answered with `error_code`
    error_code: int = 429  # 429 (with Retry-After) or 500
    retry_after: int = 1
    outage: bool = False  # the listener is closed: connection refused
    blackhole: bool = False  # new requests are accepted, then never answered
    log_silences: int = 0  # how many times open log streams were silenced (see `LogSilence`)
    log_tail_cuts: int = 0  # followed logs still to end early, cleanly, without their tail (`take_log_tail_cut`)
    watch_lag: float = 0.0  # seconds every watch's events are written late, in order (`listing.LaggingStream`)
    # When set, every pod create answers 422 Invalid with this message: an API server rule (or admission
    # webhook) that the gateway's own validation does not know, e.g. a cluster's policy.
    refuse_pods: str = ""
    rng: random.Random = field(default_factory=random.Random, repr=False)
    lost_answers: Counter[tuple[str, str]] = field(default_factory=Counter)  # (verb, resource) -> answers to lose
    # (verb, resource) -> requests still to answer 500: a run of server errors for one kind of request, as an
    # admission webhook timing out or etcd electing a leader gives, while every other request is served.
    failed_requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    # (verb, resource) -> requests still to answer 429 with Retry-After: `retry_after` (an APF rejection of one flow).
    throttled_requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    max_in_flight: int = 0  # short requests served at once at most (0: no limit); one more is answered 429
    stalled_handshakes: int = 0  # the next connections accepted whose TLS handshake never starts (handshakes.py)
    in_flight: Counter[tuple[str, str]] = field(default_factory=Counter)  # (verb, resource) -> being served now
    peak_in_flight: Counter[tuple[str, str]] = field(default_factory=Counter)  # the most served at once since reset
    short_in_flight: int = 0  # short requests (not watches, logs, exec) being served now
    peak_short_in_flight: int = 0
    answered_429: int = 0  # throttled answers since reset, for any reason
    counters: Counter[tuple[str, str]] = field(default_factory=Counter)
    log: deque[RequestRecord] = field(default_factory=lambda: deque(maxlen=REQUEST_LOG_SIZE))

    def injected_error(self) -> SimError | None:
        """The error to answer this request with, if the error rate picks it."""
        if self.error_rate <= 0 or self.rng.random() >= self.error_rate:
            return None
        if self.error_code == 429:
            return self._too_many()
        return InternalError('an error on the server ("injected fault") has prevented the request from succeeding')

    def lose_answers(self, verb: str, resource: str, count: int = 1) -> None:
        """The next `count` requests `verb` on `resource` (e.g. "create", "pods") are carried out, then their
        connection is dropped before the answer. Adds to any already pending; count 0 clears them."""
        _add(self.lost_answers, "a lost answer", verb, resource, count)

    def take_lost_answer(self, verb: str, resource: str) -> bool:
        """True when this request's answer is to be lost (one fewer left)."""
        if self.lost_answers[(verb, resource)] <= 0:
            self.lost_answers.pop((verb, resource), None)
            return False
        self.lost_answers[(verb, resource)] -= 1
        return True

    def fail_requests(self, verb: str, resource: str, count: int = 1) -> None:
        """The next `count` requests `verb` on `resource` (e.g. "delete", "pods") are answered 500, not carried
        out. Adds to any already pending; count 0 clears them."""
        _add(self.failed_requests, "a failed request", verb, resource, count)

    def failed_request(self, verb: str, resource: str) -> SimError | None:
        """The 500 this request is answered with when `fail_requests` asked for it (one fewer left)."""
        if self.failed_requests.get((verb, resource), 0) <= 0:
            return None
        self.failed_requests[(verb, resource)] -= 1
        return InternalError(f'an error on the server ("injected fault: {verb} {resource}") has prevented the request')

    def throttle_requests(self, verb: str, resource: str, count: int = 1) -> None:
        """The next `count` requests `verb` on `resource` (e.g. "list", "events") are answered 429 with Retry-After
        `retry_after`, not carried out. Adds to any already pending; count 0 clears them."""
        _add(self.throttled_requests, "a throttled request", verb, resource, count)

    def throttled_request(self, verb: str, resource: str) -> SimError | None:
        """The 429 this request is answered with when `throttle_requests` asked for it (one fewer left)."""
        if self.throttled_requests.get((verb, resource), 0) <= 0:
            return None
        self.throttled_requests[(verb, resource)] -= 1
        return self._too_many()

    def stall_handshakes(self, count: int = 1) -> None:
        """The next `count` connections accepted get no TLS handshake: the client's connect times out (an API
        server too busy to answer a ClientHello). Adds to any already pending; count 0 clears them."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count!r}")
        self.stalled_handshakes = self.stalled_handshakes + count if count else 0

    def take_stalled_handshake(self) -> bool:
        """True when the connection accepted now is to get no handshake (one fewer left)."""
        if self.stalled_handshakes <= 0:
            return False
        self.stalled_handshakes -= 1
        return True

    def _too_many(self) -> TooManyRequests:
        return TooManyRequests(
            "the server has received too many requests and has asked us to try again later",
            retry_after=self.retry_after,
        )

    @contextlib.contextmanager
    def serving(self, verb: str, resource: str, subresource: str) -> Iterator[SimError | None]:
        """Counts one request from its arrival to its answer (the peak per kind kept), and gives the 429 to
        answer it with instead when it is short and `max_in_flight` are being served (then it is not counted),
        as the kube-apiserver's max-in-flight filter does."""
        short = verb != "watch" and subresource not in LONG_RUNNING_SUBRESOURCES
        if short and self.max_in_flight and self.short_in_flight >= self.max_in_flight:
            yield self._too_many()
            return
        key = (verb, resource)
        self.in_flight[key] += 1
        self.peak_in_flight[key] = max(self.peak_in_flight[key], self.in_flight[key])
        if short:
            self.short_in_flight += 1
            self.peak_short_in_flight = max(self.peak_short_in_flight, self.short_in_flight)
        try:
            yield None
        finally:
            self.in_flight[key] -= 1
            if short:
                self.short_in_flight -= 1

    def refused_create(self, verb: str, resource: str, subresource: str) -> SimError | None:
        if not self.refuse_pods or (verb, resource, subresource) != ("create", "pods", ""):
            return None
        return Invalid("Pod", "", [("FieldValueForbidden", "spec", f"Forbidden: {self.refuse_pods}")])

    def take_log_tail_cut(self) -> bool:
        """Whether a follow stream opened now, while its container runs, ends without its tail: once its container
        has ended it ends cleanly (a normal end of the answer) without the last chunk it had to send. A client
        sees this when the API server's connection to the kubelet breaks while the tail is on its way (the API
        server copies the kubelet's answer into its own and ends its own normally when the copy fails), and
        from kubelets that check whether the container runs after their last read without reading again."""
        if self.log_tail_cuts <= 0:
            return False
        self.log_tail_cuts -= 1
        return True

    def record(self, record: RequestRecord) -> None:
        self.counters[(record.verb, record.resource)] += 1
        self.answered_429 += record.code == 429
        self.log.append(record)

    def count(self, verb: str | None = None, resource: str | None = None) -> int:
        return sum(n for (v, r), n in self.counters.items() if verb in (None, v) and resource in (None, r))

    def peak(self, verb: str, resource: str) -> int:
        """The most requests `verb resource` served at once since the counters were reset."""
        return self.peak_in_flight[(verb, resource)]

    def reset_counters(self) -> None:
        """Counts and peaks start again (a peak from what is being served now)."""
        self.counters.clear()
        self.log.clear()
        self.peak_in_flight = Counter({key: n for key, n in self.in_flight.items() if n > 0})
        self.peak_short_in_flight = self.short_in_flight
        self.answered_429 = 0

    def settings(self) -> dict[str, Any]:
        return {
            "latency": self.latency,
            "errorRate": self.error_rate,
            "errorCode": self.error_code,
            "retryAfter": self.retry_after,
            "maxInFlight": self.max_in_flight,
            "outage": self.outage,
            "blackhole": self.blackhole,
            "lostAnswers": [
                {"verb": v, "resource": r, "count": n} for (v, r), n in sorted(self.lost_answers.items()) if n > 0
            ],
        }

    def snapshot(self) -> dict[str, Any]:
        """Counters and the recent request log as JSON-friendly data (for the control endpoint)."""
        return {
            "counters": [{"verb": v, "resource": r, "count": n} for (v, r), n in sorted(self.counters.items())],
            "peaks": [{"verb": v, "resource": r, "peak": n} for (v, r), n in sorted(self.peak_in_flight.items()) if n],
            "inFlight": [{"verb": v, "resource": r, "count": n} for (v, r), n in sorted(self.in_flight.items()) if n],
            "peakShortInFlight": self.peak_short_in_flight,
            "answered429": self.answered_429,
            "log": [asdict(r) for r in list(self.log)[-200:]],
        }

    def configure(self, **settings: Any) -> None:
        """Sets latency / error_rate / error_code / retry_after / max_in_flight / refuse_pods, checking values (ValueError when wrong)."""
        for key, value in settings.items():
            if key == "latency":
                self.latency = _non_negative(key, value)
            elif key == "error_rate":
                rate = float(value)
                if not 0 <= rate <= 1:
                    raise ValueError(f"error_rate must be within [0, 1], got {value!r}")
                self.error_rate = rate
            elif key == "error_code":
                if int(value) not in (429, 500):
                    raise ValueError(f"error_code must be 429 or 500, got {value!r}")
                self.error_code = int(value)
            elif key == "retry_after":
                self.retry_after = int(_non_negative(key, value))
            elif key == "max_in_flight":
                self.max_in_flight = int(_non_negative(key, value))
            elif key == "refuse_pods":
                self.refuse_pods = str(value)
            else:
                raise ValueError(f"unknown fault setting {key!r}: latency, error_rate, error_code, retry_after, max_in_flight, "
                                 "refuse_pods")


def _add(pending: Counter[tuple[str, str]], what: str, verb: str, resource: str, count: int) -> None:
    """`count` more of a counted fault for `verb resource`; count 0 clears them."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count!r}")
    if not verb or not resource:
        raise ValueError(f"{what} needs a verb and a resource, e.g. delete pods")
    if count == 0:
        pending.pop((verb, resource), None)
    else:
        pending[(verb, resource)] += count


async def hang() -> None:
    """Never returns: the request's connection stays open and silent until the client gives up
    (the server cancels the handler when the client closes the connection)."""
    await asyncio.Event().wait()


class LogSilence:
    """One log stream's view of `Faults.log_silences`: once the counter moves past the value it had
    when the stream opened, the stream goes silent for good, like a connection dropped on the way."""

    def __init__(self, faults: Faults) -> None:
        self._faults = faults
        self._opened_at = faults.log_silences

    async def check(self) -> None:
        """Returns at once, or never."""
        if self._faults.log_silences != self._opened_at:
            await hang()


def _non_negative(key: str, value: Any) -> float:
    number = float(value)
    if number < 0:
        raise ValueError(f"{key} must be >= 0, got {value!r}")
    return number
