"""Which proxy a connection to an HTTPS URL goes through, and an aiohttp connector that goes through it.

A kubeconfig's `proxy-url` wins (client-go ignores NO_PROXY for it); otherwise `HTTPS_PROXY` /
`https_proxy` unless `NO_PROXY` / `no_proxy` exempts the host, like boto3, google-auth and
azure-identity in the same process. NO_PROXY entries are host names, domain suffixes (`.corp`,
`corp`), `host:port`, IP addresses, CIDR ranges (`10.0.0.0/8`, as Go reads them) or `*`. Unlike Go,
loopback addresses are not exempt by default: Python's HTTP libraries do not exempt them either.

http, https (TLS to the proxy) and socks5 proxies all go through aiohttp-socks (python-socks), so
the one connector serves plain requests, WebSocket upgrades and streams alike.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import proxy_bypass_environment  # type: ignore[attr-defined]  # stdlib, not in typeshed

import aiohttp
from aiohttp_socks import ProxyConnectionError, ProxyConnector, ProxyError, ProxyTimeoutError, ProxyType

from gateway.credentials import keepalive

_TYPES = {"http": ProxyType.HTTP, "https": ProxyType.HTTP, "socks5": ProxyType.SOCKS5}
_DEFAULT_PORTS = {"http": 80, "https": 443, "socks5": 1080}


def _env(environ: Mapping[str, str], name: str) -> str:
    return (environ.get(name.upper()) or environ.get(name.lower()) or "").strip()


def _in_cidr(host: str, entries: list[str]) -> bool:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    for entry in entries:
        try:
            if "/" in entry and address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def bypasses(url: str, no_proxy: str) -> bool:
    """Whether NO_PROXY exempts `url`'s host (pure)."""
    entries = [e.strip() for e in no_proxy.split(",") if e.strip()]
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not entries or not host:
        return False
    if "*" in entries or _in_cidr(host, entries):
        return True
    names = ",".join(e for e in entries if "/" not in e)
    return bool(names) and bool(proxy_bypass_environment(f"{host}:{parts.port or 443}", {"no": names}))


def proxy_for(url: str, explicit: str, environ: Mapping[str, str]) -> str:
    """The proxy URL for an https `url`, or "" to connect directly (pure)."""
    if explicit:
        return explicit
    proxy = _env(environ, "https_proxy")
    if not proxy or bypasses(url, _env(environ, "no_proxy")):
        return ""
    return proxy if "://" in proxy else f"http://{proxy}"  # Go reads a bare host:port as http


def describe(proxy: str) -> str:
    """A proxy URL without its credentials, for logs and errors."""
    parts = urlsplit(proxy)
    return f"{parts.scheme}://{parts.hostname}:{parts.port}" if parts.hostname else "<proxy>"


class _ProxyConnector(ProxyConnector):
    """aiohttp-socks' connector, whose failures (proxy refused, unreachable, timed out) surface as aiohttp's
    own ClientProxyConnectionError, so callers handle one error tree and know nothing was sent."""

    async def _wrap_create_connection(self, *args: Any, req: Any, **kwargs: Any) -> Any:
        try:
            transport, protocol = await super()._wrap_create_connection(*args, req=req, **kwargs)
        except (ProxyError, ProxyConnectionError, ProxyTimeoutError) as exc:
            raise aiohttp.ClientProxyConnectionError(req.connection_key, OSError(str(exc))) from exc
        sock = transport.get_extra_info("socket")  # python-socks made it, not our socket_factory
        if sock is not None:
            keepalive.enable(sock)
        return transport, protocol


def connector(ssl_context: ssl.SSLContext, proxy: str, *, proxy_ca: bytes = b"") -> aiohttp.TCPConnector:
    """A connector with no pool limit and TCP keepalive (to the server or the proxy), direct or through `proxy`.

    An https proxy's own certificate is verified against `proxy_ca` and the system trust store.
    """
    if not proxy:
        return aiohttp.TCPConnector(ssl=ssl_context, limit=0, socket_factory=keepalive.keepalive_socket)
    parts = urlsplit(proxy)
    if parts.scheme not in _TYPES or not parts.hostname:
        raise ValueError(f"unsupported proxy {describe(proxy)}; use one of {sorted(_TYPES)}")
    proxy_ssl = None
    if parts.scheme == "https":
        proxy_ssl = ssl.create_default_context()
        if proxy_ca:
            proxy_ssl.load_verify_locations(cadata=proxy_ca.decode())
    return _ProxyConnector(
        proxy_type=_TYPES[parts.scheme],
        host=parts.hostname,
        port=parts.port or _DEFAULT_PORTS[parts.scheme],
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        rdns=True,  # the proxy resolves the API server's name, as Go's SOCKS dialer lets it
        proxy_ssl=proxy_ssl,
        ssl=ssl_context,
        limit=0,
    )
