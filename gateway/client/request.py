"""PodSpecRequest: what a caller wants run and where, as one validated value (converted to a PodRequest proto).

Checks here are the ones a caller can fix before a round trip (types, enum names, id syntax); the gateway
checks meaning (selector syntax, known regions, manifest validity) and answers with field violations.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from gateway.client.types import AirflowContext

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:/@+=-]{1,253}$")
_SELECTOR_KEYS = frozenset({"matchLabels", "matchExpressions", "match_labels", "match_expressions", "expression"})
_TOLERATION_RE = re.compile(r"^(?P<key>[^=:]+)(=(?P<value>[^:]*))?(:(?P<effect>\w+))?$")


class XcomMode(enum.StrEnum):
    DISABLED = "disabled"
    # terminationMessagePath on the main container: no sidecar, payloads up to 4096 bytes.
    AUTO = "auto"
    # An emptyDir and a sidecar read after the main container ends: any size.
    SIDECAR = "sidecar"


class LogSelection(enum.StrEnum):
    MAIN = "main"
    ALL = "all"
    NONE = "none"


class OnFinishAction(enum.StrEnum):
    DELETE_POD = "delete_pod"
    KEEP_POD = "keep_pod"
    DELETE_SUCCEEDED_POD = "delete_succeeded_pod"


class DisconnectPolicy(enum.StrEnum):
    KEEP_RUNNING = "keep_running"
    CANCEL = "cancel"


@dataclass(frozen=True, kw_only=True)
class SelectorSpec:
    """A cluster label selector in any accepted spelling, normalised."""

    match_labels: Mapping[str, str] = field(default_factory=dict)
    match_expressions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    expression: str = ""

    @classmethod
    def of(cls, value: SelectorLike) -> SelectorSpec:
        """A string is a kubectl-style expression; a dict is either Kubernetes' LabelSelector
        (matchLabels / matchExpressions) or a plain label map."""
        if value is None:
            return cls()
        if isinstance(value, SelectorSpec):
            return value
        if isinstance(value, str):
            return cls(expression=value.strip())
        if not isinstance(value, Mapping):
            raise TypeError(f"a cluster selector is a string or a dict, not {type(value).__name__}")
        if value and set(value) <= _SELECTOR_KEYS:
            labels = value.get("matchLabels", value.get("match_labels")) or {}
            expressions = value.get("matchExpressions", value.get("match_expressions")) or []
            return cls(
                match_labels={str(k): str(v) for k, v in labels.items()},
                match_expressions=tuple(_requirement(e) for e in expressions),
                expression=str(value.get("expression", "")).strip(),
            )
        return cls(match_labels={str(k): str(v) for k, v in value.items()})

    def __bool__(self) -> bool:
        return bool(self.match_labels or self.match_expressions or self.expression)


def _requirement(e: Any) -> tuple[str, str, tuple[str, ...]]:
    if isinstance(e, Mapping):
        return (str(e["key"]), str(e["operator"]), tuple(str(v) for v in e.get("values") or ()))
    key, operator, *rest = e
    values = rest[0] if rest else ()
    return (str(key), str(operator), tuple(str(v) for v in values))


SelectorLike = SelectorSpec | Mapping[str, Any] | str | None


@dataclass(frozen=True, kw_only=True)
class TolerationSpec:
    """Tolerates a cluster taint. Strings read "key=value:Effect", "key:Effect" or "key" (Exists)."""

    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""

    @classmethod
    def of(cls, value: TolerationSpec | Mapping[str, Any] | str) -> TolerationSpec:
        if isinstance(value, TolerationSpec):
            return value
        if isinstance(value, Mapping):
            return cls(
                key=str(value.get("key", "")),
                operator=str(value.get("operator") or "Equal"),
                value=str(value.get("value") or ""),
                effect=str(value.get("effect") or ""),
            )
        m = _TOLERATION_RE.match(value.strip())
        if not m:
            raise ValueError(f"cluster toleration {value!r}: expected key=value:Effect, key:Effect or key")
        has_value = m["value"] is not None
        return cls(
            key=m["key"],
            operator="Equal" if has_value else "Exists",
            value=m["value"] or "",
            effect=m["effect"] or "",
        )


@dataclass(frozen=True, kw_only=True)
class PreferenceSpec:
    """Clusters matching `selector` gain `weight` (1..100) in scoring."""

    weight: int
    selector: SelectorSpec

    @classmethod
    def of(cls, value: PreferenceSpec | Mapping[str, Any] | tuple[int, SelectorLike]) -> PreferenceSpec:
        if isinstance(value, PreferenceSpec):
            return value
        if isinstance(value, Mapping):
            selector = value.get("selector", value.get("preference"))
            return cls(weight=int(value["weight"]), selector=SelectorSpec.of(selector))
        weight, selector = value
        return cls(weight=int(weight), selector=SelectorSpec.of(selector))


def seconds_of(value: float | timedelta | None, what: str) -> float | None:
    if value is None:
        return None
    out = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if out < 0:
        raise ValueError(f"{what} must not be negative, got {out}")
    return out


@dataclass(frozen=True, kw_only=True)
class PodSpecRequest:
    """A pod and its constraints. `pod` is a Kubernetes Pod manifest (plain JSON-able dict, camelCase keys).

    Optional timeouts left as None take the gateway's defaults. `logs` is "main", "all", "none" or a
    sequence of container names.
    """

    request_id: str
    pod: Mapping[str, Any]
    cluster_selector: SelectorSpec = field(default_factory=SelectorSpec)
    regions: tuple[str, ...] = ()
    clusters: tuple[str, ...] = ()
    cluster_tolerations: tuple[TolerationSpec, ...] = ()
    preferences: tuple[PreferenceSpec, ...] = ()
    placement_timeout: float | None = None
    xcom: XcomMode = XcomMode.DISABLED
    xcom_sidecar_image: str = ""
    logs: LogSelection | tuple[str, ...] = LogSelection.MAIN
    on_finish: OnFinishAction = OnFinishAction.DELETE_POD
    startup_timeout: float | None = None
    on_disconnect: DisconnectPolicy | None = None
    reattach_grace: float | None = None
    airflow: AirflowContext | None = None
    keep_name: bool = False  # the manifest's metadata.name exactly, no unique suffix

    def __post_init__(self) -> None:
        if not REQUEST_ID_RE.match(self.request_id):
            raise ValueError(f"request_id {self.request_id!r}: use 1..253 characters of letters, digits and ._:/@+=-")
        if not isinstance(self.pod, Mapping):
            raise TypeError(f"pod must be a Pod manifest dict, not {type(self.pod).__name__}")
        for name in ("regions", "clusters"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise TypeError(f"{name} is a list of names, not the string {value!r}")
            if any(not v or not v.strip() for v in value):
                raise ValueError(f"{name} must not contain empty names")

    @classmethod
    def build(
        cls,
        *,
        request_id: str,
        pod: Mapping[str, Any],
        cluster_selector: SelectorLike = None,
        regions: Sequence[str] = (),
        clusters: Sequence[str] = (),
        cluster_tolerations: Sequence[TolerationSpec | Mapping[str, Any] | str] = (),
        preferences: Sequence[PreferenceSpec | Mapping[str, Any] | tuple[int, SelectorLike]] = (),
        placement_timeout: float | timedelta | None = None,
        xcom: XcomMode | str | bool = XcomMode.DISABLED,
        xcom_sidecar_image: str = "",
        logs: LogSelection | str | Sequence[str] | bool = LogSelection.MAIN,
        on_finish: OnFinishAction | str = OnFinishAction.DELETE_POD,
        startup_timeout: float | timedelta | None = None,
        on_disconnect: DisconnectPolicy | str | None = None,
        reattach_grace: float | timedelta | None = None,
        airflow: AirflowContext | None = None,
        keep_name: bool = False,
    ) -> PodSpecRequest:
        """Accepts the loose spellings callers write (strings, dicts, timedeltas) and normalises them."""
        if isinstance(regions, str) or isinstance(clusters, str):
            raise TypeError("regions and clusters are lists of names, not a single string")
        return cls(
            request_id=request_id,
            pod=pod,
            cluster_selector=SelectorSpec.of(cluster_selector),
            regions=tuple(regions),
            clusters=tuple(clusters),
            cluster_tolerations=tuple(TolerationSpec.of(t) for t in cluster_tolerations),
            preferences=tuple(PreferenceSpec.of(p) for p in preferences),
            placement_timeout=seconds_of(placement_timeout, "placement_timeout"),
            xcom=_xcom_mode(xcom),
            xcom_sidecar_image=xcom_sidecar_image,
            logs=_log_selection(logs),
            on_finish=_enum(OnFinishAction, on_finish, "on_finish"),
            startup_timeout=seconds_of(startup_timeout, "startup_timeout"),
            on_disconnect=None if on_disconnect is None else _enum(DisconnectPolicy, on_disconnect, "on_disconnect"),
            reattach_grace=seconds_of(reattach_grace, "reattach_grace"),
            airflow=airflow,
            keep_name=keep_name,
        )


E = TypeVar("E", bound=enum.StrEnum)


def _enum(cls: type[E], value: E | str, what: str) -> E:
    try:
        return cls(str(value).lower())
    except ValueError:
        choices = ", ".join(repr(str(m)) for m in cls)
        raise ValueError(f"{what} {value!r}: expected one of {choices}") from None


def _xcom_mode(value: XcomMode | str | bool) -> XcomMode:
    if isinstance(value, bool):
        return XcomMode.AUTO if value else XcomMode.DISABLED
    return _enum(XcomMode, value, "xcom")


def _log_selection(value: LogSelection | str | Sequence[str] | bool) -> LogSelection | tuple[str, ...]:
    if isinstance(value, bool):
        return LogSelection.MAIN if value else LogSelection.NONE
    if isinstance(value, str):
        return _enum(LogSelection, value, "logs")
    names = tuple(value)
    if not names or any(not n for n in names):
        raise ValueError("logs: a list of container names must name at least one container, none empty")
    return names
