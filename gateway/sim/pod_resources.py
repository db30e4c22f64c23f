"""A pod's resource quantities as the API server checks them (pure; no I/O).

Decoding comes first: a quantity that resource.ParseQuantity refuses makes the whole body undecodable,
a 400 naming apimachinery's pattern. Validation then refuses negative values and requests above their
limit (ValidateResourceRequirements), each a 422 cause with its field path.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from decimal import Decimal
from fractions import Fraction
from typing import Any

from gateway.sim.quantity import QuantityError, parse_quantity

Cause = tuple[str, str, str]
# The text kube-apiserver answers when a quantity does not decode (apimachinery's ErrFormatWrong).
UNDECODABLE = (
    'Pod in version "v1" cannot be handled as a Pod: quantities must match the regular expression '
    "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)
_NUMBERS = (str, int, float, Decimal)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _containers(spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for group in ("initContainers", "containers"):
        items = spec.get(group)
        for i, container in enumerate(items if isinstance(items, list) else []):
            if isinstance(container, Mapping):
                yield f"spec.{group}[{i}].resources", _mapping(container.get("resources"))


def _quantities(spec: Mapping[str, Any]) -> Iterator[tuple[str, str, str, Any]]:
    """(field, requests|limits|overhead, resource name, raw value) for every quantity in a pod spec."""
    for where, resources in _containers(spec):
        for kind in ("requests", "limits"):
            for name, raw in _mapping(resources.get(kind)).items():
                yield f"{where}.{kind}[{name}]", kind, str(name), raw
    for name, raw in _mapping(spec.get("overhead")).items():
        yield f"spec.overhead[{name}]", "overhead", str(name), raw


def undecodable(pod: Mapping[str, Any]) -> str:
    """The 400 message when a quantity does not parse, else "" (wrong JSON types are the schema's)."""
    for _, _, _, raw in _quantities(_mapping(pod.get("spec"))):
        if isinstance(raw, _NUMBERS) and not isinstance(raw, bool):
            try:
                parse_quantity(raw)
            except QuantityError:
                return UNDECODABLE
    return ""


def _value(raw: Any) -> Fraction | None:
    try:
        return parse_quantity(raw) if isinstance(raw, _NUMBERS) and not isinstance(raw, bool) else None
    except QuantityError:
        return None


def extended(name: str) -> bool:
    """IsExtendedResourceName: a domain-qualified name outside kubernetes.io (e.g. nvidia.com/gpu)."""
    return "/" in name and "kubernetes.io/" not in name and not name.startswith("requests.")


def _invalid(field: str, raw: Any, why: str) -> Cause:
    return ("FieldValueInvalid", field, f'Invalid value: "{raw}": {why}')


def _value_causes(spec: Mapping[str, Any]) -> Iterator[Cause]:
    """ValidateResourceQuantityValue: not negative; extended resources whole numbers."""
    for field, _, name, raw in _quantities(spec):
        value = _value(raw)
        if value is not None and value < 0:
            yield _invalid(field, raw, "must be greater than or equal to 0")
        if value is not None and extended(name) and math.ceil(value * 1000) % 1000:
            yield _invalid(field, raw, "must be an integer")


def _limit_causes(spec: Mapping[str, Any]) -> Iterator[Cause]:
    """ValidateResourceRequirements: requests <= limits; extended resources (not overcommittable) need a
    limit equal to the request."""
    for where, resources in _containers(spec):
        limits = _mapping(resources.get("limits"))
        for name, raw in _mapping(resources.get("requests")).items():
            request, limit = _value(raw), _value(limits.get(name))
            if request is None:
                continue
            if limit is None and extended(name) and name not in limits:
                yield ("FieldValueRequired", f"{where}.limits", "Required value: Limit must be set for non overcommitable resources")
            elif limit is not None and extended(name) and request != limit:
                yield _invalid(f"{where}.requests", raw, f"must be equal to {name} limit of {limits[name]}")
            elif limit is not None and request > limit:
                yield _invalid(f"{where}.requests", raw, f"must be less than or equal to {name} limit of {limits[name]}")


def causes(pod: Mapping[str, Any]) -> list[Cause]:
    """What ValidateResourceRequirements refuses in a pod's quantities, each with its field path."""
    spec = _mapping(pod.get("spec"))
    return [*_value_causes(spec), *_limit_causes(spec)]
