"""One request's life: place, persist, create (with failover), follow, collect, finish.

Order of effects is what makes it safe to crash anywhere: the placement (cluster and pod name) is
stored before the pod is created, so a restarted gateway re-creates the same name and meets
AlreadyExists rather than making a second pod; the result is stored before the pod is deleted.
A pod is followed through its cluster's shared watch (`PodTrack`), never by polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import secrets
import string
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from gateway import domain, errors
from gateway.clusters.kubeapi import errors as kube
from gateway.clusters.registry import ClusterRuntime, PodTrack, Registry
from gateway.observability import logging as logcontext
from gateway.observability import metrics
from gateway.placement import engine
from gateway.pods import builder, status, xcom
from gateway.pods.journal import Journal
from gateway.pods.logs import LogFollower, LogPosition
from gateway.policy.limits import DEFAULT_LIMITS, InputLimits, clip_log_line
from gateway.store.base import Store

log = logging.getLogger(__name__)

SUFFIX_ALPHABET = string.ascii_lowercase + string.digits
LOG_DRAIN_SECONDS = 30.0
GONE_CHECK_SECONDS = 5.0
MAX_WARNINGS = 50  # warning events kept for a result
STOPPED_REASONS = frozenset({"Cancelled", "StartupTimeout", "Unschedulable"})
DELETE_GRACE_SECONDS = 30
IDLE_WAIT_SECONDS = 30.0
# A failed pod's warning events may trail its status (they come on another watch): wait for them this long.
EVENT_SETTLE_QUIET_SECONDS = 0.3
EVENT_SETTLE_MAX_SECONDS = 2.0


def new_suffix() -> str:
    return "".join(secrets.choice(SUFFIX_ALPHABET) for _ in range(8))


class PlacementFailed(Exception):
    """No cluster satisfied the request within its placement timeout."""


class Cancelled(Exception):
    """The request was cancelled before its pod existed."""


class NameTaken(Exception):
    """The pod name (kept as the caller gave it) belongs to a pod this request did not create."""


class Rejected(Exception):
    """The API server refused the pod itself (422 Invalid, 400): no retry, and no other cluster, will change that."""


REJECTION_MESSAGE_MAX = 1024


class Created(enum.Enum):
    YES = "yes"
    NO = "no"  # certainly not created: failing over is safe
    UNKNOWN = "unknown"  # the request may have been applied: stay on this cluster and name


async def _create(runtime: ClusterRuntime, namespace: str, body: dict[str, Any]) -> Created:
    """Creates body unless it exists. Transient failures are resolved by reading the pod back."""
    name = body["metadata"]["name"]
    try:
        await runtime.client.create_pod(namespace, body)
        return Created.YES
    except kube.AlreadyExists:
        pass  # ours from an earlier attempt, or another's pod of the same name: read it to tell
    except (kube.ApiUnreachable, kube.ServerError, kube.TooManyRequests) as e:
        log.warning("creating pod %s/%s on %s failed: %s", namespace, name, runtime.name, e)
        if isinstance(e, kube.TooManyRequests) or (isinstance(e, kube.ApiUnreachable) and not e.maybe_sent):
            return Created.NO  # refused before it reached the API server
    except (kube.Unauthorized, kube.Forbidden, kube.NotFound) as e:
        log.warning("creating pod %s/%s on %s was refused: %s", namespace, name, runtime.name, e)
        return Created.NO  # this cluster's credentials, RBAC or namespace: another cluster may take it
    except kube.ClientError as e:
        message = f"{runtime.name} refused the pod: {e}"
        raise Rejected(message[:REJECTION_MESSAGE_MAX]) from None
    try:
        existing = await runtime.client.get_pod(namespace, name)
    except kube.NotFound:
        return Created.NO
    except kube.KubeError:
        return Created.UNKNOWN
    owner = ((existing.get("metadata") or {}).get("annotations") or {}).get(builder.REQUEST_ID_ANNOTATION)
    mine = (body["metadata"].get("annotations") or {}).get(builder.REQUEST_ID_ANNOTATION)
    if owner != mine:
        raise NameTaken(
            f"a pod named {name!r} already exists in {namespace} on {runtime.name} and is not this request's"
        )
    return Created.YES


@dataclass
class RunnerConfig:
    gateway_id: str = "podgate"
    sidecar_image: str = "alpine:3.20"
    limits: InputLimits = DEFAULT_LIMITS  # log_line_bytes: longer lines are clipped, with a marker


@dataclass
class PodRunner:
    """Drives one request to its result. Cancel with `cancel()`; `task` ends when the request is finished."""

    record: domain.PodRecord
    registry: Registry
    store: Store
    journal: Journal
    config: RunnerConfig
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    cancel_reason: str = ""
    _warnings: list[domain.KubeEvent] = field(default_factory=list)
    _track: PodTrack | None = None
    _gone_check_after: float = 0.0
    _journalled: set[domain.KubeEvent] = field(default_factory=set)

    @property
    def request(self) -> domain.PodRequest:
        return self.record.request

    @property
    def request_id(self) -> str:
        return self.record.request.request_id

    def cancel(self, reason: str) -> None:
        self.cancel_reason = reason or "cancelled by the caller"
        self.cancelled.set()
        if self._track is not None:
            self._track.poke()

    async def run(self) -> None:
        logcontext.bind(
            request_id=self.request_id, tenant=self.request.tenant, cluster=self.record.cluster, pod=self.record.name
        )
        if self.record.result is not None:  # resumed after a restart with only the finish action left
            await self._close(self.record.result, self._runtime_if_registered())
            return
        try:
            if not self.record.cluster or self.record.phase is domain.PodPhase.QUEUED:
                await self._place_and_create()
            await self._follow()
        except PlacementFailed as e:
            metrics.PLACEMENTS.labels(cluster="", reason="no_fit").inc()
            await self._finish(domain.PodResult(phase=domain.PodPhase.FAILED, reason="PlacementFailed", message=str(e)))
        except NameTaken as e:
            await self._finish(domain.PodResult(phase=domain.PodPhase.FAILED, reason="AlreadyExists", message=str(e)))
        except Rejected as e:
            await self._finish(domain.PodResult(phase=domain.PodPhase.FAILED, reason="Rejected", message=str(e)))
        except Cancelled:
            await self._finish(
                domain.PodResult(phase=domain.PodPhase.CANCELLED, reason="Cancelled", message=self.cancel_reason)
            )
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.exception("request %s failed in the gateway", self.request_id)
            await self._finish(
                domain.PodResult(
                    phase=domain.PodPhase.FAILED,
                    reason="GatewayError",
                    message=f"{type(e).__name__}: the gateway log has details",
                )
            )
        finally:
            self._untrack()

    def _runtime_if_registered(self) -> ClusterRuntime | None:
        try:
            return self.registry.get(self.record.cluster)
        except errors.NotFound:
            return None

    def _untrack(self) -> None:
        """Stops following the pod (tracked from before its create, so even a create that never settled)."""
        if self.record.name and self.record.cluster in self.registry.names():
            self.registry.get(self.record.cluster).untrack(self.record.namespace, self.record.name)

    # --- placement and creation -----------------------------------------------------------

    async def _place_and_create(self) -> None:
        """Tries eligible clusters best first; waits for capacity or recovery up to the placement timeout.

        A create whose outcome is unknown (the request may have reached the API server) pins the
        request to that cluster and pod name until a read answers whether the pod exists: failing
        over then could leave two pods.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request.placement.timeout_seconds
        tried: set[str] = set()
        # Resumed after a crash between storing the placement and confirming the create: that cluster and
        # name first, as the pod may already exist there.
        pinned = self.record.cluster if self.record.name else ""
        while True:
            decision = engine.place(self.request, self.registry.snapshots(), previous=self.record.cluster)
            candidates = [pinned] if pinned else [c.cluster for c in decision.candidates if c.cluster not in tried]
            for cluster in candidates:
                outcome = await self._create_on(cluster, decision)
                if outcome is Created.YES:
                    return
                pinned = cluster if outcome is Created.UNKNOWN else ""
                if pinned:
                    break
                tried.add(cluster)
            remaining = deadline - loop.time()
            if not pinned and (remaining <= 0 or not (decision.candidates or decision.may_fit_later or tried)):
                failed = f" (creation failed on {', '.join(sorted(tried))})" if tried else ""
                raise PlacementFailed(decision.reason + failed)
            if tried >= {c.cluster for c in decision.candidates}:
                tried.clear()  # every candidate failed transiently: retry them after the pause
            await self._wait_or_cancel(self.registry.wait_changed(min(max(remaining, 1.0), 5.0)))

    async def _wait_or_cancel(self, waiting: Any) -> None:
        cancel = asyncio.ensure_future(self.cancelled.wait())
        other = asyncio.ensure_future(waiting)
        await asyncio.wait({cancel, other}, return_when=asyncio.FIRST_COMPLETED)
        for task in (cancel, other):
            task.cancel()
        await asyncio.gather(cancel, other, return_exceptions=True)
        if self.cancelled.is_set():
            raise Cancelled

    async def _create_on(self, cluster: str, decision: domain.PlacementDecision) -> Created:
        runtime = self.registry.get(cluster)
        namespace = self.request.pod.get("metadata", {}).get("namespace") or "default"
        same = self.record.cluster == cluster and bool(self.record.name)
        suffix = self.record.name.rsplit("-", 1)[-1] if same else new_suffix()
        body = builder.build_pod(self.request, cluster=cluster, gateway_id=self.config.gateway_id, name_suffix=suffix)
        name = body["metadata"]["name"]
        if not same:
            try:
                self.record = await self.store.record_placement(
                    self.request_id, cluster=cluster, region=runtime.spec.region, namespace=namespace, name=name,
                    decision=_chosen(decision, cluster), phase=domain.PodPhase.QUEUED,
                )  # fmt: skip
            except errors.AlreadyExists:  # another request of the gateway holds that kept name
                raise NameTaken(
                    f"another request already has a pod named {name!r} in {namespace} on {cluster}"
                ) from None
            await self.journal.append(self.request_id, self.record.decision or decision)
        logcontext.bind(cluster=cluster, pod=name)
        runtime.track(namespace, name)  # before creating: the scheduler's first events come at once
        try:
            outcome = await _create(runtime, namespace, body)
        except Rejected:
            runtime.untrack(namespace, name)
            raise
        metrics.record_placement(cluster, outcome.value, first_choice=cluster == decision.cluster)
        if outcome is Created.YES:
            self.record = await self.store.record_phase(self.request_id, domain.PodPhase.PENDING)
        else:
            if outcome is Created.NO:
                runtime.untrack(namespace, name)
            what = (
                "outcome unknown, checking before any failover"
                if outcome is Created.UNKNOWN
                else "trying the next candidate"
            )
            await self.journal.append(
                self.request_id,
                domain.PhaseChange(
                    phase=domain.PodPhase.QUEUED,
                    reason="CreateFailed",
                    message=f"creating the pod on {cluster} failed; {what}",
                ),
            )
        return outcome

    async def _confirmed_gone(self, runtime: ClusterRuntime) -> bool:
        """The watch does not show the pod: asks the API server, at most every GONE_CHECK_SECONDS.

        The pod was created (the record is past Queued), so a pod missing from the synced watch was either
        just created (the watch lags) or deleted, e.g. while the gateway was down. Never re-created.
        """
        now = asyncio.get_running_loop().time()
        if now < self._gone_check_after:
            return False
        self._gone_check_after = now + GONE_CHECK_SECONDS
        try:
            await runtime.client.get_pod(self.record.namespace, self.record.name)
        except kube.NotFound:
            return True
        except kube.KubeError as e:
            log.info("cannot tell whether pod %s/%s exists yet: %s", self.record.namespace, self.record.name, e)
        return False

    # --- following ------------------------------------------------------------------------

    async def _follow(self) -> None:
        """Follows the pod through its cluster's runtime: again through the new runtime when the cluster's
        registration is updated (the old one stops watching), to a result when the cluster is deregistered."""
        positions, journalled = await self.journal.resume_point(self.request_id)
        self._journalled = set(journalled)
        self._warnings = [e for e in journalled if e.type == "Warning"][-MAX_WARNINGS:]
        started = asyncio.get_running_loop().time()
        while True:
            try:
                runtime = self.registry.get(self.record.cluster)
            except errors.NotFound:
                await self._finish(
                    domain.PodResult(
                        phase=domain.PodPhase.FAILED,
                        reason="ClusterDeregistered",
                        message=f"cluster {self.record.cluster!r} was deregistered while the pod ran; the gateway "
                        f"no longer follows pod {self.record.namespace}/{self.record.name}, which may still run there",
                        warning_events=tuple(self._warnings),
                    )
                )
                return
            track = runtime.track(self.record.namespace, self.record.name)
            try:
                if await self._follow_track(runtime, track, positions, started):
                    return
            finally:
                runtime.untrack(self.record.namespace, self.record.name)

    def _is_current(self, runtime: ClusterRuntime) -> bool:
        try:
            return self.registry.get(runtime.name) is runtime
        except errors.NotFound:
            return False

    async def _follow_track(
        self, runtime: ClusterRuntime, track: PodTrack, positions: dict[str, LogPosition], started: float
    ) -> bool:
        """True once the request is finished; False when `runtime` no longer serves the cluster.

        Wakes only when the pod or its events change, when poked (cancel, cluster replaced), or at the
        startup deadline; IDLE_WAIT_SECONDS is a safety net, not a poll of the cluster.
        """
        loop = asyncio.get_running_loop()
        phase = self.record.phase
        logs: dict[str, asyncio.Task[None]] = {}
        self._track = track
        await track.synced()
        try:
            while True:
                if not self._is_current(runtime):
                    return False
                for event in track.drain_events():
                    await self._note_event(event)
                if self.cancelled.is_set():
                    await self._cancel_pod(runtime)
                    return True
                if track.pod is None:
                    if track.seen or await self._confirmed_gone(runtime):
                        await self._finish(
                            domain.PodResult(
                                phase=domain.PodPhase.FAILED,
                                reason="PodDeleted",
                                message="the pod was deleted outside the gateway",
                            )
                        )
                        return True
                    await track.wait(1.0)
                    continue
                view = status.interpret(track.pod)
                if view.phase is not phase and not view.finished:  # the end is reported by the result
                    phase = view.phase
                    self.record = await self.store.record_phase(self.request_id, phase)
                    metrics.record_phase(self.record.cluster, phase, self.record.created_at)
                    await self.journal.append(
                        self.request_id, domain.PhaseChange(phase=phase, reason=view.reason, message=view.message)
                    )
                self._start_logs(runtime, track, logs, positions)
                if view.finished or self._sidecar_ready_to_read(track, view):
                    await self._complete(runtime, track, view, logs)
                    return True
                left = self.request.startup_timeout_seconds - (loop.time() - started)
                if phase is domain.PodPhase.PENDING and left < 0:
                    await self._startup_timeout(runtime, view)
                    return True
                await track.wait(max(left, 0.05) if phase is domain.PodPhase.PENDING else IDLE_WAIT_SECONDS)
        finally:
            for task in logs.values():
                task.cancel()
            await asyncio.gather(*logs.values(), return_exceptions=True)

    def _sidecar_ready_to_read(self, track: PodTrack, view: status.PodView) -> bool:
        """Sidecar mode: the main container has ended and the sidecar has started (a fast main container
        can end before its sidecar runs, and exec into a container not yet running is refused)."""
        return (
            self.request.xcom_mode is domain.XcomMode.SIDECAR
            and view.main_terminated
            and track.container_started(builder.XCOM_SIDECAR_NAME)
        )

    def _log_containers(self) -> list[str]:
        spec = self.request.pod.get("spec", {})
        main = [c["name"] for c in spec.get("containers", [])[:1]]
        selection = self.request.log_selection
        if selection is domain.LogSelection.NONE:
            return []
        if selection is domain.LogSelection.NAMED:
            return list(self.request.log_containers)
        if selection is domain.LogSelection.ALL:
            return [c["name"] for c in (*spec.get("initContainers", []), *spec.get("containers", []))]
        return main

    def _start_logs(
        self,
        runtime: ClusterRuntime,
        track: PodTrack,
        logs: dict[str, asyncio.Task[None]],
        positions: dict[str, LogPosition],
    ) -> None:
        for container in self._log_containers():
            if container in logs or not track.container_started(container):
                continue
            follower = LogFollower(
                source=runtime.client,
                namespace=self.record.namespace,
                pod=self.record.name,
                container=container,
                container_done=functools.partial(track.container_done, container),
                wait_change=track.wait,
                position=positions.setdefault(container, LogPosition()),
            )
            logs[container] = asyncio.create_task(self._pump_logs(follower))

    async def _pump_logs(self, follower: LogFollower) -> None:
        async for line in follower.lines():
            if len(line.text) * 4 > self.config.limits.log_line_bytes:  # cheap pre-check before encoding
                line = replace(line, text=clip_log_line(line.text, self.config.limits))
            self.journal.append_log(self.request_id, line)
            metrics.record_log_line(self.record.cluster, line.text)

    async def _note_event(self, event: domain.KubeEvent) -> None:
        if event in self._journalled:  # seen again after a restart (the events watch lists them anew)
            return
        if event.type == "Warning":
            self._warnings.append(event)
            del self._warnings[:-MAX_WARNINGS]
        await self.journal.append(self.request_id, event)

    # --- ending ---------------------------------------------------------------------------

    async def _complete(
        self, runtime: ClusterRuntime, track: PodTrack, view: status.PodView, logs: dict[str, asyncio.Task[None]]
    ) -> None:
        main = self._log_containers()[:1]
        await _drain(logs, main or list(logs))
        main_name = (self.request.pod.get("spec", {}).get("containers") or [{}])[0].get("name", "")
        code = status.exit_code(view, main_name)
        # Only a main container that exited 0 has an XCom result (as in KubernetesPodOperator); otherwise its
        # termination message is the runtime's error text, not a payload.
        xcom_json, xcom_error = await self._read_xcom(runtime, view) if code == 0 else (None, "")
        if self.request.xcom_mode is domain.XcomMode.SIDECAR and not view.finished:
            await _stop_sidecar(runtime, self.record.namespace, self.record.name)
        await _drain(logs, list(logs))
        phase = (
            domain.PodPhase.SUCCEEDED
            if code == 0 and view.phase is not domain.PodPhase.FAILED
            else domain.PodPhase.FAILED
        )
        reason, message = (view.reason, view.message) if phase is domain.PodPhase.FAILED else ("Completed", "")
        if xcom_error:
            phase, reason, message = domain.PodPhase.FAILED, "XComError", xcom_error
        if phase is domain.PodPhase.FAILED:
            await track.settle_events(quiet=EVENT_SETTLE_QUIET_SECONDS, within=EVENT_SETTLE_MAX_SECONDS)
        for event in track.drain_events():
            await self._note_event(event)
        await self._finish(
            domain.PodResult(
                phase=phase,
                exit_code=code,
                reason=reason or "Error",
                message=message,
                containers=view.containers,
                xcom_json=xcom_json,
                warning_events=tuple(self._warnings),
            ),
            runtime=runtime,
        )

    async def _read_xcom(self, runtime: ClusterRuntime, view: status.PodView) -> tuple[str | None, str]:
        mode = self.request.xcom_mode
        try:
            if mode is domain.XcomMode.AUTO:
                return xcom.from_termination_message(view.termination_message), ""
            if mode is domain.XcomMode.SIDECAR and not view.finished:
                done = await runtime.client.exec(
                    self.record.namespace,
                    self.record.name,
                    builder.XCOM_SIDECAR_NAME,
                    ["sh", "-c", f"test -e {xcom.XCOM_PATH} && cat {xcom.XCOM_PATH} || true"],
                )
                return xcom.from_sidecar_output(done.stdout), ""
        except xcom.XcomError as e:
            return None, str(e)
        except kube.KubeError as e:
            return None, f"could not read the XCom file through the sidecar: {e}"
        return None, ""

    async def _startup_timeout(self, runtime: ClusterRuntime, view: status.PodView) -> None:
        why = view.message or "the pod did not start"
        await self._finish(
            domain.PodResult(
                phase=domain.PodPhase.FAILED,
                reason="StartupTimeout" if not view.unschedulable else "Unschedulable",
                message=f"pod did not start within {self.request.startup_timeout_seconds:g}s: {why}",
                containers=view.containers,
                warning_events=tuple(self._warnings),
            ),
            runtime,
        )

    async def _cancel_pod(self, runtime: ClusterRuntime) -> None:
        await self._finish(
            domain.PodResult(phase=domain.PodPhase.CANCELLED, reason="Cancelled", message=self.cancel_reason),
            runtime,
        )

    async def _delete_pod(self, runtime: ClusterRuntime) -> None:
        with contextlib.suppress(kube.NotFound):
            await runtime.client.delete_pod(self.record.namespace, self.record.name, grace_seconds=DELETE_GRACE_SECONDS)

    async def _finish(self, result: domain.PodResult, runtime: ClusterRuntime | None = None) -> None:
        """Result first (stored, then streamed), then the finish action, then the record is closed."""
        await self.journal.flush(self.request_id)
        self.record = await self.store.record_result(self.request_id, result)
        metrics.PODS_FINISHED.labels(cluster=self.record.cluster, phase=result.phase).inc()
        await self.journal.append(self.request_id, result)
        await self._close(result, runtime)

    async def _close(self, result: domain.PodResult, runtime: ClusterRuntime | None) -> None:
        """The finish action, then the record is closed; a refused delete leaves it open (retried by the
        garbage collector, and on the next start, which never follows a pod with a result again)."""
        if runtime is not None and must_delete(self.request, result):
            try:
                await self._delete_pod(runtime)
            except kube.KubeError as e:
                log.warning(
                    "could not delete pod %s/%s on %s: %s (the garbage collector retries)",
                    self.record.namespace,
                    self.record.name,
                    self.record.cluster,
                    e,
                )
                return
        self.record = await self.store.record_finished(self.request_id, datetime.now(UTC))


def must_delete(request: domain.PodRequest, result: domain.PodResult) -> bool:
    """A pod the gateway stopped (cancelled, never started) goes whatever on_finish says."""
    return result.reason in STOPPED_REASONS or should_delete(request.on_finish, result.phase)


def should_delete(action: domain.OnFinishAction, phase: domain.PodPhase) -> bool:
    if action is domain.OnFinishAction.KEEP_POD:
        return False
    if action is domain.OnFinishAction.DELETE_SUCCEEDED_POD:
        return phase is domain.PodPhase.SUCCEEDED
    return True


def _chosen(decision: domain.PlacementDecision, cluster: str) -> domain.PlacementDecision:
    verdicts = tuple(replace(v, chosen=v.cluster == cluster) for v in decision.verdicts)
    region = next((v.region for v in verdicts if v.chosen), "")
    others = len(decision.candidates) - 1
    reason = (
        decision.reason
        if decision.cluster == cluster
        else f"placed on {cluster} after failover ({others} other candidates)"
    )
    return replace(decision, verdicts=verdicts, cluster=cluster, region=region, reason=reason)


async def _drain(logs: dict[str, asyncio.Task[None]], containers: list[str]) -> None:
    tasks = [logs[c] for c in containers if c in logs]
    if tasks:
        await asyncio.wait(tasks, timeout=LOG_DRAIN_SECONDS)


async def _stop_sidecar(runtime: ClusterRuntime, namespace: str, name: str) -> None:
    try:
        await runtime.client.exec(namespace, name, builder.XCOM_SIDECAR_NAME, ["sh", "-c", "kill -s INT 1"])
    except kube.KubeError as e:
        log.info("stopping the XCom sidecar of %s/%s: %s", namespace, name, e)
