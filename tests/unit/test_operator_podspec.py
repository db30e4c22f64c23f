"""KubernetesPodOperator arguments -> Pod manifest (pure), checked against KPO's documented behaviour and the
kubernetes client's own serialisation of its model objects."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client import ApiClient
from kubernetes.client import models as k8s

from gateway.airflow import k8s_models, pod_merge
from gateway.airflow.pod_builder import (
    PodArgs,
    TaskIdentity,
    build_pod,
    normalize_name,
    resources,
    safe_label_value,
    task_labels,
)

IDENTITY = TaskIdentity(dag_id="etl", task_id="load", run_id="manual__2026-01-01T00:00:00+00:00", try_number=2)


def build(**kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"task_id": "load", "image": "python:3.12", **kw}
    return build_pod(PodArgs(**args), IDENTITY)


def base(pod: dict[str, Any]) -> dict[str, Any]:
    return pod["spec"]["containers"][0]  # type: ignore[no-any-return]


MODELS = [
    k8s.V1EnvVar(name="A", value_from=k8s.V1EnvVarSource(secret_key_ref=k8s.V1SecretKeySelector(name="s", key="k"))),
    k8s.V1Volume(name="data", empty_dir=k8s.V1EmptyDirVolumeSource()),
    k8s.V1Volume(name="cfg", config_map=k8s.V1ConfigMapVolumeSource(name="c", default_mode=0o644)),
    k8s.V1Toleration(key="gpu", operator="Exists", effect="NoSchedule", toleration_seconds=30),
    k8s.V1ResourceRequirements(limits={"nvidia.com/gpu": "1"}, requests={"cpu": "500m"}),
    k8s.V1Affinity(
        node_affinity=k8s.V1NodeAffinity(
            required_during_scheduling_ignored_during_execution=k8s.V1NodeSelector(
                node_selector_terms=[
                    k8s.V1NodeSelectorTerm(
                        match_expressions=[k8s.V1NodeSelectorRequirement(key="z", operator="In", values=["a"])]
                    )
                ]
            )
        )
    ),
    k8s.V1Pod(metadata=k8s.V1ObjectMeta(labels={"a": "b"}), spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="x")])),
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: type(m).__name__)
def test_models_serialise_exactly_as_the_kubernetes_api_client_does(model: Any) -> None:
    assert k8s_models.to_json(model) == ApiClient().sanitize_for_serialization(model)


def test_unserialisable_values_name_where_they_are() -> None:
    with pytest.raises(TypeError, match=r"volumes\[1\]: cannot turn a object"):
        k8s_models.to_json_list([{"name": "ok"}, object()], "volumes")


def test_hello_world_pod() -> None:
    pod = build(cmds=["python", "-c"], arguments=["print(1)"])
    assert pod["apiVersion"] == "v1" and pod["kind"] == "Pod"
    assert pod["metadata"]["name"] == "load"
    assert pod["metadata"]["namespace"] == "default"
    assert pod["spec"]["restartPolicy"] == "Never"
    assert base(pod) == {
        "name": "base",
        "image": "python:3.12",
        "command": ["python", "-c"],
        "args": ["print(1)"],
        "terminationMessagePolicy": "File",
    }


@pytest.mark.parametrize(
    ("env_vars", "expected"),
    [
        ({"A": "1", "B": 2}, [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
        ([k8s.V1EnvVar(name="A", value="1")], [{"name": "A", "value": "1"}]),
        ([{"name": "A", "value": "1"}], [{"name": "A", "value": "1"}]),
        (None, None),
    ],
    ids=["dict", "V1EnvVar", "dict-list", "none"],
)
def test_env_vars(env_vars: Any, expected: Any) -> None:
    assert base(build(env_vars=env_vars)).get("env") == expected


def test_runtime_info_envs_configmaps_and_env_from() -> None:
    runtime = [
        k8s.V1EnvVar(
            name="POD_IP", value_from=k8s.V1EnvVarSource(field_ref=k8s.V1ObjectFieldSelector(field_path="status.podIP"))
        )
    ]
    c = base(
        build(
            env_vars={"A": "1"},
            pod_runtime_info_envs=runtime,
            env_from=[k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name="creds"))],
            configmaps=["settings"],
        )
    )
    assert [e["name"] for e in c["env"]] == ["A", "POD_IP"]
    assert c["env"][1]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert c["envFrom"] == [{"secretRef": {"name": "creds"}}, {"configMapRef": {"name": "settings"}}]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            {"request_memory": "1Gi", "request_cpu": "500m", "limit_memory": "2Gi", "limit_cpu": 1, "limit_gpu": 1},
            {
                "requests": {"memory": "1Gi", "cpu": "500m"},
                "limits": {"memory": "2Gi", "cpu": "1", "nvidia.com/gpu": "1"},
            },
        ),
        ({"limit_gpu": 2, "request_cpu": None}, {"limits": {"nvidia.com/gpu": "2"}}),
        (
            {"request_ephemeral_storage": "1Gi", "limit_ephemeral_storage": "2Gi"},
            {"requests": {"ephemeral-storage": "1Gi"}, "limits": {"ephemeral-storage": "2Gi"}},
        ),
        (k8s.V1ResourceRequirements(requests={"cpu": "1"}), {"requests": {"cpu": "1"}}),
        ({"limits": {"memory": "1Gi"}}, {"limits": {"memory": "1Gi"}}),
        (None, None),
        ({}, None),
    ],
    ids=["legacy-all", "legacy-gpu-only", "legacy-ephemeral", "V1", "dict", "none", "empty"],
)
def test_container_resources(value: Any, expected: Any) -> None:
    assert resources(value) == expected
    assert base(build(container_resources=value)).get("resources") == expected


def test_container_resources_unknown_keys_are_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"unknown keys \['gpu'\].*limit_gpu"):
        resources({"gpu": 1})


def test_labels_annotations_and_task_labels() -> None:
    pod = build(labels={"team": "data", "empty": None}, annotations={"owner": "me"}, extra_labels={"x": "y"})
    labels = pod["metadata"]["labels"]
    assert labels["team"] == "data" and labels["empty"] == "" and labels["x"] == "y"
    assert labels["dag_id"] == "etl" and labels["task_id"] == "load" and labels["kubernetes_pod_operator"] == "True"
    assert labels["try_number"] == "2" and "map_index" not in labels
    assert labels["run_id"] == safe_label_value(IDENTITY.run_id) != IDENTITY.run_id  # ':' and '+' are not label-safe
    assert pod["metadata"]["annotations"] == {"owner": "me"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain-value_1.0", "plain-value_1.0"),
        ("manual__2026-01-01T00:00:00+00:00", "manual__2026-01-01T0000000000-"),
        ("x" * 70, "x" * 53 + "-"),
        ("-lead", "lead-"),
    ],
)
def test_safe_label_values(value: str, expected: str) -> None:
    safe = safe_label_value(value)
    assert safe.startswith(expected)
    assert len(safe) <= 63
    assert safe == value or len(safe.rsplit("-", 1)[1]) == 9  # changed values carry a 9-char hash


def test_task_labels_for_a_mapped_task_without_try_number() -> None:
    mapped = TaskIdentity(dag_id="d", task_id="t", run_id="r", map_index=3, try_number=4)
    assert task_labels(mapped, include_try_number=False) == {
        "dag_id": "d",
        "task_id": "t",
        "run_id": "r",
        "kubernetes_pod_operator": "True",
        "map_index": "3",
    }


@pytest.mark.parametrize(
    ("name", "expected"),
    [(None, "load"), ("My_Pod.Name", "my-pod-name"), ("hello", "hello")],
)
def test_pod_names_leave_the_unique_suffix_to_the_gateway(name: str | None, expected: str) -> None:
    assert build(name=name)["metadata"]["name"] == expected


def test_task_id_is_slugified_for_the_generated_name() -> None:
    pod = build_pod(PodArgs(task_id="Group.My_Task", image="i"), None)
    assert pod["metadata"]["name"] == "group-my-task"


def test_invalid_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="pod name"):
        normalize_name("has space")


def test_full_pod_spec_merges_like_kpo() -> None:
    full = k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="from-spec", labels={"a": "1", "team": "base"}, annotations={"x": "1"}),
        spec=k8s.V1PodSpec(
            containers=[
                k8s.V1Container(
                    name="main",
                    image="template:1",
                    env=[k8s.V1EnvVar(name="FROM_TEMPLATE", value="1")],
                    working_dir="/w",
                ),
                k8s.V1Container(name="side", image="side:1"),
            ],
            volumes=[k8s.V1Volume(name="tv", empty_dir=k8s.V1EmptyDirVolumeSource())],
            service_account_name="template-sa",
            node_selector={"pool": "a"},
        ),
    )
    pod = build(
        image=None,
        full_pod_spec=full,
        env_vars={"FROM_OPERATOR": "2"},
        labels={"team": "ops"},
        volumes=[k8s.V1Volume(name="ov", empty_dir=k8s.V1EmptyDirVolumeSource())],
        node_selector={"pool": "b"},
    )
    main, side = pod["spec"]["containers"]
    assert main["name"] == "base"  # the operator's base container name wins
    assert main["image"] == "template:1"  # unset on the operator: the template's stays
    assert main["workingDir"] == "/w"
    assert [e["name"] for e in main["env"]] == ["FROM_TEMPLATE", "FROM_OPERATOR"]  # lists concatenate, base first
    assert side == {"name": "side", "image": "side:1"}
    assert [v["name"] for v in pod["spec"]["volumes"]] == ["tv", "ov"]
    assert pod["spec"]["volumes"][0] == {"name": "tv", "emptyDir": {}}  # an empty emptyDir survives
    assert pod["spec"]["serviceAccountName"] == "template-sa"
    assert pod["spec"]["nodeSelector"] == {"pool": "b"}  # a set map replaces the template's whole
    assert pod["metadata"]["labels"]["a"] == "1" and pod["metadata"]["labels"]["team"] == "ops"
    assert pod["metadata"]["annotations"] == {"x": "1"}
    assert pod["metadata"]["name"] == "from-spec"


def test_template_dict_then_full_pod_spec_then_operator() -> None:
    template = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"namespace": "airflow", "labels": {"from": "template"}},
        "spec": {
            "containers": [{"name": "base", "image": "tmpl:1", "env": [{"name": "T", "value": "t"}]}],
            "initContainers": [{"name": "init-t", "image": "busybox"}],
            "priorityClassName": "low",
        },
    }
    full = {
        "spec": {"containers": [{"name": "x", "image": "full:1"}], "initContainers": [{"name": "init-f", "image": "b"}]}
    }
    pod = build(
        image="op:1",
        pod_template=template,
        full_pod_spec=full,
        init_containers=[k8s.V1Container(name="init-o", image="b")],
    )
    assert pod["metadata"]["namespace"] == "airflow"
    assert base(pod)["image"] == "op:1"
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["init-t", "init-f", "init-o"]
    assert base(pod)["env"] == [{"name": "T", "value": "t"}]
    assert pod["spec"]["priorityClassName"] == "low"
    assert pod["metadata"]["labels"]["from"] == "template"


def test_namespace_defaults_and_explicit() -> None:
    assert build()["metadata"]["namespace"] == "default"
    assert build(namespace="airflow")["metadata"]["namespace"] == "airflow"
    pod = build_pod(PodArgs(task_id="t", image="i"), None, default_namespace="team-a")
    assert pod["metadata"]["namespace"] == "team-a"


def test_secrets_are_attached_like_airflow_secret() -> None:
    class Secret:  # the shape of airflow.providers.cncf.kubernetes.secret.Secret
        def __init__(self, deploy_type: str, deploy_target: str | None, secret: str, key: str | None = None) -> None:
            self.deploy_type, self.deploy_target, self.secret, self.key, self.items = (
                deploy_type, deploy_target, secret, key, None,
            )  # fmt: skip

    pod = build(
        secrets=[
            Secret("env", "PASSWORD", "db", "password"),
            Secret("env", None, "all-of-it"),
            Secret("volume", "/etc/creds", "files"),
        ]
    )
    c = base(pod)
    assert c["env"] == [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]
    assert c["envFrom"] == [{"secretRef": {"name": "all-of-it"}}]
    assert pod["spec"]["volumes"] == [{"name": "secretvol-2", "secret": {"secretName": "files"}}]
    assert c["volumeMounts"] == [{"name": "secretvol-2", "mountPath": "/etc/creds", "readOnly": True}]


def test_scheduling_and_security_fields() -> None:
    pod = build(
        node_selector={"disk": "ssd"},
        tolerations=[k8s.V1Toleration(key="gpu", operator="Exists")],
        affinity={"nodeAffinity": {}},
        security_context=k8s.V1PodSecurityContext(run_as_user=1000),
        container_security_context={"allowPrivilegeEscalation": False},
        service_account_name="runner",
        automount_service_account_token=False,
        image_pull_policy="Always",
        image_pull_secrets="reg-a, reg-b",
        priority_class_name="high",
        termination_grace_period=5,
        active_deadline_seconds=600,
        ports=[k8s.V1ContainerPort(container_port=8080)],
        volume_mounts=[k8s.V1VolumeMount(name="data", mount_path="/data")],
        hostnetwork=True,
        dnspolicy="ClusterFirstWithHostNet",
    )
    spec, c = pod["spec"], base(pod)
    assert spec["nodeSelector"] == {"disk": "ssd"}
    assert spec["tolerations"] == [{"key": "gpu", "operator": "Exists"}]
    assert spec["affinity"] == {"nodeAffinity": {}}
    assert spec["securityContext"] == {"runAsUser": 1000}
    assert c["securityContext"] == {"allowPrivilegeEscalation": False}
    assert spec["serviceAccountName"] == "runner" and spec["automountServiceAccountToken"] is False
    assert c["imagePullPolicy"] == "Always"
    assert spec["imagePullSecrets"] == [{"name": "reg-a"}, {"name": "reg-b"}]
    assert spec["priorityClassName"] == "high"
    assert spec["terminationGracePeriodSeconds"] == 5 and spec["activeDeadlineSeconds"] == 600
    assert c["ports"] == [{"containerPort": 8080}]
    assert c["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
    assert spec["hostNetwork"] is True and spec["dnsPolicy"] == "ClusterFirstWithHostNet"


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"image": None}, "no image"),
        ({"image": None, "full_pod_spec": {"spec": {"containers": []}}}, "no image"),
        ({"env_vars": "A=1"}, "expected a dict or a list"),
        ({"secrets": [{"deploy_type": "file"}]}, "deploy_type"),
    ],
)
def test_bad_arguments_are_clear_errors(kw: dict[str, Any], match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        build(**kw)


def test_extend_field_refuses_non_lists() -> None:
    with pytest.raises(ValueError, match="env must be a list"):
        pod_merge.extend_field({"env": {"a": 1}}, {"env": []}, "env")
