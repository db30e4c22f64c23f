"""TCP keepalive on every API server connection, as client-go's dialer sets it (30 s idle, then a probe
every 15 s): a peer that vanished (node gone, NAT entry expired, cable pulled) fails a watch, log
stream or exec after about two minutes instead of hanging until the OS gives up hours later.

Keepalive sees a dead peer only; a middlebox that still ACKs but forwards nothing is caught by the
client's read deadlines (`Timeouts.watch_inactivity`, `Timeouts.log_inactivity`).
"""

from __future__ import annotations

import socket
from typing import Any

IDLE_SECONDS = 30
INTERVAL_SECONDS = 15


def enable(sock: Any) -> None:
    """Keepalive on a connected or unconnected TCP socket (a `socket.socket` or asyncio's TransportSocket).
    The idle and interval options exist on Linux and macOS (TCP_KEEPALIVE there); elsewhere only the switch."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    idle = getattr(socket, "TCP_KEEPIDLE", None) or getattr(socket, "TCP_KEEPALIVE", None)
    if idle is not None:
        sock.setsockopt(socket.IPPROTO_TCP, idle, IDLE_SECONDS)
    if hasattr(socket, "TCP_KEEPINTVL"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, INTERVAL_SECONDS)


def keepalive_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """aiohttp's `socket_factory`: the socket aiohttp would make, with keepalive on."""
    family, kind, proto, *_ = addr_info
    sock = socket.socket(family=family, type=kind, proto=proto)
    enable(sock)
    return sock
