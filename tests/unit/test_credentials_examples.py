"""Every clusters/examples/ file is a valid registration whose credentials build a provider."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.clusters.files import load_files
from gateway.credentials.factory import build_provider

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "clusters" / "examples").glob("*.yaml"))


def test_one_example_per_provider() -> None:
    assert {p.stem for p in EXAMPLES} == {"eks", "gke", "aks", "kubeconfig", "in-cluster", "sim"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
async def test_example_loads_and_builds_a_provider(path: Path) -> None:
    result = load_files([path], check=None)
    assert result.errors == ()
    [spec] = result.clusters
    assert spec.provider == path.stem == spec.credentials.source
    provider = build_provider(spec.name, spec.credentials, environ={"PODGATE_AKS_CLIENT_SECRET": "x"})
    assert provider.cluster == spec.name
    await provider.close()
