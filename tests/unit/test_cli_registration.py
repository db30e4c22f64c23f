"""The CLI's registration-file reader and the gateway's file loader agree on the fields, and both name an
unknown key with a suggestion."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.clusters import files
from gateway.commands import registration
from gateway.commands.common import CommandError


def test_the_cli_and_the_gateway_read_the_same_fields() -> None:
    assert registration.FIELDS == files._FIELDS


def test_the_gateway_loader_suggests_the_key_meant() -> None:
    entry = {"name": "a", "provider": "sim", "region": "r", "labls": {}}
    _, problems = files.parse_cluster(entry, source="f.yaml")
    assert problems[0][0] == "labls" and "did you mean 'labels'?" in problems[0][1]


@pytest.mark.parametrize(
    ("aliases", "problem"),
    [(["k8s_conn", "kubernetes_default"], ""), (["has space"], "alias 'has space'"), (["a"], "own name"), ("x", "list")],
)
def test_aliases_in_files(aliases: object, problem: str) -> None:
    entry = {"name": "a", "provider": "sim", "region": "r", "aliases": aliases}
    spec, problems = files.parse_cluster(entry, source="f.yaml")
    if problem:
        assert spec is None and problem in problems[0][1]
    else:
        assert spec is not None and spec.aliases == ("k8s_conn", "kubernetes_default")


def test_sim_kubeconfig_dir_becomes_the_kubeconfig_the_simulator_wrote(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "apiVersion: podgate.io/v1\nkind: Cluster\nname: x\nprovider: sim\nregion: r\n"
        "credentials: {sim: {kubeconfigDir: /k}}\naliases: [conn]\n"
    )
    [cluster] = registration.clusters_of_file(path)
    assert cluster.credentials == {"sim": {"kubeconfigPath": "/k/x.kubeconfig"}}
    assert cluster.aliases == ("conn",)


def test_a_file_without_kind_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("apiVersion: podgate.io/v1\nname: x\n")
    with pytest.raises(CommandError, match="kind must be Cluster or ClusterList, got None"):
        registration.clusters_of_file(path)
