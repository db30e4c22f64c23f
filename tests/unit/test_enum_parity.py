"""Domain, protocol and client speak one vocabulary: the same enum members spelled the same, the same fields.

The client mirrors `gateway/domain.py` on purpose (it installs without the server); this table keeps the
mirror from drifting and from growing false friends. The protocol is the public contract: member names
are the proto's without its prefix; UNSPECIFIED exists on the wire and, where a reader must be able to
say "a value this client does not know", in the client only.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

import pytest
from google.protobuf.descriptor import EnumDescriptor

from gateway import domain
from gateway._proto.podgate.v1 import clusters_pb2, common_pb2, credentials_pb2, dispatch_pb2
from gateway.client import request as client_request
from gateway.client import types as client_types
from gateway.credentials import issuing

# (proto enum, domain enum, client enum, members the client leaves out on purpose, and why)
ENUMS: list[tuple[EnumDescriptor, type[enum.Enum], type[enum.Enum], frozenset[str]]] = [
    (dispatch_pb2.XcomMode.DESCRIPTOR, domain.XcomMode, client_request.XcomMode, frozenset()),
    # The client asks for NAMED by naming containers (PodRequest.log_containers), never by the member.
    (dispatch_pb2.LogSelection.DESCRIPTOR, domain.LogSelection, client_request.LogSelection, frozenset({"NAMED"})),
    (dispatch_pb2.OnFinishAction.DESCRIPTOR, domain.OnFinishAction, client_request.OnFinishAction, frozenset()),
    (dispatch_pb2.DisconnectPolicy.DESCRIPTOR, domain.DisconnectPolicy, client_request.DisconnectPolicy, frozenset()),
    (dispatch_pb2.PodPhase.DESCRIPTOR, domain.PodPhase, client_types.PodPhase, frozenset()),
    (dispatch_pb2.Verdict.DESCRIPTOR, domain.Verdict, client_types.Verdict, frozenset()),
    (clusters_pb2.ClusterHealth.DESCRIPTOR, domain.ClusterHealth, client_types.ClusterHealth, frozenset()),
    (credentials_pb2.KubeconfigAccess.DESCRIPTOR, issuing.KubeconfigAccess, client_types.KubeconfigAccess, frozenset()),
]

# The wire's UNSPECIFIED is the domain's UNKNOWN where "not known yet" is a real state.
WIRE_UNSPECIFIED_IS = {domain.ClusterHealth: "UNKNOWN"}


def proto_members(descriptor: EnumDescriptor, domain_enum: type[enum.Enum]) -> set[str]:
    prefix = "".join("_" + c if c.isupper() and i else c for i, c in enumerate(descriptor.name)).upper() + "_"
    names = {v.name.removeprefix(prefix) for v in descriptor.values}
    names.discard("UNSPECIFIED")
    if domain_enum in WIRE_UNSPECIFIED_IS:
        names.add(WIRE_UNSPECIFIED_IS[domain_enum])
    return names


@pytest.mark.parametrize(("descriptor", "domain_enum", "client_enum", "left_out"), ENUMS, ids=lambda x: getattr(x, "name", "") or getattr(x, "__name__", ""))
def test_enum_members_and_spellings_agree(
    descriptor: EnumDescriptor, domain_enum: type[enum.Enum], client_enum: type[enum.Enum], left_out: frozenset[str]
) -> None:
    assert domain_enum.__name__ == client_enum.__name__ == descriptor.name
    wire = proto_members(descriptor, domain_enum)
    assert set(domain_enum.__members__) == wire
    client = set(client_enum.__members__) - {"UNSPECIFIED"}
    assert client == wire - left_out
    for name in client:
        assert domain_enum[name].value == client_enum[name].value, name


# (domain dataclass, proto message, client dataclass or None)
MESSAGES: list[tuple[Any, Any, Any]] = [
    (domain.ClusterVerdict, dispatch_pb2.ClusterVerdict, client_types.ClusterVerdict),
    (domain.PlacementDecision, dispatch_pb2.PlacementDecision, client_types.PlacementDecision),
    (domain.KubernetesEvent, dispatch_pb2.KubernetesEvent, client_types.KubernetesEvent),
    (domain.ContainerResult, dispatch_pb2.ContainerResult, client_types.ContainerResult),
    (domain.PodResult, dispatch_pb2.PodResult, client_types.PodResult),
    (domain.AirflowContext, dispatch_pb2.AirflowContext, client_types.AirflowContext),
    (domain.Taint, common_pb2.Taint, client_types.Taint),
    (domain.PhaseChange, dispatch_pb2.PhaseChange, None),
]


@pytest.mark.parametrize(("domain_type", "message", "client_type"), MESSAGES, ids=lambda x: getattr(x, "__name__", ""))
def test_message_fields_agree(domain_type: Any, message: Any, client_type: Any) -> None:
    wire = {f.name for f in message.DESCRIPTOR.fields}
    assert domain_type.__name__ == message.DESCRIPTOR.name
    assert {f.name for f in dataclasses.fields(domain_type)} == wire
    if client_type is not None:
        assert client_type.__name__ == message.DESCRIPTOR.name
        assert {f.name for f in dataclasses.fields(client_type)} == wire


def test_no_class_name_means_two_things() -> None:
    """A class name defined in two modules must name one concept: the client's mirror of the domain (listed and
    checked above) or a retry policy of each of our two clients. Error trees repeat per boundary by design
    (gateway.errors / client.errors / kubeapi.errors), and the simulator is a world of its own."""
    import importlib
    import inspect
    import pkgutil

    import gateway

    same_concept = {  # the client mirrors the domain on purpose (checked above)
        "ClusterVerdict", "PlacementDecision", "KubernetesEvent", "ContainerResult", "PodResult", "AirflowContext",
        "Taint", "PodPhase", "Verdict", "ClusterHealth", "XcomMode", "LogSelection", "OnFinishAction",
        "DisconnectPolicy", "KubeconfigAccess", "Toleration", "Preference", "Cluster", "NodeCapacity",
        "ClusterStatus", "ClusterInfo", "IssuedKubeconfig", "PodRequest", "Selector", "RetryPolicy",
    }  # fmt: skip
    owners: dict[str, set[str]] = {}
    for info in pkgutil.walk_packages(gateway.__path__, "gateway."):
        if info.name.startswith(("gateway._proto", "gateway.airflow", "gateway.store.migrations", "gateway.sim")):
            continue
        if info.name.endswith(".errors"):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and value.__module__ == info.name
                and not name.startswith("_")
                and not issubclass(value, BaseException)
            ):
                owners.setdefault(name, set()).add(info.name)
    twice = {name: sorted(mods) for name, mods in owners.items() if len(mods) > 1 and name not in same_concept}
    assert twice == {}
