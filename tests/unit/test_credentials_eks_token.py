"""EKS tokens: built as `aws eks get-token` builds them, judged as aws-iam-authenticator judges them.

Real SigV4 presigning (botocore, offline) against the simulator's verifier; no network.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import boto3
import pytest
from botocore.config import Config

from gateway.credentials.eks import TOKEN_PREFIX, encode_token, presign_token, register_cluster_header
from gateway.sim.auth import Identity
from gateway.sim.cloud.eks import AwsPrincipal, EksTokenVerifier, TokenRejected, canonical_arn, decode_token

KEY = AwsPrincipal("AKIAPODGATETEST00001", "CANARY-aws-secret-7d1e", "arn:aws:iam::123456789012:user/podgate")
ALICE = Identity("podgate", ("system:masters",))


def make_token(cluster: str = "prod", region: str = "eu-west-1") -> str:
    sts = boto3.client(
        "sts",
        region_name=region,
        aws_access_key_id=KEY.access_key_id,
        aws_secret_access_key=KEY.secret_access_key,
        config=Config(ignore_configured_endpoint_urls=True),
    )
    register_cluster_header(sts)
    return presign_token(sts, cluster)


def edit(token: str, change: Callable[[dict[str, str]], None], host: str = "") -> str:
    parts = urlsplit(decode_token(token))
    query = dict(parse_qsl(parts.query))
    change(query)
    return encode_token(urlunsplit((parts.scheme, host or parts.netloc, parts.path, urlencode(query), "")))


def verifier(cluster: str = "prod", clock: Callable[[], float] = time.time) -> EksTokenVerifier:
    keys = {KEY.access_key_id: KEY}
    return EksTokenVerifier(cluster, keys.get, {KEY.arn: ALICE}, clock=clock)


def test_token_shape_matches_aws_eks_get_token() -> None:
    token = make_token()
    assert token.startswith(TOKEN_PREFIX) and "=" not in token
    url = urlsplit(decode_token(token))
    query = dict(parse_qsl(url.query))
    assert url.netloc == "sts.eu-west-1.amazonaws.com"
    assert query["Action"] == "GetCallerIdentity"
    assert query["X-Amz-Expires"] == "60"
    assert query["X-Amz-SignedHeaders"] == "host;x-k8s-aws-id"
    assert base64.urlsafe_b64decode(token[len(TOKEN_PREFIX) :] + "==").decode().startswith("https://sts.")


def test_valid_token_maps_to_identity() -> None:
    assert verifier()(make_token()) == ALICE


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda t: make_token(cluster="other"), "signature does not match"),
        (lambda t: edit(t, lambda q: q.update({"X-Amz-Signature": "0" * 64})), "signature does not match"),
        (lambda t: edit(t, lambda q: q.update({"Action": "AssumeRole"})), "not GetCallerIdentity"),
        (lambda t: edit(t, lambda q: q.update({"X-Amz-SignedHeaders": "host"})), "not among the signed headers"),
        (lambda t: edit(t, lambda q: q.update({"X-Amz-Expires": "3600"})), "outside 0..900"),
        (lambda t: edit(t, lambda q: q.update({"Evil": "1"})), "'Evil' is not allowed"),
        (lambda t: edit(t, lambda q: None, host="sts.evil.example.com"), "not an STS endpoint"),
        (lambda t: edit(t, lambda q: None, host="127.0.0.1:9"), "not an STS endpoint"),
        (
            lambda t: edit(
                t,
                lambda q: q.update(
                    {"X-Amz-Credential": q["X-Amz-Credential"].replace("AKIAPODGATETEST00001", "AKIAUNKNOWN")}
                ),
            ),
            "unknown access key",
        ),
        (lambda t: "k8s-aws-v1.%%%", "not base64url"),
        (lambda t: "k8s-aws-v1." + "A" * 5000, "too large"),
    ],
)
def test_bad_tokens_are_refused(mutate: Callable[[str], str], reason: str) -> None:
    v = verifier()
    token = mutate(make_token())
    assert v(token) is None
    with pytest.raises(TokenRejected, match=reason):
        v.verify(token)


@pytest.mark.parametrize(("age", "accepted"), [(14 * 60 + 50, True), (15 * 60 + 10, False)])
def test_token_validity_is_15_minutes_after_signing(age: float, accepted: bool) -> None:
    signed = time.time()
    token = make_token()
    v = verifier(clock=lambda: signed + age)
    assert (v(token) == ALICE) is accepted


def test_unmapped_principal_is_refused() -> None:
    keys = {KEY.access_key_id: KEY}
    v = EksTokenVerifier("prod", keys.get, {})
    assert v(make_token()) is None
    assert "not mapped" in v.last_rejection


@pytest.mark.parametrize(
    ("arn", "canonical"),
    [
        ("arn:aws:sts::123456789012:assumed-role/deployer/podgate-c1", "arn:aws:iam::123456789012:role/deployer"),
        ("arn:aws:iam::123456789012:user/alice", "arn:aws:iam::123456789012:user/alice"),
    ],
)
def test_assumed_role_arns_are_canonicalised(arn: str, canonical: str) -> None:
    assert canonical_arn(arn) == canonical


def test_secret_never_in_reprs() -> None:
    assert KEY.secret_access_key not in repr(KEY)
