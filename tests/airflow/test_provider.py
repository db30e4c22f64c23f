"""The provider as Airflow sees it: entry point, connection type, decorator, extra link, DAG parsing, and a
worker-side install without the server's dependencies."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from typing import Any

import pytest

from gateway.client import ChannelSpec
from tests.airflow.conftest import DAGS, airflow_env

SERVER_ONLY = ["kubernetes", "boto3", "botocore", "google-auth", "azure-identity", "aiohttp"]

# What tests/integration/test_install_boundaries.py checks for the client, here for modules that need Airflow
# (which itself brings SQLAlchemy and PyYAML, so only the server's own dependencies are blocked).
BLOCKER = """
import importlib.abc, sys
BLOCKED = ["kubernetes", "boto3", "botocore", "google.auth", "azure", "aiohttp", "gateway.api", "gateway.sim"]
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ImportError(f"server-only module imported: {name}")
        return None
sys.meta_path.insert(0, Blocker())
import gateway.airflow.operators, gateway.airflow.decorators, gateway.airflow.triggers, gateway.airflow.hooks
print("ok")
"""


@pytest.mark.parametrize("dist", SERVER_ONLY)
def test_the_worker_side_install_pulls_no_server_dependency(dist: str) -> None:
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.distribution(dist)


def test_the_airflow_extra_is_what_is_installed() -> None:
    requires = importlib.metadata.requires("podgate") or []
    airflow_extra = [r for r in requires if 'extra == "airflow"' in r]
    assert airflow_extra and all(r.startswith("apache-airflow") for r in airflow_extra)
    assert importlib.metadata.version("apache-airflow").startswith("3.")


def test_airflow_side_modules_import_with_server_modules_blocked() -> None:
    done = subprocess.run(
        [sys.executable, "-c", BLOCKER], env=airflow_env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")


def test_provider_is_discovered_through_its_entry_point() -> None:
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    manager = ProvidersManager()
    assert "podgate" in manager.providers
    hook = ProvidersManagerTaskRuntime().hooks["podgate"]
    assert hook is not None and hook.hook_class_name == "gateway.airflow.hooks.PodgateHook"
    assert "gateway.airflow.links.PodgatePodLink" in manager.extra_links_class_names


def test_task_podgate_decorator_is_registered() -> None:
    from airflow.sdk import task

    from gateway.airflow.decorators import podgate_task

    assert task.podgate is podgate_task


@pytest.mark.parametrize(
    ("connection", "expected"),
    [
        (
            {"conn_type": "podgate", "host": "gw.example", "port": 6000},
            ChannelSpec(address="gw.example:6000"),
        ),
        (
            {
                "conn_type": "podgate",
                "host": "gw",
                "password": "tok",
                "extra": {"ca_file": "/etc/ca.pem", "cert_file": "/c", "key_file": "/k", "namespace": "team"},
            },
            ChannelSpec(address="gw:50051", ca_file="/etc/ca.pem", cert_file="/c", key_file="/k", token="tok"),
        ),
        (
            {"conn_type": "podgate", "host": "grpc://gw:7000", "extra": {"token": "from-extra"}},
            ChannelSpec(address="gw:7000", token="from-extra"),
        ),
        (
            "podgate://:secret@gw:8000?ca_file=%2Fca.pem",
            ChannelSpec(address="gw:8000", ca_file="/ca.pem", token="secret"),
        ),
        (
            {"conn_type": "podgate", "host": "gw-0:7000, gw-1", "port": 7001, "extra": {"addresses": ["[fd00::2]"]}},
            ChannelSpec(address="gw-0:7000,gw-1:7001,[fd00::2]:7001"),
        ),
        (
            {"conn_type": "podgate", "host": "gw-0", "extra": {"addresses": "gw-1:1,gw-2:2", "server_name": "podgate"}},
            ChannelSpec(address="gw-0:50051,gw-1:1,gw-2:2", server_name="podgate"),
        ),
        (
            {"conn_type": "podgate", "host": "dns:///podgate-headless.podgate:50051"},
            ChannelSpec(address="dns:///podgate-headless.podgate:50051"),
        ),
    ],
    ids=["json", "json-tls-token", "scheme-in-host", "uri", "replicas-in-host", "replicas-in-extra", "dns-target"],
)
def test_connection_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, connection: Any, expected: ChannelSpec
) -> None:
    from gateway.airflow.hooks import PodgateHook

    value = connection if isinstance(connection, str) else json.dumps(connection)
    monkeypatch.setenv("AIRFLOW_CONN_PODGATE_DEFAULT", value)
    spec = PodgateHook().channel_spec()
    assert spec == expected
    assert "tok" not in repr(spec) and "secret" not in repr(spec)


def test_connection_without_host_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.airflow.hooks import PodgateHook

    monkeypatch.setenv("AIRFLOW_CONN_PODGATE_DEFAULT", json.dumps({"conn_type": "podgate"}))
    with pytest.raises(ValueError, match="has no host"):
        PodgateHook().channel_spec()
    monkeypatch.setenv("AIRFLOW_CONN_PODGATE_DEFAULT", json.dumps({"conn_type": "podgate", "host": "gw-0:1,gw-1:x"}))
    with pytest.raises(ValueError, match="gw-1:x"):
        PodgateHook().channel_spec()


def test_every_test_dag_parses() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    errors = {name.rsplit("/", 1)[-1]: error for name, error in bag.import_errors.items()}
    # The KubernetesPodOperator original cannot even be imported here: its provider is not installed.
    assert list(errors) == ["kpo_original.py"]
    assert "airflow.providers.cncf" in errors["kpo_original.py"]
    assert {"podgate_basics", "podgate_failures", "podgate_deferrable", "podgate_reattach"} <= set(bag.dag_ids)


KPO_TEMPLATE_FIELDS = (
    "image", "name", "hostname", "cmds", "annotations", "arguments", "env_vars", "labels", "config_file",
    "pod_template_file", "pod_template_dict", "namespace", "container_resources", "volumes", "volume_mounts",
    "cluster_context", "env_from", "node_selector", "kubernetes_conn_id", "base_container_name", "trigger_kwargs",
)  # fmt: skip


def test_template_fields_include_kubernetes_pod_operators() -> None:
    from gateway.airflow.operators import GatewayPodOperator

    assert set(KPO_TEMPLATE_FIELDS) <= set(GatewayPodOperator.template_fields)


def test_bad_arguments_fail_when_the_dag_is_parsed() -> None:
    from gateway.airflow.operators import GatewayPodOperator

    with pytest.raises(ValueError, match="delete_pods"):
        GatewayPodOperator(task_id="t", image="i", on_finish_action="delete_pods")


class V1EnvVar:
    """Shaped like kubernetes.client.V1EnvVar (not installed on workers): rendered by class name, as KPO does."""

    openapi_types = {"name": "str", "value": "str"}
    attribute_map = {"name": "name", "value": "value"}

    def __init__(self, name: str, value: str) -> None:
        self.name, self.value = name, value


def test_templates_render_inside_kubernetes_model_objects() -> None:
    from gateway.airflow.operators import GatewayPodOperator

    op = GatewayPodOperator(
        task_id="t",
        image="repo/{{ params.tag }}",
        env_vars=[V1EnvVar("DAY", "{{ ds }}")],
        cluster_selector="tier={{ params.tier }}",
        regions=["{{ params.region }}"],
    )
    op.render_template_fields({"ds": "2026-01-02", "params": {"tag": "v1", "tier": "prod", "region": "eu-west-1"}})
    assert op.image == "repo/v1"
    assert op.env_vars[0].value == "2026-01-02"
    assert (op.cluster_selector, op.regions) == ("tier=prod", ["eu-west-1"])


def test_dry_run_prints_the_pod_without_a_connection(capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.airflow.operators import GatewayPodOperator

    op = GatewayPodOperator(
        task_id="report", image="python:3.12", cmds=["python"], env_vars={"A": "1"}, podgate_conn_id="absent"
    )
    op.dry_run()
    pod = json.loads(capsys.readouterr().out)
    version = importlib.metadata.version("apache-airflow").replace("+", "-")
    assert pod["metadata"] == {"name": "report", "namespace": "default", "labels": {"airflow_version": version}}
    assert pod["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}]
