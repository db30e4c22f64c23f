"""When a followed log is read once more after its stream ends (the completeness check), and what that read
recovers: one stream for a container that had ended before its log was opened; a second read, from the last
line's second, after a stream that ended cleanly while the container ran or early after it ended
(docs/decisions/0033-log-completeness-check.md). The end-to-end case over the simulator is
tests/e2e/test_faults.py::test_a_followed_log_that_ends_cleanly_without_its_tail_after_the_container_ended_loses_no_line.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from gateway.pods.logs import END_UNSEEN_SECONDS, LogFollower

LOG = [f"2026-12-05T10:00:0{i // 2}.{i % 2}00000000Z line {i}" for i in range(8)]


@dataclass
class Kubelet:
    """A container's whole log, and how each follow stream opened on it ends: after `cut_after[n]` lines for
    the n-th stream (cleanly, as an API server's answer ends when its kubelet connection breaks), else at the
    end of the log. `done` is what the pod's watch shows; `ends_at` makes it show the end once a stream has
    sent that many lines."""

    cut_after: list[int | None]
    done: bool = False
    ends_at: int | None = None
    opened: list[datetime | None] = field(default_factory=list)

    async def stream_logs(
        self, namespace: str, pod: str, container: str, *, follow: bool, timestamps: bool, since_time: datetime | None
    ) -> AsyncIterator[str]:
        assert follow and timestamps
        cut = self.cut_after[len(self.opened)] if len(self.opened) < len(self.cut_after) else None
        self.opened.append(since_time)
        since = [raw for raw in LOG if since_time is None or _time(raw) >= since_time]
        for sent, raw in enumerate(since[:cut] if cut is not None else since, start=1):
            if self.ends_at is not None and sent >= self.ends_at:
                self.done = True
            yield raw

    async def wait_change(self, within: float) -> None:
        self.done = True  # the pod's next change: its container ended


def _time(raw: str) -> datetime:
    return datetime.fromisoformat(raw.split(" ")[0].replace("Z", "+00:00"))


@dataclass
class LaggingWatch(Kubelet):
    """The pod's watch shows the container's end only `lag` seconds (of a clock of its own) after the first
    stream opened; until then it wakes the follower at each of its other changes, every `every` seconds (its
    events, another container), or not at all. Each stream's opening time is kept in `opened_at`."""

    lag: float = 1.5
    every: float | None = None
    now: float = 0.0
    opened_at: list[float] = field(default_factory=list)

    async def stream_logs(
        self, namespace: str, pod: str, container: str, *, follow: bool, timestamps: bool, since_time: datetime | None
    ) -> AsyncIterator[str]:
        self.opened_at.append(self.now)
        async for raw in super().stream_logs(
            namespace, pod, container, follow=follow, timestamps=timestamps, since_time=since_time
        ):
            yield raw

    async def wait_change(self, within: float) -> None:
        """Returns at the watch's next change or after `within`, the clock moved on to that moment."""
        wakes = [self.now + within, max(self.lag, self.now)]
        if self.every is not None:
            wakes.append(self.now + self.every)
        self.now = min(wakes)
        self.done = self.done or self.now >= self.lag

    def clock(self) -> float:
        return self.now


async def read_all(kubelet: Kubelet) -> list[str]:
    follower = LogFollower(
        source=kubelet, namespace="default", pod="p", container="main", container_done=lambda: kubelet.done,
        wait_change=kubelet.wait_change,
    )  # fmt: skip
    if isinstance(kubelet, LaggingWatch):
        follower.clock = kubelet.clock
    return [line.text async for line in follower.lines()]


async def test_a_container_ended_before_its_log_is_opened_is_read_with_one_stream() -> None:
    kubelet = Kubelet(cut_after=[], done=True)
    assert await read_all(kubelet) == [f"line {i}" for i in range(8)]
    assert kubelet.opened == [None]


@pytest.mark.parametrize("cut", range(8))
async def test_a_stream_ending_early_while_the_container_runs_is_read_again_once_it_ended(cut: int) -> None:
    kubelet = Kubelet(cut_after=[cut])
    assert await read_all(kubelet) == [f"line {i}" for i in range(8)]
    assert len(kubelet.opened) == 2


@pytest.mark.parametrize("cut", range(1, 8))
async def test_a_stream_ending_early_after_the_watch_showed_the_end_is_read_again(cut: int) -> None:
    """The stream ends cleanly after the container was seen to end, without its tail: not proof of the end."""
    kubelet = Kubelet(cut_after=[cut], ends_at=1)
    assert await read_all(kubelet) == [f"line {i}" for i in range(8)]
    last_second = _time(LOG[cut - 1]).replace(microsecond=0)
    assert kubelet.opened == [None, last_second], "read again from the second of the last line seen"


async def test_a_whole_stream_is_still_checked_once_the_container_ended() -> None:
    kubelet = Kubelet(cut_after=[None], ends_at=8)
    assert await read_all(kubelet) == [f"line {i}" for i in range(8)]
    assert kubelet.opened == [None, datetime(2026, 12, 5, 10, 0, 3, tzinfo=UTC)]


@pytest.mark.parametrize("every", [None, 0.3])
@pytest.mark.parametrize("lag", [0.5, 1.5, 4.0])
async def test_a_stream_that_ends_before_the_watch_shows_the_end_is_read_once_more_only(
    lag: float, every: float | None
) -> None:
    """The container's whole log comes and its stream ends at its exit; the watch shows the exit `lag` s later
    (a busy API server or gateway, the kubelet's status sync), waking the follower meanwhile with other changes
    or not at all. The check waits for that end instead of a stream reopened before it (which ended at once and
    was followed by the check anyway: 2.64 reads a pod instead of 2.00 in bench/dispatch.py throughput at load 8)."""
    kubelet = LaggingWatch(cut_after=[None], lag=lag, every=every)
    assert await read_all(kubelet) == [f"line {i}" for i in range(8)]
    assert kubelet.opened_at == [0.0, lag], "the check once the watch shows the end, and no read before it"
    assert kubelet.opened == [None, datetime(2026, 12, 5, 10, 0, 3, tzinfo=UTC)]


@pytest.mark.parametrize("cut", range(8))
async def test_a_stream_cut_cleanly_while_the_watch_shows_the_container_running_resumes_after_a_bound(cut: int) -> None:
    """A clean end of a running container's stream (its API server's kubelet connection broken): nothing says
    it runs on but the watch, which shows no end, so the follower reads again after END_UNSEEN_SECONDS, then
    once more after the end, and loses and repeats no line."""
    lag = END_UNSEEN_SECONDS + 2.0
    kubelet = LaggingWatch(cut_after=[cut], lag=lag, every=0.3)
    assert await read_all(kubelet) == [f"line {i}" for i in range(8)]
    assert kubelet.opened_at == [0.0, END_UNSEEN_SECONDS, lag]
