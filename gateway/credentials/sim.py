"""Provider for a simulated cluster: the kubeconfig the simulator wrote for it."""

from __future__ import annotations

from pathlib import Path

from gateway.credentials.kubeconfig import KubeconfigProvider
from gateway.credentials.params import Params

DEFAULT_KUBECONFIG_DIR = Path(".podgate/kubeconfigs")
KEYS = frozenset({"path", "kubeconfigDir", "context"})


def kubeconfig_path(cluster: str, kubeconfig_dir: Path = DEFAULT_KUBECONFIG_DIR) -> Path:
    """Where `podgate sim` writes a cluster's kubeconfig: <dir>/<cluster>.kubeconfig."""
    return kubeconfig_dir / f"{cluster}.kubeconfig"


def from_params(params: Params, kubeconfig_dir: Path | None = None) -> KubeconfigProvider:
    params.check_keys(KEYS)
    if params.get("path"):
        path = Path(params.get("path")).expanduser()
    else:
        directory = Path(params.get("kubeconfigDir")) if params.get("kubeconfigDir") else kubeconfig_dir
        path = kubeconfig_path(params.cluster, directory or DEFAULT_KUBECONFIG_DIR)
    return KubeconfigProvider(params.cluster, path=path, context=params.get("context"))
