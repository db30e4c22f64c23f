"""Provider for the cluster the gateway runs in: the mounted ServiceAccount token, CA and namespace.

The kubelet rotates projected ServiceAccount tokens by replacing the file (atomic symlink swap), so
each `token()` compares the file's identity (inode, mtime, size) with the one read last and re-reads
it when it changed; a 401 (`force_refresh`) re-reads it unconditionally.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path

from gateway.credentials.base import BearerToken, CredentialError, Endpoint
from gateway.credentials.params import Params

DEFAULT_TOKEN_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
KEYS = frozenset({"tokenDir"})

FileStamp = tuple[int, int, int, int]


def server_url(environ: Mapping[str, str]) -> str:
    """https://host:port from KUBERNETES_SERVICE_HOST/PORT, bracketing IPv6 literals."""
    host = environ.get("KUBERNETES_SERVICE_HOST", "")
    port = environ.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise CredentialError("in-cluster credentials need KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"https://{host}:{port}"


def _stamp(path: Path) -> FileStamp:
    st = path.stat()  # follows the kubelet's ..data symlink
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


class InClusterProvider:
    def __init__(self, cluster: str, *, token_dir: Path = DEFAULT_TOKEN_DIR, environ: Mapping[str, str] | None = None):
        self._cluster = cluster
        self._dir = token_dir
        self._environ = dict(os.environ if environ is None else environ)
        self._token: BearerToken | None = None
        self._stamp: FileStamp | None = None
        self._lock = asyncio.Lock()
        self.reads = 0  # token file reads, for tests

    def __repr__(self) -> str:
        return f"InClusterProvider(cluster={self._cluster!r}, token_dir={str(self._dir)!r})"

    @property
    def cluster(self) -> str:
        return self._cluster

    async def endpoint(self, *, stale: Endpoint | None = None) -> Endpoint:
        """Read afresh on every call: the mounted ca.crt changes when the cluster's CA rotates."""
        server = server_url(self._environ)
        try:
            ca = await asyncio.to_thread((self._dir / "ca.crt").read_bytes)
        except OSError as exc:
            raise CredentialError(
                f"cluster {self._cluster!r}: cannot read {self._dir / 'ca.crt'}: {exc.strerror}"
            ) from None
        return Endpoint(server=server, ca_data=ca)

    async def namespace(self) -> str:
        try:
            return (await asyncio.to_thread((self._dir / "namespace").read_text)).strip() or "default"
        except OSError:
            return "default"

    async def token(self, *, force_refresh: bool = False) -> BearerToken | None:
        path = self._dir / "token"
        async with self._lock:
            try:
                stamp = _stamp(path)
                if force_refresh or self._token is None or stamp != self._stamp:
                    value = (await asyncio.to_thread(path.read_text)).strip()
                    self.reads += 1
                    self._token, self._stamp = BearerToken(value=value), stamp
            except OSError as exc:
                raise CredentialError(f"cluster {self._cluster!r}: cannot read {path}: {exc.strerror}") from None
            if not self._token.value:
                raise CredentialError(f"cluster {self._cluster!r}: ServiceAccount token file {path} is empty")
            return self._token

    async def close(self) -> None:
        self._token = None


def from_params(params: Params, environ: Mapping[str, str] | None = None) -> InClusterProvider:
    params.check_keys(KEYS)
    token_dir = Path(params.get("tokenDir") or str(DEFAULT_TOKEN_DIR))
    return InClusterProvider(params.cluster, token_dir=token_dir, environ=environ)
