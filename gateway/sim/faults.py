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
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import Any

from gateway.sim.errors import InternalError, Invalid, SimError, TooManyRequests

REQUEST_LOG_SIZE = 10_000


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
    counters: Counter[tuple[str, str]] = field(default_factory=Counter)
    log: deque[RequestRecord] = field(default_factory=lambda: deque(maxlen=REQUEST_LOG_SIZE))

    def injected_error(self) -> SimError | None:
        """The error to answer this request with, if the error rate picks it."""
        if self.error_rate <= 0 or self.rng.random() >= self.error_rate:
            return None
        if self.error_code == 429:
            return TooManyRequests(
                "the server has received too many requests and has asked us to try again later",
                retry_after=self.retry_after,
            )
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
        self.log.append(record)

    def count(self, verb: str | None = None, resource: str | None = None) -> int:
        return sum(n for (v, r), n in self.counters.items() if verb in (None, v) and resource in (None, r))

    def reset_counters(self) -> None:
        self.counters.clear()
        self.log.clear()

    def settings(self) -> dict[str, Any]:
        return {
            "latency": self.latency,
            "errorRate": self.error_rate,
            "errorCode": self.error_code,
            "retryAfter": self.retry_after,
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
            "log": [asdict(r) for r in list(self.log)[-200:]],
        }

    def configure(self, **settings: Any) -> None:
        """Sets latency / error_rate / error_code / retry_after / refuse_pods, checking values (ValueError when wrong)."""
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
            elif key == "refuse_pods":
                self.refuse_pods = str(value)
            else:
                raise ValueError(f"unknown fault setting {key!r}: latency, error_rate, error_code, retry_after, refuse_pods")


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
