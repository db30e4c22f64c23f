"""GatewayPodOperator: KubernetesPodOperator's arguments and behaviour, with the pod run through a Podgate
gateway: the worker holds no cluster credentials and never polls the Kubernetes API."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Coroutine, Iterable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from airflow import __version__ as AIRFLOW_VERSION
from airflow.sdk import BaseOperator
from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from gateway.airflow import request_options as ro
from gateway.airflow.hooks import PodgateHook
from gateway.airflow.links import PodgatePodLink, pod_link
from gateway.airflow.outcome import Verdict, describe, judge, pod_label
from gateway.airflow.pod_builder import PodArgs, TaskIdentity, build_pod
from gateway.airflow.triggers import WORKER_RETRY, PodgateTrigger
from gateway.client import (
    ChannelSpec,
    GatewayClient,
    GatewayError,
    InvalidRequest,
    PermissionDenied,
    Phase,
    PlacementFailed,
    PodEvent,
    PodInfo,
    PodPhase,
    PodResult,
    PodSpecRequest,
    Result,
    Unauthenticated,
    run_blocking,
    with_client,
)

# Model classes whose attributes KubernetesPodOperator renders as templates, by class name (duck-typed).
NESTED_TEMPLATE_FIELDS = {
    "V1EnvVar": ("value", "name"),
    "V1ResourceRequirements": ("limits", "requests"),
    "V1Volume": ("name", "persistent_volume_claim", "config_map"),
    "V1VolumeMount": ("name", "sub_path"),
    "V1PersistentVolumeClaimVolumeSource": ("claim_name",),
    "V1ConfigMapVolumeSource": ("name",),
    "V1EnvFromSource": ("config_map_ref",),
    "V1ConfigMapEnvSource": ("name",),
}
FATAL = (InvalidRequest, PlacementFailed, PermissionDenied, Unauthenticated)
T = TypeVar("T")


class PodgateFatalError(AirflowFailException):
    """A request the gateway will refuse on every try (bad spec, no cluster can ever take it, no permission)."""


class PodFailed(AirflowException):
    """The pod ran and failed; retries apply as for KubernetesPodOperator."""


@dataclass(frozen=True)
class Plan:
    request: PodSpecRequest
    channel: ChannelSpec
    notes: tuple[str, ...]
    link_template: str


class GatewayPodOperator(BaseOperator):
    """Runs a pod like KubernetesPodOperator, placed by the gateway on a registered cluster.

    Takes KubernetesPodOperator's arguments (names, defaults, meaning) plus the routing arguments
    cluster_selector (dict or "k=v,k2 in (a,b)"), regions, clusters, cluster_tolerations, cluster_preferences,
    placement_timeout, the connection podgate_conn_id, and xcom_mode ("auto": up to 4 KiB through the
    termination message; "sidecar": any size).
    """

    BASE_CONTAINER_NAME = "base"
    template_fields: Sequence[str] = (
        "image",
        "name",
        "hostname",
        "cmds",
        "annotations",
        "arguments",
        "env_vars",
        "labels",
        "config_file",
        "pod_template_file",
        "pod_template_dict",
        "namespace",
        "container_resources",
        "volumes",
        "volume_mounts",
        "cluster_context",
        "env_from",
        "node_selector",
        "kubernetes_conn_id",
        "base_container_name",
        "trigger_kwargs",
        "cluster_selector",
        "regions",
        "clusters",
    )
    template_fields_renderers = {"env_vars": "py"}
    operator_extra_links = (PodgatePodLink(),)

    def __init__(
        self,
        *,
        kubernetes_conn_id: str | None = ro.DEFAULT_KUBERNETES_CONN_ID,
        namespace: str | None = None,
        image: str | None = None,
        name: str | None = None,
        random_name_suffix: bool = True,
        cmds: list[str] | None = None,
        arguments: list[str] | None = None,
        ports: list[Any] | None = None,
        volume_mounts: list[Any] | None = None,
        volumes: list[Any] | None = None,
        env_vars: list[Any] | dict[str, str] | None = None,
        env_from: list[Any] | None = None,
        secrets: list[Any] | None = None,
        in_cluster: bool | None = None,
        cluster_context: str | None = None,
        labels: dict[str, Any] | None = None,
        reattach_on_restart: bool = True,
        startup_timeout_seconds: int = 120,
        startup_check_interval_seconds: int = 5,
        schedule_timeout_seconds: int | None = None,
        get_logs: bool = True,
        base_container_name: str | None = None,
        base_container_status_polling_interval: float = 1,
        init_container_logs: Iterable[str] | str | bool | None = None,
        container_logs: Iterable[str] | str | bool | None = None,
        image_pull_policy: str | None = None,
        annotations: dict[str, Any] | None = None,
        container_resources: Any = None,
        affinity: Any = None,
        config_file: str | None = None,
        node_selector: dict[str, str] | None = None,
        image_pull_secrets: Any = None,
        service_account_name: str | None = None,
        automount_service_account_token: bool | None = None,
        hostnetwork: bool = False,
        host_aliases: list[Any] | None = None,
        tolerations: list[Any] | None = None,
        security_context: Any = None,
        container_security_context: Any = None,
        dnspolicy: str | None = None,
        dns_config: Any = None,
        hostname: str | None = None,
        subdomain: str | None = None,
        schedulername: str | None = None,
        full_pod_spec: Any = None,
        init_containers: list[Any] | None = None,
        log_events_on_failure: bool = False,
        do_xcom_push: bool = False,
        pod_template_file: str | None = None,
        pod_template_dict: dict[str, Any] | None = None,
        priority_class_name: str | None = None,
        pod_runtime_info_envs: list[Any] | None = None,
        termination_grace_period: int | None = None,
        configmaps: list[str] | None = None,
        skip_on_exit_code: int | Collection[int] | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 2,
        log_pod_spec_on_failure: bool = True,
        on_finish_action: str = "delete_pod",
        is_delete_operator_pod: bool | None = None,
        termination_message_policy: str = "File",
        active_deadline_seconds: int | None = None,
        callbacks: Any = None,
        progress_callback: Callable[[str], None] | None = None,
        logging_interval: int | None = None,
        trigger_kwargs: dict[str, Any] | None = None,
        container_name_log_prefix_enabled: bool = True,
        log_formatter: Callable[[str, str], str] | None = None,
        # Podgate: routing, connection and XCom transport.
        cluster_selector: Mapping[str, Any] | str | None = None,
        regions: Sequence[str] | None = None,
        clusters: Sequence[str] | None = None,
        cluster_tolerations: Sequence[Any] | None = None,
        cluster_preferences: Sequence[Any] | None = None,
        placement_timeout: float | None = None,
        podgate_conn_id: str = PodgateHook.default_conn_name,
        xcom_mode: str = "auto",
        xcom_sidecar_image: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.kubernetes_conn_id = kubernetes_conn_id
        self.namespace = namespace
        self.image = image
        self.name = name
        self.random_name_suffix = random_name_suffix
        self.cmds = cmds or []
        self.arguments = arguments or []
        self.ports = ports or []
        self.volume_mounts = volume_mounts or []
        self.volumes = volumes or []
        self.env_vars = env_vars or []
        self.env_from = env_from or []
        self.secrets = secrets or []
        self.in_cluster = in_cluster
        self.cluster_context = cluster_context
        self.labels = labels or {}
        self.reattach_on_restart = reattach_on_restart
        self.startup_timeout_seconds = startup_timeout_seconds
        self.startup_check_interval_seconds = startup_check_interval_seconds
        self.schedule_timeout_seconds = schedule_timeout_seconds
        self.get_logs = get_logs
        self.base_container_name = base_container_name or self.BASE_CONTAINER_NAME
        self.base_container_status_polling_interval = base_container_status_polling_interval
        self.init_container_logs = init_container_logs
        self.container_logs = container_logs
        self.image_pull_policy = image_pull_policy
        self.annotations = annotations or {}
        self.container_resources = container_resources
        self.affinity = affinity
        self.config_file = config_file
        self.node_selector = node_selector or {}
        self.image_pull_secrets = image_pull_secrets
        self.service_account_name = service_account_name
        self.automount_service_account_token = automount_service_account_token
        self.hostnetwork = hostnetwork
        self.host_aliases = host_aliases
        self.tolerations = tolerations or []
        self.security_context = security_context
        self.container_security_context = container_security_context
        self.dnspolicy = dnspolicy
        self.dns_config = dns_config
        self.hostname = hostname
        self.subdomain = subdomain
        self.schedulername = schedulername
        self.full_pod_spec = full_pod_spec
        self.init_containers = init_containers or []
        self.log_events_on_failure = log_events_on_failure
        self.do_xcom_push = do_xcom_push
        self.pod_template_file = pod_template_file
        self.pod_template_dict = pod_template_dict
        self.priority_class_name = priority_class_name
        self.pod_runtime_info_envs = pod_runtime_info_envs or []
        self.termination_grace_period = termination_grace_period
        self.configmaps = configmaps or []
        self.skip_on_exit_code = ro.skip_codes(skip_on_exit_code)
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.log_pod_spec_on_failure = log_pod_spec_on_failure
        self.on_finish_action = on_finish_action
        self.is_delete_operator_pod = is_delete_operator_pod
        self.termination_message_policy = termination_message_policy
        self.active_deadline_seconds = active_deadline_seconds
        self.callbacks = callbacks
        self.progress_callback = progress_callback
        self.logging_interval = logging_interval
        self.trigger_kwargs = trigger_kwargs
        self.container_name_log_prefix_enabled = container_name_log_prefix_enabled
        self.log_formatter = log_formatter
        self.cluster_selector = cluster_selector
        self.regions = list(regions or [])
        self.clusters = list(clusters or [])
        self.cluster_tolerations = list(cluster_tolerations or [])
        self.cluster_preferences = list(cluster_preferences or [])
        self.placement_timeout = placement_timeout
        self.podgate_conn_id = podgate_conn_id
        self.xcom_mode = xcom_mode
        self.xcom_sidecar_image = xcom_sidecar_image
        ro.on_finish(on_finish_action, is_delete_operator_pod)  # fail at parse time on a bad value
        self.pod_link = ""
        self._request_id = ""
        self._channel: ChannelSpec | None = None
        self._killed = False
        self._pod_manifest: dict[str, Any] = {}

    # --- templating ---------------------------------------------------------------------------

    def _render_nested_template_fields(self, content: Any, context: Any, jinja_env: Any, seen_oids: set[int]) -> None:
        fields = NESTED_TEMPLATE_FIELDS.get(type(content).__name__)
        if fields and id(content) not in seen_oids:
            seen_oids.add(id(content))
            self._do_render_template_fields(content, fields, context, jinja_env, seen_oids)
            return
        super()._render_nested_template_fields(content, context, jinja_env, seen_oids)

    # --- building the request -----------------------------------------------------------------

    def _pod_template(self) -> Mapping[str, Any] | None:
        if self.pod_template_file:
            with open(self.pod_template_file) as f:
                text = f.read()
            if self.pod_template_file.endswith(".json"):
                loaded = json.loads(text)
            else:
                from airflow.sdk import yaml

                loaded = yaml.safe_load(text)
            if not isinstance(loaded, Mapping):
                raise PodgateFatalError(f"pod_template_file {self.pod_template_file}: not a Pod manifest")
            return loaded
        return self.pod_template_dict

    def _pod_args(self) -> PodArgs:
        """The pod-shaping arguments: PodArgs' fields carry the operator's attribute names."""
        given = {
            f.name: getattr(self, f.name) for f in fields(PodArgs) if f.name not in ("pod_template", "extra_labels")
        }
        return PodArgs(
            **given,
            pod_template=self._pod_template(),
            extra_labels={"airflow_version": AIRFLOW_VERSION.replace("+", "-")},
        )

    def build_pod_request_obj(self, context: Any = None) -> dict[str, Any]:
        """The Pod manifest (a dict) this task sends, as KubernetesPodOperator's method of the same name;
        without a context, no task labels and the "default" namespace (no connection is read)."""
        if context is None:
            return build_pod(self._pod_args(), None)
        hook = PodgateHook(self.podgate_conn_id)
        return build_pod(self._pod_args(), _identity(context), default_namespace=hook.default_namespace())

    def dry_run(self) -> None:
        """Prints the Pod manifest this task would send, as KubernetesPodOperator.dry_run does."""
        print(json.dumps(self.build_pod_request_obj(), indent=2, sort_keys=True))

    def _plan(self, context: Any) -> Plan:
        hook = PodgateHook(self.podgate_conn_id)
        identity = _identity(context)
        try:
            pod = build_pod(self._pod_args(), identity, default_namespace=hook.default_namespace())
            direct = ro.direct_connection(
                self.clusters,
                kubernetes_conn_id=self.kubernetes_conn_id,
                cluster_context=self.cluster_context,
                in_cluster=self.in_cluster,
                config_file=self.config_file,
            )
            finish = ro.on_finish(self.on_finish_action, self.is_delete_operator_pod)
            startup = self.startup_timeout_seconds + (self.schedule_timeout_seconds or 0)
            request = PodSpecRequest.build(
                request_id=ro.request_id(identity, include_try_number=not self.reattach_on_restart),
                pod=pod,
                cluster_selector=self.cluster_selector,
                regions=self.regions,
                clusters=direct.clusters,
                cluster_tolerations=self.cluster_tolerations,
                preferences=self.cluster_preferences,
                placement_timeout=self.placement_timeout,
                xcom=ro.xcom_mode(self.do_xcom_push, self.xcom_mode),
                xcom_sidecar_image=self.xcom_sidecar_image,
                logs=ro.log_selection(
                    self.get_logs, self.container_logs, self.init_container_logs, self.base_container_name
                ),
                on_finish=finish.action,
                startup_timeout=startup,
                airflow=identity,
                keep_name=not self.random_name_suffix,
            )
        except (ValueError, TypeError) as e:
            raise PodgateFatalError(f"{self.task_id}: {e}") from e
        notes = direct.notes + ((finish.note,) if finish.note else ())
        for arg in ("callbacks", "progress_callback", "logging_interval"):
            if getattr(self, arg):
                notes += (f"{arg} is ignored: the gateway, not the worker, talks to the cluster",)
        return Plan(request, hook.channel_spec(), notes, hook.link_template())

    # --- running ------------------------------------------------------------------------------

    def execute(self, context: Any) -> Any:
        plan = self._plan(context)
        for note in plan.notes:
            self.log.warning("Deprecated: %s", note)
        self._request_id, self._channel = plan.request.request_id, plan.channel
        self._pod_manifest = dict(plan.request.pod)
        self.log.info("Running pod %s through the gateway at %s", plan.request.request_id, plan.channel.address)
        if self.deferrable:
            return self._defer(context, plan)
        result = _fatal_or_not(lambda: run_blocking(lambda: self._run(context, plan)))
        return self._finish(context, plan.channel, plan.link_template, result)

    async def _run(self, context: Any, plan: Plan) -> PodResult:
        created = False
        async with (
            GatewayClient(plan.channel, retry=WORKER_RETRY) as client,
            aclosing(client.run_pod(plan.request)) as events,
        ):
            async for event in events:
                self._log_event(event)
                if isinstance(event, Result):
                    return event.result
                if not created and isinstance(event, Phase) and event.phase in (PodPhase.PENDING, PodPhase.RUNNING):
                    # As KPO does: the pod's name is in XCom while it runs, even if the task dies.
                    created = True
                    self._push_pod(context, await client.get_pod(plan.request.request_id), plan.link_template)
        raise AirflowException("the gateway's stream ended without the pod's result")

    def _log_event(self, event: PodEvent) -> None:
        record = describe(event, prefix=self.container_name_log_prefix_enabled, formatter=self.log_formatter)
        if record is not None:
            self.log.log(record.level, "%s", record.message)

    def _defer(self, context: Any, plan: Plan) -> None:
        submitted = _call(plan.channel, lambda c: c.submit_pod(plan.request))
        self._push_pod(context, submitted.pod, plan.link_template)
        self.log.info("Pod %s submitted (created: %s); deferring", submitted.pod.name, submitted.created)
        trigger = PodgateTrigger(
            request_id=plan.request.request_id,
            channel=plan.channel.serialize(),
            log_prefix=self.container_name_log_prefix_enabled,
        )
        self.defer(trigger=trigger, method_name="execute_complete")

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        """Resumes after the trigger: watches from the trigger's last cursor for the remaining log lines and
        the result, so no line is lost or repeated between the two."""
        hook = PodgateHook(self.podgate_conn_id)
        channel = hook.channel_spec()
        self._request_id, self._channel = event["request_id"], channel
        if event.get("status") == "error":
            if event.get("error") in {c.__name__ for c in FATAL}:
                raise PodgateFatalError(event.get("message", "the gateway refused the request"))
            self.log.warning("The trigger stopped early (%s); following the pod from here", event.get("message"))

        async def rest() -> PodResult:
            async with (
                GatewayClient(channel, retry=WORKER_RETRY) as client,
                aclosing(client.watch_pod(event["request_id"], event.get("cursor", ""))) as events,
            ):
                async for item in events:
                    self._log_event(item)
                    if isinstance(item, Result):
                        return item.result
            raise AirflowException("the gateway's stream ended without the pod's result")

        result = _fatal_or_not(lambda: run_blocking(rest))
        return self._finish(context, channel, hook.link_template(), result)

    def _finish(self, context: Any, channel: ChannelSpec, link_template: str, result: PodResult) -> Any:
        pod = _call(channel, lambda c: c.get_pod(self._request_id))
        self._push_pod(context, pod, link_template)
        label = pod_label(pod.cluster, pod.namespace, pod.name)
        outcome = judge(result, self.skip_on_exit_code, label, self.log_events_on_failure)
        value = result.xcom() if self.do_xcom_push else None
        if outcome.verdict == Verdict.SKIP:
            raise AirflowSkipException(outcome.message)
        if outcome.verdict == Verdict.FAIL:
            if value is not None:
                context["ti"].xcom_push(key="return_value", value=value)
            if self.log_events_on_failure:
                for e in result.warning_events:
                    self.log.warning("Pod Event: %s - %s", e.reason, e.message)
            if self.log_pod_spec_on_failure and self._pod_manifest:
                self.log.info("Pod manifest sent to the gateway: %s", json.dumps(self._pod_manifest, sort_keys=True))
            raise PodFailed(outcome.message)
        return value

    def _push_pod(self, context: Any, pod: PodInfo, link_template: str) -> None:
        ti = context["ti"]
        ti.xcom_push(key="pod_name", value=pod.name)
        ti.xcom_push(key="pod_namespace", value=pod.namespace)
        ti.xcom_push(key="cluster", value=pod.cluster)
        self.pod_link = pod_link(link_template, pod.cluster, pod.namespace, pod.name)

    def on_kill(self) -> None:
        """Cancels the pod through the gateway (the task was marked failed, or timed out)."""
        self._killed = True
        if not (self._request_id and self._channel):
            return
        request_id, channel = self._request_id, self._channel
        try:
            with_client(channel, lambda c: c.cancel_pod(request_id, reason="the Airflow task was killed"))
            self.log.info("Cancelled pod %s", request_id)
        except GatewayError:
            self.log.exception("Unable to cancel pod %s", request_id)


def _fatal_or_not(work: Callable[[], T]) -> T:
    """Refusals that no retry can fix fail the task for good; other gateway errors leave retries to Airflow."""
    try:
        return work()
    except FATAL as e:
        raise PodgateFatalError(str(e)) from e
    except GatewayError as e:
        raise AirflowException(str(e)) from e


def _call(channel: ChannelSpec, use: Callable[[GatewayClient], Coroutine[Any, Any, T]]) -> T:
    """One blocking gateway call."""
    return _fatal_or_not(lambda: with_client(channel, use, retry=WORKER_RETRY))


def _identity(context: Any) -> TaskIdentity:
    ti = context["ti"]
    map_index = getattr(ti, "map_index", -1)
    return TaskIdentity(
        dag_id=ti.dag_id,
        task_id=ti.task_id,
        run_id=context["run_id"],
        map_index=-1 if map_index is None else int(map_index),
        try_number=int(getattr(ti, "try_number", 1) or 1),
    )
