"""AWS stand-in: moto in server mode (EKS and STS), plus what the simulated EKS cluster must know.

moto's EKS has no way to say where a cluster's API server is, so `create_eks_cluster` creates the
cluster through the EKS API and then sets the endpoint and CA on moto's own record of it: the stand-in
is configured, no SDK is touched. `principal` tells the simulator's EKS verifier the secret of an
access key, as STS would know it: the keys the test declared, and the temporary keys moto's
AssumeRole handed out.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager

import boto3
from moto.core import DEFAULT_ACCOUNT_ID
from moto.eks.models import eks_backends
from moto.server import ThreadedMotoServer
from moto.sts.models import sts_backends

from gateway.sim.cloud.eks import AwsPrincipal

ACCOUNT = DEFAULT_ACCOUNT_ID


class AwsStandin:
    def __init__(self, url: str) -> None:
        self.url = url
        self._keys: dict[str, AwsPrincipal] = {}

    def add_key(self, access_key_id: str, secret_access_key: str, arn: str) -> AwsPrincipal:
        principal = AwsPrincipal(access_key_id, secret_access_key, arn)
        self._keys[access_key_id] = principal
        return principal

    def principal(self, access_key_id: str) -> AwsPrincipal | None:
        """The owner of an access key: a declared key, or a session moto's STS issued."""
        if access_key_id in self._keys:
            return self._keys[access_key_id]
        for partition in sts_backends[ACCOUNT].values():
            for role in partition.assumed_roles:
                if role.access_key_id == access_key_id:
                    return AwsPrincipal(role.access_key_id, role.secret_access_key, role.arn, role.session_token)
        return None

    def client(self, service: str, region: str) -> object:
        return boto3.client(
            service, region_name=region, endpoint_url=self.url, aws_access_key_id="admin", aws_secret_access_key="admin"
        )

    def create_eks_cluster(self, name: str, region: str, *, server: str, ca_pem: bytes) -> None:
        """Creates the cluster through the EKS API (once per name), then points it at `server`."""
        if name not in eks_backends[ACCOUNT][region].clusters:
            self.client("eks", region).create_cluster(  # type: ignore[attr-defined]
                name=name,
                roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks-service",
                resourcesVpcConfig={"subnetIds": ["subnet-1"]},
            )
        record = eks_backends[ACCOUNT][region].clusters[name]
        record.endpoint = server
        record.certificate_authority = {"data": base64.b64encode(ca_pem).decode()}


@contextmanager
def moto_server() -> Iterator[AwsStandin]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield AwsStandin(f"http://{host}:{port}")
    finally:
        server.stop()
