"""How to reach a gateway, as a small serialisable value (a gRPC channel cannot be pickled into a trigger)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import grpc

DEFAULT_ADDRESS = "127.0.0.1:50051"
# gRPC backs off reconnecting up to 120 s by default: after a long restart, calls would fail fast for
# minutes with the gateway already back. Reconnect at most 3 s apart (the retry policy paces the calls).
CHANNEL_OPTIONS = (("grpc.initial_reconnect_backoff_ms", 500), ("grpc.max_reconnect_backoff_ms", 3000))


@dataclass(frozen=True, kw_only=True)
class ChannelSpec:
    """Address and TLS/token settings. `token` never appears in repr."""

    VERSION = 1

    address: str = DEFAULT_ADDRESS
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    token: str = field(default="", repr=False)
    tls: bool = False  # TLS with the system's trusted roots (implied by ca_file or cert_file)

    @property
    def secure(self) -> bool:
        return bool(self.tls or self.ca_file or self.cert_file)

    def serialize(self) -> dict[str, Any]:
        return {"version": self.VERSION, **asdict(self)}

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

    def aio_channel(self) -> grpc.aio.Channel:
        if not self.secure:
            return grpc.aio.insecure_channel(self.address, options=CHANNEL_OPTIONS)
        creds = self._credentials()
        call = self._call_credentials()
        if call is not None:
            creds = grpc.composite_channel_credentials(creds, call)
        return grpc.aio.secure_channel(self.address, creds, options=CHANNEL_OPTIONS)

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """Bearer token for plain-text loopback channels (call credentials need TLS)."""
        if self.token and not self.secure:
            return (("authorization", f"Bearer {self.token}"),)
        return ()
