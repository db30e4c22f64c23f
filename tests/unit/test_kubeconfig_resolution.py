"""Pure kubeconfig logic: proxy choice and NO_PROXY, KUBECONFIG list merging, impersonation headers,
auth-provider oidc parsing and id-token expiry."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from gateway.credentials.base import Endpoint, Impersonation
from gateway.credentials.kubeconfig_file import resolve_context
from gateway.credentials.kubeconfig_merge import absolutize, merge, split_path_list
from gateway.credentials.oidc import token_expiry
from gateway.credentials.proxy import bypasses, describe, proxy_for
from gateway.sim.impersonation import requested_extra

API = "https://api.corp.example:6443"


@pytest.mark.parametrize(
    ("url", "explicit", "environ", "expected"),
    [
        (API, "", {}, ""),
        (API, "", {"HTTPS_PROXY": "http://p:3128"}, "http://p:3128"),
        (API, "", {"https_proxy": "socks5://p:1080"}, "socks5://p:1080"),
        (API, "", {"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:1"}, "http://upper:1"),
        (API, "", {"HTTPS_PROXY": "p:3128"}, "http://p:3128"),  # bare host:port is http, as in Go
        (API, "", {"HTTP_PROXY": "http://p:3128"}, ""),  # an https URL never uses HTTP_PROXY
        (API, "socks5://k:1080", {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "*"}, "socks5://k:1080"),
        (API, "", {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "corp.example"}, ""),
        (API, "", {"HTTPS_PROXY": "http://p:1", "NO_PROXY": ".corp.example"}, ""),
        (API, "", {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "api.corp.example:6443"}, ""),
        (API, "", {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "api.corp.example:443"}, "http://p:1"),
        (API, "", {"HTTPS_PROXY": "http://p:1", "no_proxy": "other.example, corp.example"}, ""),
        (API, "", {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "xcorp.example"}, "http://p:1"),
        ("https://10.1.2.3:6443", "", {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "10.0.0.0/8"}, ""),
        ("https://11.1.2.3:6443", "", {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "10.0.0.0/8"}, "http://p:1"),
        ("https://[fd00::1]:6443", "", {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "fd00::/8"}, ""),
        ("https://127.0.0.1:6443", "", {"HTTPS_PROXY": "http://p:1"}, "http://p:1"),  # loopback is not exempt
    ],
)
def test_proxy_choice(url: str, explicit: str, environ: dict[str, str], expected: str) -> None:
    assert proxy_for(url, explicit, environ) == expected


@given(st.from_regex(r"[a-z]{1,8}(\.[a-z]{1,8}){0,3}", fullmatch=True), st.integers(1, 65535))
def test_a_star_or_the_host_itself_in_no_proxy_always_bypasses(host: str, port: int) -> None:
    url = f"https://{host}:{port}"
    assert bypasses(url, "*") and bypasses(url, host) and bypasses(url, f"other.example,{host}")
    assert not bypasses(url, "") and not bypasses(url, f"x{host}")


def test_proxy_credentials_never_show() -> None:
    assert describe("http://user:SECRETPW@proxy:3128") == "http://proxy:3128"
    with pytest.raises(ValueError, match="proxy-url scheme 'ftp'") as caught:
        Endpoint(server=API, proxy_url="ftp://user:SECRETPW@proxy:21")
    assert "SECRETPW" not in str(caught.value)


def test_impersonation_headers_repeat_groups_and_escape_extra_keys() -> None:
    impersonation = Impersonation(
        user="alice", uid="42", groups=("a", "b"), extra=(("reason.example.com/ticket", ("X 1", "Y")),)
    )
    assert impersonation.headers() == [
        ("Impersonate-User", "alice"),
        ("Impersonate-Uid", "42"),
        ("Impersonate-Group", "a"),
        ("Impersonate-Group", "b"),
        ("Impersonate-Extra-reason.example.com%2Fticket", "X 1"),
        ("Impersonate-Extra-reason.example.com%2Fticket", "Y"),
    ]


def doc(name: str, server: str, user: dict[str, Any], current: str = "") -> dict[str, Any]:
    return {
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority": "ca.pem"}}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": current,
    }


def test_merge_first_definition_and_first_current_context_win_with_paths_of_their_own_file() -> None:
    first = absolutize(doc("prod", "https://first", {"client-certificate": "c.crt", "client-key": "/abs/c.key"}), Path("/one"))
    second = absolutize(
        {**doc("prod", "https://second", {"token": "t"}, current="prod"), "users": [
            {"name": "prod", "user": {"token": "t"}},
            {"name": "dev", "user": {"exec": {"command": "./bin/plugin", "apiVersion": "v1"}}},
        ]},
        Path("/two"),
    )  # fmt: skip
    merged = merge([first, second])
    assert merged["current-context"] == "prod"
    assert [c["cluster"]["server"] for c in merged["clusters"]] == ["https://first"]
    assert merged["clusters"][0]["cluster"]["certificate-authority"] == "/one/ca.pem"
    users = {u["name"]: u["user"] for u in merged["users"]}
    assert users["prod"] == {"client-certificate": "/one/c.crt", "client-key": "/abs/c.key"}
    assert users["dev"]["exec"]["command"] == "/two/bin/plugin"
    resolved = resolve_context(merged, "", Path("/elsewhere"))
    assert resolved.client_cert_file == Path("/one/c.crt") and resolved.ca_file == Path("/one/ca.pem")


def test_path_lists_split_like_kubeconfig() -> None:
    assert split_path_list(f"/a{os.pathsep}{os.pathsep}~/b") == [Path("/a"), Path("~/b").expanduser()]


def oidc_user(**config: str) -> dict[str, Any]:
    base = {"idp-issuer-url": "https://issuer.example", "client-id": "k8s", "refresh-token": "r"}
    return {"auth-provider": {"name": "oidc", "config": {**base, **config}}}


def test_oidc_auth_provider_resolves_without_showing_secrets() -> None:
    kubeconfig = doc("c", "https://api", oidc_user(**{"client-secret": "SECRETPW", "idp-certificate-authority": "idp.pem"}), "c")
    resolved = resolve_context(absolutize(kubeconfig, Path("/kc")), "", Path("/"))
    assert resolved.oidc is not None and resolved.bearer
    assert resolved.oidc.ca_file == Path("/kc/idp.pem") and resolved.oidc.client_secret == "SECRETPW"
    assert "SECRETPW" not in repr(resolved)


def test_id_token_expiry_is_read_without_verification() -> None:
    token = jwt.encode({"exp": 2_000_000_000, "sub": "a"}, "any-key-of-the-issuer-0123456789abcdef", algorithm="HS256")
    expiry = token_expiry(token)
    assert expiry is not None and int(expiry.timestamp()) == 2_000_000_000
    assert token_expiry("not-a-jwt") is None


_TOKEN_CHARS = set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@given(
    st.dictionaries(
        st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Lu", "Lt")), min_size=1, max_size=20),
        st.lists(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=10), min_size=1, max_size=3),
        max_size=4,
    )
)
def test_impersonated_extras_survive_the_header_round_trip(extra: dict[str, list[str]]) -> None:
    """Whatever a kubeconfig's as-user-extra keys hold, the header names are legal HTTP tokens and the
    simulator (reading them as kube-apiserver does) recovers the same keys and values."""
    lowered = {k: v for k, v in extra.items() if k == k.lower()}
    impersonation = Impersonation(user="u", extra=tuple((k, tuple(v)) for k, v in lowered.items()))
    headers = CIMultiDict(impersonation.headers())
    assert all(set(name) <= _TOKEN_CHARS for name in headers)
    assert {k: list(v) for k, v in requested_extra(headers).items()} == lowered
