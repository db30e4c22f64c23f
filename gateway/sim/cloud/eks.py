"""EKS-style authentication: verify `k8s-aws-v1.` tokens as aws-iam-authenticator does, offline.

The real authenticator forwards the presigned URL to STS; here the simulator recomputes the SigV4
signature with botocore against the access keys it knows (the cloud stand-in's), which refuses the same
tokens: wrong cluster name (the signed x-k8s-aws-id header differs), tampered signature, unknown key,
expired URL (15 minutes after X-Amz-Date, whatever X-Amz-Expires says, like the authenticator).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import percent_encode_sequence

from gateway.sim.auth import Identity

TOKEN_PREFIX = "k8s-aws-v1."  # noqa: S105 (a format prefix, not a secret)
CLUSTER_ID_HEADER = "x-k8s-aws-id"
MAX_TOKEN_BYTES = 4096
VALIDITY_SECONDS = 15 * 60
ALLOWED_PARAMS = frozenset(
    {
        "action",
        "version",
        "x-amz-algorithm",
        "x-amz-credential",
        "x-amz-date",
        "x-amz-expires",
        "x-amz-security-token",
        "x-amz-signature",
        "x-amz-signedheaders",
    }
)
STS_HOST = re.compile(r"^sts(-fips)?(\.[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d)?\.amazonaws\.com(\.cn)?$")
_ASSUMED_ROLE = re.compile(r"^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([^/]+)/.+$")


class TokenRejected(ValueError):
    """Why a token was refused (for the simulator's logs; the caller only sees 401)."""


@dataclass(frozen=True)
class AwsPrincipal:
    """An access key the stand-in issued, and whose it is."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    arn: str
    session_token: str = field(default="", repr=False)


KeyLookup = Callable[[str], AwsPrincipal | None]


def canonical_arn(arn: str) -> str:
    """arn:aws:sts::ACCT:assumed-role/ROLE/SESSION -> arn:aws:iam::ACCT:role/ROLE (as the authenticator maps roles)."""
    m = _ASSUMED_ROLE.match(arn)
    return f"arn:{m[1]}:iam::{m[2]}:role/{m[3]}" if m else arn


def decode_token(token: str) -> str:
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenRejected("token is too large")
    if not token.startswith(TOKEN_PREFIX):
        raise TokenRejected(f"token lacks the {TOKEN_PREFIX!r} prefix")
    body = token[len(TOKEN_PREFIX) :]
    try:
        return base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise TokenRejected("token is not base64url") from None


def _query(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise TokenRejected(f"unexpected scheme {parts.scheme!r}")
    if not STS_HOST.match(parts.hostname or "") or parts.port is not None:
        raise TokenRejected(f"unexpected host {parts.netloc!r}: not an STS endpoint")
    if parts.path != "/":
        raise TokenRejected("unexpected path")
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query: dict[str, str] = {}
    for key, value in pairs:
        if key.lower() not in ALLOWED_PARAMS:
            raise TokenRejected(f"query parameter {key!r} is not allowed")
        if key in query:
            raise TokenRejected(f"query parameter {key!r} is repeated")
        query[key] = value
    return query


class EksTokenVerifier:
    """A verifier for one simulated cluster playing the EKS cluster `cluster_name`.

    `users` maps canonical IAM ARNs to simulator identities (aws-auth's mapUsers/mapRoles); a valid
    token of an unmapped principal is refused, as EKS does.
    """

    def __init__(
        self,
        cluster_name: str,
        keys: KeyLookup,
        users: Mapping[str, Identity],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cluster_name = cluster_name
        self._keys = keys
        self._users = dict(users)
        self._clock = clock
        self.last_rejection = ""

    def __call__(self, token: str) -> Identity | None:
        if not token.startswith(TOKEN_PREFIX):
            return None
        try:
            principal = self.verify(token)
        except TokenRejected as exc:
            self.last_rejection = str(exc)
            return None
        identity = self._users.get(canonical_arn(principal.arn))
        if identity is None:
            self.last_rejection = f"{canonical_arn(principal.arn)} is not mapped to a Kubernetes identity"
        return identity

    def verify(self, token: str) -> AwsPrincipal:
        """The principal that signed `token`, or TokenRejected saying why not."""
        url = decode_token(token)
        query = _query(url)
        lower = {k.lower(): v for k, v in query.items()}
        if lower.get("action") != "GetCallerIdentity":
            raise TokenRejected("action is not GetCallerIdentity")
        signed = lower.get("x-amz-signedheaders", "").split(";")
        if CLUSTER_ID_HEADER not in signed:
            raise TokenRejected(f"{CLUSTER_ID_HEADER} is not among the signed headers")
        if set(signed) - {"host", CLUSTER_ID_HEADER}:
            raise TokenRejected(f"unexpected signed headers {signed}")
        self._check_time(lower)
        credential = lower.get("x-amz-credential", "").split("/")
        if len(credential) != 5 or credential[3:] != ["sts", "aws4_request"]:
            raise TokenRejected("malformed X-Amz-Credential")
        principal = self._keys(credential[0])
        if principal is None:
            raise TokenRejected("unknown access key")
        if principal.session_token != lower.get("x-amz-security-token", ""):
            raise TokenRejected("security token does not match the access key")
        expected = _signature(url, query, principal, region=credential[2], cluster_name=self.cluster_name)
        if not hmac.compare_digest(expected, lower.get("x-amz-signature", "")):
            raise TokenRejected("signature does not match (tampered, or signed for another cluster)")
        return principal

    def _check_time(self, lower: Mapping[str, str]) -> None:
        try:
            expires = int(lower.get("x-amz-expires", ""))
            signed_at = datetime.strptime(lower.get("x-amz-date", ""), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise TokenRejected("malformed X-Amz-Expires or X-Amz-Date") from None
        if not 0 <= expires <= VALIDITY_SECONDS:
            raise TokenRejected(f"X-Amz-Expires {expires} is outside 0..{VALIDITY_SECONDS}")
        if self._clock() > signed_at.timestamp() + VALIDITY_SECONDS:
            raise TokenRejected("presigned URL has expired")


def _signature(url: str, query: Mapping[str, str], principal: AwsPrincipal, *, region: str, cluster_name: str) -> str:
    """Recompute the SigV4 query signature with the header value this cluster expects."""
    unsigned = {k: v for k, v in query.items() if k.lower() != "x-amz-signature"}
    parts = urlsplit(url)
    request = AWSRequest(
        method="GET",
        url=urlunsplit((parts.scheme, parts.netloc, parts.path, percent_encode_sequence(unsigned), "")),
        headers={CLUSTER_ID_HEADER: cluster_name},
    )
    lower = {k.lower(): v for k, v in query.items()}
    request.context["timestamp"] = lower["x-amz-date"]
    creds = Credentials(principal.access_key_id, principal.secret_access_key, principal.session_token or None)
    signer = SigV4QueryAuth(creds, "sts", region, expires=int(lower["x-amz-expires"]))
    canonical = signer.canonical_request(request)
    return str(signer.signature(signer.string_to_sign(request, canonical), request))
