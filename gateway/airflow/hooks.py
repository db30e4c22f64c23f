"""PodgateHook: the `podgate` connection type -> ChannelSpec. Holds no channel (triggers need a picklable value)."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from gateway.client import ChannelSpec
from gateway.client.addresses import is_grpc_target, parse_endpoint
from gateway.client.channel import DEFAULT_PORT


def channel_spec_of(host: str | None, port: int | None, password: str | None, extra: dict[str, Any]) -> ChannelSpec:
    """host may carry the port ("gw:50051"), a scheme ("grpc://gw") or several replicas ("a:50051,b:50051";
    extra.addresses, a list or a comma-separated string, adds more); the connection's port applies to entries
    without one. The token is the password or extra.token; extra.ca_file / cert_file / key_file are paths on
    the worker; extra.server_name is the name the gateway's certificate carries when it is not the host."""
    listed = extra.get("addresses") or []
    entries = [*(host or "").split(","), *(listed.split(",") if isinstance(listed, str) else map(str, listed))]
    addresses = [_address(entry, port) for entry in entries if entry.strip()]
    if not addresses:
        raise ValueError("the podgate connection has no host: set host (and port) to the gateway's address")
    return ChannelSpec(
        address=",".join(addresses),
        ca_file=str(extra.get("ca_file") or ""),
        cert_file=str(extra.get("cert_file") or ""),
        key_file=str(extra.get("key_file") or ""),
        token=str(password or extra.get("token") or ""),
        server_name=str(extra.get("server_name") or ""),
    )


def _address(entry: str, port: int | None) -> str:
    if is_grpc_target(entry):
        return entry.strip()  # a gRPC target (dns:///name:port): used as written
    host = entry.strip().split("://", 1)[-1].strip("/")
    try:
        endpoint = parse_endpoint(host, port or DEFAULT_PORT)
    except ValueError as e:
        raise ValueError(f"the podgate connection's host: {e}") from None
    return str(endpoint)


class PodgateHook(BaseHook):
    """Reads a connection of type `podgate`, e.g. from
    AIRFLOW_CONN_PODGATE_DEFAULT='{"conn_type": "podgate", "host": "gw", "port": 50051, "extra": {"token": "…"}}'
    (host "gw-0:50051,gw-1:50051" or extra.addresses for several replicas, with failover).
    extra.namespace sets the default namespace for pods."""

    conn_name_attr = "podgate_conn_id"
    default_conn_name = "podgate_default"
    conn_type = "podgate"
    hook_name = "Podgate"

    def __init__(self, podgate_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.podgate_conn_id = podgate_conn_id

    def _extra(self) -> tuple[Any, dict[str, Any]]:
        conn = self.get_connection(self.podgate_conn_id)
        return conn, dict(conn.extra_dejson or {})

    def channel_spec(self) -> ChannelSpec:
        conn, extra = self._extra()
        return channel_spec_of(conn.host, conn.port, conn.password, extra)

    def default_namespace(self) -> str:
        return str(self._extra()[1].get("namespace") or "default")

    def link_template(self) -> str:
        return str(self._extra()[1].get("pod_link") or "")

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["schema", "login"],
            "relabeling": {"password": "Token", "host": "Gateway host"},
            "placeholders": {
                "port": str(DEFAULT_PORT),
                "extra": '{"ca_file": "/etc/podgate/ca.pem", "addresses": [], "server_name": "", "namespace": "default"}',
            },
        }
