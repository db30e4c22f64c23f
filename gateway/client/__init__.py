"""Python client for the gateway: used by the CLI and the Airflow operator. Needs grpcio + protobuf only."""

from gateway.client.channel import ChannelSpec

__all__ = ["ChannelSpec"]
