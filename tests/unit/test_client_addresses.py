"""Gateway addresses -> one gRPC target (gateway/client/addresses.py): table-driven and property tests."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.client.addresses import GatewayAddress, parse_addresses, parse_endpoint, target_of
from gateway.client.channel import ChannelSpec

HOSTS = {"gw-a": ["10.0.0.1", "fd00::1"], "gw-b": ["10.0.0.2"], "v6only": ["fd00::9"], "none": []}


def lookup(host: str) -> list[str]:
    return HOSTS[host]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gw:1", GatewayAddress("gw", 1)),
        ("gw", GatewayAddress("gw", 50051)),
        (" gw:65535 ", GatewayAddress("gw", 65535)),
        ("[::1]:7", GatewayAddress("::1", 7)),
        ("[::1]", GatewayAddress("::1", 50051)),
        ("::1", GatewayAddress("::1", 50051)),
        ("127.0.0.1:9", GatewayAddress("127.0.0.1", 9)),
    ],
)
def test_endpoints(text: str, expected: GatewayAddress) -> None:
    assert parse_endpoint(text, 50051) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("gw:", "empty port"),
        ("gw:0", "1..65535"),
        ("gw:65536", "1..65535"),
        ("gw:x", "1..65535"),
        (":1", "no host"),
        ("g w:1", "host:port"),
        ("grpc://gw:1", "host:port"),
        ("[gw]:1", "not an IPv6"),
        ("[::1]x", "[ipv6]:port"),
        ("a:b:c", "not an IPv6"),
    ],
)
def test_bad_endpoints_name_the_entry(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace(".", r"\.")):
        parse_endpoint(text, 50051)


def test_a_list_keeps_order_and_drops_repeats() -> None:
    assert parse_addresses("b:1, a:2,b:1", 9) == (GatewayAddress("b", 1), GatewayAddress("a", 2))
    with pytest.raises(ValueError, match="empty"):
        parse_addresses("a:1,,b:1", 9)


def options(target: object) -> dict[str, object]:
    return dict(target.options)  # type: ignore[attr-defined]


def test_one_address_is_left_to_grpcs_resolver() -> None:
    target = target_of("gw-a:5", 50051, "", lookup)
    assert target.target == "gw-a:5"
    config = json.loads(str(options(target)["grpc.service_config"]))
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    assert "grpc.ssl_target_name_override" not in options(target)
    assert target_of("dns:///gw-a:5", 50051, "", lookup).target == "dns:///gw-a:5"


def test_a_list_of_names_is_looked_up_and_checked_against_the_first_name() -> None:
    target = target_of("gw-a:5,gw-b:6", 50051, "", lookup)
    assert target.target == "ipv4:10.0.0.1:5,10.0.0.2:6"
    assert options(target)["grpc.ssl_target_name_override"] == "gw-a"
    assert options(target)["grpc.default_authority"] == "gw-a:5"
    named = target_of("gw-a:5,gw-b:6", 50051, "podgate.example", lookup)
    assert options(named)["grpc.ssl_target_name_override"] == "podgate.example"


def test_ipv6_when_only_ipv6_reaches_every_entry() -> None:
    assert target_of("gw-a:5,v6only:6", 50051, "", lookup).target == "ipv6:[fd00::1]:5,[fd00::9]:6"
    with pytest.raises(ValueError, match="all over IPv6"):
        target_of("gw-b:5,v6only:6", 50051, "", lookup)
    with pytest.raises(ValueError, match="resolves to no address"):
        target_of("gw-a:5,none:6", 50051, "", lookup)


def test_a_spec_refuses_a_bad_address_when_made_and_serialises_as_before() -> None:
    with pytest.raises(ValueError, match=r"1\.\.65535"):
        ChannelSpec(address="a:1,b:0")
    spec = ChannelSpec(address="a:1,b:2")
    assert "server_name" not in spec.serialize()  # readable by a triggerer that predates the field
    named = ChannelSpec(address="a:1,b:2", server_name="podgate.example")
    assert ChannelSpec.deserialize(named.serialize()) == named
    assert ChannelSpec.deserialize(spec.serialize()) == spec


octet = st.integers(0, 255)
ipv4 = st.tuples(octet, octet, octet, octet).map(lambda t: ".".join(map(str, t)))
names = st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True)
ports = st.integers(1, 65535)


@given(st.lists(st.tuples(st.one_of(ipv4, names), ports), min_size=1, max_size=5))
def test_written_endpoints_parse_back(items: list[tuple[str, int]]) -> None:
    text = ",".join(f"{h}:{p}" for h, p in items)
    parsed = parse_addresses(text, 50051)
    assert parsed == tuple(dict.fromkeys(GatewayAddress(h, p) for h, p in items))
    assert parse_addresses(",".join(map(str, parsed)), 50051) == parsed


@given(st.lists(st.tuples(ipv4, ports), min_size=2, max_size=5, unique=True))
def test_a_list_of_ipv4_literals_needs_no_lookup(items: list[tuple[str, int]]) -> None:
    def no_lookup(host: str) -> list[str]:
        raise AssertionError(f"looked up {host}")

    target = target_of(",".join(f"{h}:{p}" for h, p in items), 50051, "", no_lookup)
    assert target.target == "ipv4:" + ",".join(dict.fromkeys(f"{h}:{p}" for h, p in items))
