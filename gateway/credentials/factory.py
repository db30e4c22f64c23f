"""Building a cluster's CredentialProvider from its CredentialsRef (source + params)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from gateway.credentials import aks, eks, gke, in_cluster, kubeconfig, sim
from gateway.credentials.base import CredentialError, CredentialProvider
from gateway.credentials.params import Params
from gateway.domain import PROVIDERS, CredentialsRef


def build_provider(
    cluster_name: str,
    ref: CredentialsRef,
    *,
    kubeconfig_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> CredentialProvider:
    """A new provider for one cluster (never shared between clusters). Raises CredentialError on bad params.

    `kubeconfig_dir` is where the simulator wrote its kubeconfigs (for `sim` clusters); `environ` is the
    environment that env-var references are read from (default: the process's).
    """
    params = Params(cluster=cluster_name, source=ref.source, values=dict(ref.params))
    match ref.source:
        case "in-cluster":
            return in_cluster.from_params(params, environ)
        case "kubeconfig":
            return kubeconfig.from_params(params, environ)
        case "sim":
            return sim.from_params(params, kubeconfig_dir)
        case "eks":
            return eks.from_params(params)
        case "gke":
            return gke.from_params(params)
        case "aks":
            return aks.from_params(params, environ)
    raise CredentialError(
        f"cluster {cluster_name!r}: unknown credentials source {ref.source!r}; one of {sorted(PROVIDERS)}"
    )
