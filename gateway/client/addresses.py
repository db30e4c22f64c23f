"""Gateway addresses as callers write them ("gw:50051", "a:50051,b:50051", "dns:///gw:50051") -> one gRPC
target that gRPC itself balances and fails over (docs/decisions/0025-client-failover-in-grpc.md). Pure: the
one lookup a list of host names needs is passed in."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Target schemes gRPC resolves itself: such an address is used as written.
GRPC_SCHEMES = ("dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:")
# round_robin keeps a connection to every address and sends each call over a READY one, so a dead replica
# only costs the calls in flight on it; healthCheckConfig skips a replica whose grpc.health.v1 says
# NOT_SERVING (a gateway draining after SIGTERM) before its listener closes.
SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName": ""}})

# host -> its IP addresses (both families as the resolver returns them)
Lookup = Callable[[str], Sequence[str]]


@dataclass(frozen=True)
class GatewayAddress:
    host: str  # a name or an IP literal, without brackets
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Target:
    """What grpc.aio.*_channel takes: the target and the channel options it needs."""

    target: str
    options: tuple[tuple[str, str], ...]


def is_grpc_target(address: str) -> bool:
    return address.strip().startswith(GRPC_SCHEMES)


def parse_endpoint(text: str, default_port: int) -> GatewayAddress:
    """"host:port", "host", "[v6]:port", "[v6]" or a bare IPv6 literal; the port defaults."""
    item = text.strip()
    if not item:
        raise ValueError("an empty gateway address")
    if any(c.isspace() for c in item) or "/" in item:
        raise ValueError(f"gateway address {item!r}: expected host:port")
    host, port = item, ""
    if item.startswith("["):
        host, sep, rest = item[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"gateway address {item!r}: expected [ipv6]:port")
        port = rest[1:] if rest else ""
        _ip(host, item)
    elif item.count(":") == 1:
        host, _, port = item.partition(":")
    elif ":" in item:
        _ip(item, item)  # a bare IPv6 literal, no port
    if not host:
        raise ValueError(f"gateway address {item!r} has no host")
    if port == "" and item.endswith(":"):
        raise ValueError(f"gateway address {item!r} has an empty port")
    if not port:
        return GatewayAddress(host, default_port)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"gateway address {item!r}: the port must be 1..65535")
    return GatewayAddress(host, int(port))


def _ip(host: str, item: str) -> None:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        raise ValueError(f"gateway address {item!r}: {host!r} is not an IPv6 address (names take host:port)") from None


def parse_addresses(address: str, default_port: int) -> tuple[GatewayAddress, ...]:
    """A comma-separated list of endpoints, in order, without repeats."""
    endpoints: list[GatewayAddress] = []
    for part in address.split(","):
        endpoint = parse_endpoint(part, default_port)
        if endpoint not in endpoints:
            endpoints.append(endpoint)
    return tuple(endpoints)


def _family(host: str) -> int | None:
    try:
        return ipaddress.ip_address(host).version
    except ValueError:
        return None


def target_of(address: str, default_port: int, server_name: str, lookup: Lookup) -> Target:
    """One address (a name resolving to several replicas included) stays a plain target for gRPC's DNS
    resolver, which re-resolves on reconnect; a list becomes an ipv4:/ipv6: target (names in it looked up
    once, here). TLS checks the certificate against `server_name`, else the first listed host, the name a
    certificate shared by the replicas carries."""
    options: list[tuple[str, str]] = [("grpc.service_config", SERVICE_CONFIG)]
    if is_grpc_target(address):
        target = address.strip()
    else:
        endpoints = parse_addresses(address, default_port)
        if len(endpoints) == 1:
            target = str(endpoints[0])
        else:
            target = _list_target(endpoints, lookup)
            server_name = server_name or endpoints[0].host
            options.append(("grpc.default_authority", str(GatewayAddress(server_name, endpoints[0].port))))
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return Target(target, tuple(options))


def _list_target(endpoints: Sequence[GatewayAddress], lookup: Lookup) -> str:
    """ipv4:a:p,b:p (or ipv6:[a]:p,...): gRPC takes one family per target, so IPv4 unless an endpoint has
    only IPv6 addresses."""
    resolved: list[list[tuple[int, str, int]]] = []
    for endpoint in endpoints:
        hosts = [endpoint.host] if _family(endpoint.host) else list(dict.fromkeys(lookup(endpoint.host)))
        found = [(v, h, endpoint.port) for h in hosts if (v := _family(h))]
        if not found:
            raise ValueError(f"gateway address {endpoint}: the name resolves to no address")
        resolved.append(found)
    for version in (4, 6):
        if all(any(v == version for v, _, _ in found) for found in resolved):
            picked = [str(GatewayAddress(h, p)) for found in resolved for v, h, p in found if v == version]
            return f"ipv{version}:" + ",".join(dict.fromkeys(picked))
    listed = ", ".join(str(e) for e in endpoints)
    raise ValueError(f"gateway addresses {listed}: gRPC needs them all reachable over IPv4 or all over IPv6")
