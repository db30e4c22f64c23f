"""PodgateHook: the `podgate` connection type -> ChannelSpec. Holds no channel (triggers need a picklable value)."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from gateway.client import ChannelSpec
from gateway.client.channel import DEFAULT_ADDRESS

DEFAULT_PORT = int(DEFAULT_ADDRESS.rsplit(":", 1)[1])


def channel_spec_of(host: str | None, port: int | None, password: str | None, extra: dict[str, Any]) -> ChannelSpec:
    """host may carry the port ("gw:50051") or a scheme ("grpc://gw"); the token is the password or
    extra.token; extra.ca_file / cert_file / key_file are paths on the worker."""
    host = (host or "").split("://", 1)[-1].strip("/")
    if not host:
        raise ValueError("the podgate connection has no host: set host (and port) to the gateway's address")
    if ":" in host and not host.endswith("]"):
        host, _, given = host.rpartition(":")
        port = port or int(given)
    return ChannelSpec(
        address=f"{host}:{port or DEFAULT_PORT}",
        ca_file=str(extra.get("ca_file") or ""),
        cert_file=str(extra.get("cert_file") or ""),
        key_file=str(extra.get("key_file") or ""),
        token=str(password or extra.get("token") or ""),
    )


class PodgateHook(BaseHook):
    """Reads a connection of type `podgate`, e.g. from
    AIRFLOW_CONN_PODGATE_DEFAULT='{"conn_type": "podgate", "host": "gw", "port": 50051, "extra": {"token": "…"}}'.
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
                "extra": '{"ca_file": "/etc/podgate/ca.pem", "cert_file": "", "key_file": "", "namespace": "default"}',
            },
        }
