"""Forward proxies on 127.0.0.1 that remember every tunnel they opened: HTTP CONNECT (plain or over TLS)
and SOCKS5, served by tiny-proxy (the proxy server from python-socks' author), so a test can assert
that traffic really went through the proxy and to which host:port.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
from anyio.streams.tls import TLSListener
from tiny_proxy import HttpProxy, HttpProxyHandler, Socks5Proxy, Socks5ProxyHandler

Kind = Literal["http", "https", "socks5"]


@dataclass
class RecordingProxy:
    url: str = ""
    tunnels: list[tuple[str, int]] = field(default_factory=list)  # (host, port) of each CONNECT, in order

    def saw(self, host: str, port: int) -> bool:
        return (host, port) in self.tunnels


def _handler(kind: Kind, log: list[tuple[str, int]]) -> Any:
    """tiny-proxy's handler for `kind`, whose proxies append each negotiated (host, port) to `log`."""
    handler_class, proxy_class = (Socks5ProxyHandler, Socks5Proxy) if kind == "socks5" else (HttpProxyHandler, HttpProxy)

    class Recording(proxy_class):  # type: ignore[misc, valid-type]
        async def negotiate(self) -> tuple[str, int]:
            host, port = await super().negotiate()
            log.append((host, int(port)))
            return host, port

    class Handler(handler_class):  # type: ignore[misc, valid-type]
        def create_proxy(self, stream: Any) -> Any:
            return Recording(stream=stream, username=None, password=None)

    return Handler()


@asynccontextmanager
async def forward_proxy(kind: Kind, *, tls: ssl.SSLContext | None = None) -> AsyncIterator[RecordingProxy]:
    """A proxy of `kind` on 127.0.0.1 (an `https` proxy needs `tls`, its server context) while in use."""
    proxy = RecordingProxy()
    handler = _handler(kind, proxy.tunnels)
    listener: Any = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610 (anyio, not Django)
    if kind == "https":
        assert tls is not None, "an https proxy needs a server TLS context"
        listener = TLSListener(listener, tls, standard_compatible=False)
    proxy.url = f"{kind}://127.0.0.1:{port}"
    serving = asyncio.create_task(listener.serve(handler.handle))
    try:
        yield proxy
    finally:
        serving.cancel()
        with suppress(asyncio.CancelledError):
            await serving
        await listener.aclose()
