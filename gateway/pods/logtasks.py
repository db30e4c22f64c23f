"""The log followers of one followed pod: a task per container, started once the container has started,
drained at the end. Lines go to the journal, clipped to the input limits.

Positions outlive the tasks: following again through a replaced cluster runtime resumes each log where
it stood, losing and repeating no line.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass, field, replace

from gateway import domain
from gateway.clusters.tracking import PodTrack
from gateway.observability import metrics
from gateway.pods.cluster import PodCluster
from gateway.pods.journal import Journal
from gateway.pods.logs import LogFollower, LogPosition
from gateway.policy.limits import clip_log_line
from gateway.settings.live import LiveSettings

LOG_DRAIN_SECONDS = 30.0


def log_containers(request: domain.PodRequest) -> list[str]:
    """The containers whose logs the request asked for; the main (first) container first."""
    spec = request.pod.get("spec", {})
    main = [c["name"] for c in spec.get("containers", [])[:1]]
    selection = request.log_selection
    if selection is domain.LogSelection.NONE:
        return []
    if selection is domain.LogSelection.NAMED:
        return list(request.log_containers)
    if selection is domain.LogSelection.ALL:
        return [c["name"] for c in (*spec.get("initContainers", []), *spec.get("containers", []))]
    return main


@dataclass(slots=True)
class LogTasks:
    """One pod's log tasks on one cluster. `stop()` when following ends, whatever the way."""

    record: domain.PodRecord
    cluster: PodCluster
    track: PodTrack
    journal: Journal
    settings: LiveSettings  # read per line: a reload of the limits reaches running pods
    positions: dict[str, LogPosition]
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    released: bool = field(default=False, init=False)
    _gate: asyncio.Event | None = field(default=None, init=False)  # made only if a line comes before the release
    _wanted: list[str] | None = field(default=None, init=False)  # log_containers, read from the manifest once

    def wanted(self) -> list[str]:
        """The containers whose logs the request asked for, the main one first (`log_containers`): read at the
        first look, not at each (the request does not change while its pod is followed)."""
        if self._wanted is None:
            self._wanted = log_containers(self.record.request)
        return self._wanted

    def start(self) -> None:
        """Starts a follower for each wanted container that has started and has none yet."""
        for container in self.wanted():
            if container in self.tasks or not self.track.container_started(container):
                continue
            follower = LogFollower(
                source=self.cluster,
                namespace=self.record.namespace,
                pod=self.record.name,
                container=container,
                container_done=functools.partial(self.track.container_done, container),
                wait_change=self.track.wait_next,
                position=self.positions.setdefault(container, LogPosition()),
            )
            self.tasks[container] = asyncio.create_task(self._pump(follower))

    def release(self) -> None:
        """Lines may be journalled from now on: the phase that started their containers is journalled before them."""
        self.released = True
        if self._gate is not None:  # its waiters hold it; dropped here, not kept for the pod's life (0.6 KiB)
            self._gate.set()
            self._gate = None

    async def drain(self, containers: list[str] | None = None) -> None:
        """Waits (at most LOG_DRAIN_SECONDS) for the logs of `containers` (default: all) to be read to their end.
        Logs read to their end already are not waited on: `asyncio.wait` costs a future, a timer and a turn of
        the loop even then, and the second drain of a pod (all its logs, after the main one's) mostly finds them so."""
        tasks = [task for name, task in self.tasks.items() if (containers is None or name in containers) and not task.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=LOG_DRAIN_SECONDS)

    async def stop(self) -> None:
        """Cancels the followers still reading and waits for them to end; an ended one's error is taken (logged by
        its task otherwise) without a `gather` and its turn of the loop, as `gather(return_exceptions=True)` would."""
        running = [task for task in self.tasks.values() if not task.done()]
        for task in self.tasks.values():
            if task.done() and not task.cancelled():
                task.exception()
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)

    async def _pump(self, follower: LogFollower) -> None:
        request_id = self.record.request.request_id
        async for line in follower.lines():
            if not self.released:
                self._gate = self._gate or asyncio.Event()
                await self._gate.wait()
            limits = self.settings.current.limits
            if len(line.text) * 4 > limits.log_line_bytes:  # cheap pre-check before encoding
                line = replace(line, text=clip_log_line(line.text, limits))
            self.journal.append_log(request_id, line)
            metrics.record_log_line(self.record.cluster, line.text)
            del line  # the journal has it: not held by this frame while the container is silent
