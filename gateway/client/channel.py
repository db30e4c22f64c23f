"""How to reach a gateway, as a small serialisable value (a gRPC channel cannot be pickled into a trigger).
`address` may list several replicas ("a:50051,b:50051") or name one DNS name with several addresses: gRPC
balances the calls over them and fails over (gateway/client/addresses.py)."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import grpc

from gateway.client.addresses import Target, is_grpc_target, parse_addresses, target_of

DEFAULT_PORT = 50051
DEFAULT_ADDRESS = f"127.0.0.1:{DEFAULT_PORT}"
# gRPC backs off reconnecting up to 120 s by default: after a long restart, calls would fail fast for
# minutes with the gateway already back. Reconnect at most 3 s apart (the retry policy paces the calls).
CHANNEL_OPTIONS = (("grpc.initial_reconnect_backoff_ms", 500), ("grpc.max_reconnect_backoff_ms", 3000))


@dataclass(frozen=True, kw_only=True)
class ChannelSpec:
    """Address(es) and TLS/token settings. `token` never appears in repr."""

    VERSION = 1

    address: str = DEFAULT_ADDRESS  # host:port, a comma-separated list of them, or a gRPC target (dns:///...)
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    token: str = field(default="", repr=False)
    tls: bool = False  # TLS with the system's trusted roots (implied by ca_file or cert_file)
    server_name: str = ""  # the name the server certificate must carry; default: the (first) address's host

    def __post_init__(self) -> None:
        if not is_grpc_target(self.address):
            parse_addresses(self.address, DEFAULT_PORT)  # a ValueError naming the bad entry, before any call

    @property
    def secure(self) -> bool:
        return bool(self.tls or self.ca_file or self.cert_file)

    def serialize(self) -> dict[str, Any]:
        data = asdict(self)
        if not self.server_name:
            del data["server_name"]  # so a trigger without it reads on a triggerer that predates the field
        return {"version": self.VERSION, **data}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> ChannelSpec:
        version = data.get("version", cls.VERSION)
        if version != cls.VERSION:
            raise ValueError(f"unsupported ChannelSpec version {version}; this client reads version {cls.VERSION}")
        return cls(**{k: v for k, v in data.items() if k != "version"})

    def _credentials(self) -> grpc.ChannelCredentials:
        def read(path: str) -> bytes | None:
            if not path:
                return None
            with open(path, "rb") as f:
                return f.read()

        return grpc.ssl_channel_credentials(read(self.ca_file), read(self.key_file), read(self.cert_file))

    def _call_credentials(self) -> grpc.CallCredentials | None:
        return grpc.access_token_call_credentials(self.token) if self.token else None

    def target(self) -> Target:
        """Looks up the names of a list of addresses (a single name is left to gRPC's resolver)."""
        return target_of(self.address, DEFAULT_PORT, self.server_name, _lookup)

    def aio_channel(self) -> grpc.aio.Channel:
        target = self.target()
        if not self.secure:
            return grpc.aio.insecure_channel(target.target, options=(*CHANNEL_OPTIONS, *target.options))
        creds = self._credentials()
        call = self._call_credentials()
        if call is not None:
            creds = grpc.composite_channel_credentials(creds, call)
        return grpc.aio.secure_channel(target.target, creds, options=(*CHANNEL_OPTIONS, *target.options))

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """Bearer token for plain-text loopback channels (call credentials need TLS)."""
        if self.token and not self.secure:
            return (("authorization", f"Bearer {self.token}"),)
        return ()


def _lookup(host: str) -> Sequence[str]:
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ValueError(f"gateway address {host!r}: {e.strerror}") from None
    return [str(info[4][0]) for info in infos]
