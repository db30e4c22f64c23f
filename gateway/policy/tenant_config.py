"""The `tenants:` and `authentication:` sections of the gateway config, parsed into policy values (pure).

Kept apart from gateway/settings so a tenants file can be re-read and swapped in without a restart:
`parse_tenants` and `parse_authentication` need only the parsed YAML. Values are built from the keys
given (`Section.given`), so each default stays on its dataclass field.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

from gateway.credentials.issuing import MIN_TTL_SECONDS, KubeconfigAccess
from gateway.domain import Selector
from gateway.errors import InvalidArgument
from gateway.placement.labels import dns1123_label_error
from gateway.placement.quantity import parse_quantity, to_millis, to_units
from gateway.placement.selectors import from_parts, parse_selector
from gateway.policy import reading as rd
from gateway.policy.identity import ASYMMETRIC_ALGORITHMS, TOKEN_ID, OidcSettings, StaticToken, check_hash_format
from gateway.policy.pod_security import CONTROLS, Level, PodSecurityPolicy
from gateway.policy.tenants import ANY, KubeconfigGrant, RateLimit, ResourceCaps, Tenant, TenantSet


def _names(kind: str) -> Any:
    """A list of DNS-1123 labels, or "*"."""

    def parse(value: Any, path: str, problems: rd.Problems) -> frozenset[str] | None:
        items = rd.texts(value, path, problems)
        if items is None:
            return None
        for i, name in enumerate(items):
            if name != ANY and (error := dns1123_label_error(name)):
                problems.add(rd.join(path, i), f"{kind} name {error}")
        return frozenset(items)

    return parse


def _selector(value: Any, path: str, problems: rd.Problems) -> Selector | None:
    try:
        if isinstance(value, str):
            return parse_selector(value, field=path)
        if isinstance(value, dict):
            return from_parts(
                match_labels=value.get("match_labels"),
                match_expressions=value.get("match_expressions") or (),
                field=path,
            )
    except InvalidArgument as e:
        for v in e.violations:
            problems.add(v.field, v.description)
        return None
    problems.add(path, "must be a selector string (e.g. 'accelerator=nvidia') or {match_labels, match_expressions}")
    return None


def _quantity(convert: Any) -> Any:
    def parse(value: Any, path: str, problems: rd.Problems) -> int | None:
        try:
            quantity = parse_quantity(value)
        except ValueError as e:
            problems.add(path, str(e))
            return None
        if quantity < 0:
            problems.add(path, "must not be negative")
            return None
        result: int = convert(quantity)
        return result

    return parse


_CAP_FIELDS = {"cpu": "cpu_millis", "memory": "memory_bytes", "gpus": "gpus"}  # file key -> ResourceCaps field


def _caps(section: rd.Section) -> ResourceCaps:
    given = section.given({"cpu": _quantity(to_millis), "memory": _quantity(to_units), "gpus": _quantity(to_units)})
    section.done()
    return ResourceCaps(**{_CAP_FIELDS[key]: value for key, value in given.items()})


def _enum(kind: type[KubeconfigAccess] | type[Level]) -> Any:
    choose = rd.one_of(*[member.value for member in kind])

    def parse(value: Any, path: str, problems: rd.Problems) -> Any:
        chosen = choose(value, path, problems)
        return None if chosen is None else kind(chosen)

    return parse


def _frozen_texts(value: Any, path: str, problems: rd.Problems) -> frozenset[str] | None:
    items = rd.texts(value, path, problems)
    return None if items is None else frozenset(items)


def _kubeconfig(section: rd.Section) -> KubeconfigGrant:
    grant = KubeconfigGrant(
        **section.given({"allowed": rd.boolean, "max_access": _enum(KubeconfigAccess), "max_ttl_seconds": rd.integer})
    )
    if grant.max_ttl_seconds < MIN_TTL_SECONDS:
        section.problems.add(
            rd.join(section.path, "max_ttl_seconds"), f"at least {MIN_TTL_SECONDS} (Kubernetes' minimum)"
        )
    section.done()
    return grant


def _members(choices: Collection[str], problem: Callable[[str], str], collect: Callable[[Any], Any] = tuple) -> Any:
    """A list of names, each one of `choices`; an unknown one is a problem (named by `problem`) and left out."""

    def parse(value: Any, path: str, problems: rd.Problems) -> Any:
        names = rd.texts(value, path, problems)
        if names is None:
            return None
        for i, name in enumerate(names):
            if name not in choices:
                problems.add(rd.join(path, i), problem(name))
        return collect(name for name in names if name in choices)

    return parse


_controls = _members(CONTROLS, lambda n: f"unknown control {n!r}; known: {', '.join(sorted(CONTROLS))}", frozenset)
_algorithms = _members(ASYMMETRIC_ALGORITHMS, lambda _: f"must be one of {', '.join(ASYMMETRIC_ALGORITHMS)}")


def _pod_security(section: rd.Section) -> PodSecurityPolicy:
    policy = PodSecurityPolicy(**section.given({"level": _enum(Level), "exceptions": _controls}))
    section.done()
    return policy


def _rate_limit(section: rd.Section) -> RateLimit:
    limit = RateLimit(**section.given({"per_second": rd.number, "burst": rd.integer}))
    section.done()
    return limit


def parse_tenant(s: rd.Section) -> Tenant:
    name = s.get("name", rd.text, "")
    if not name:
        s.problems.add(rd.join(s.path, "name"), "required")
    elif error := dns1123_label_error(name):
        s.problems.add(rd.join(s.path, "name"), f"tenant name {error}")
    identities = s.section("identities")
    tenant = Tenant(
        name=name,
        **s.given({
            "admin": rd.boolean, "clusters": _names("cluster"), "cluster_selector": _selector,
            "namespaces": _names("namespace"), "regions": _frozen_texts, "max_concurrent_pods": rd.integer,
        }),
        pod_caps=_caps(s.section("pod_caps")),
        total_caps=_caps(s.section("total_caps")),
        kubeconfig=_kubeconfig(s.section("kubeconfig")),
        pod_security=_pod_security(s.section("pod_security")),
        rate_limit=_rate_limit(s.section("rate_limit")),
        **identities.given({"cert_names": _frozen_texts, "oidc_groups": _frozen_texts}),
    )  # fmt: skip
    identities.done()
    s.done()
    return tenant


def parse_tenants(raw: Any, problems: rd.Problems, path: str = "tenants") -> TenantSet:
    """A list of tenant mappings; names must be unique."""
    if raw is None:
        return TenantSet()
    if not isinstance(raw, list):
        problems.add(path, f"must be a list of tenants, got {type(raw).__name__}")
        return TenantSet()
    tenants: dict[str, Tenant] = {}
    for i, item in enumerate(raw):
        tenant = parse_tenant(rd.Section.of(item, rd.join(path, i), problems))
        if tenant.name in tenants:
            problems.add(rd.join(rd.join(path, i), "name"), f"duplicate tenant {tenant.name!r}")
        tenants[tenant.name] = tenant
    return TenantSet(tenants=tenants)


def _static_tokens(raw: Any, path: str, problems: rd.Problems, tenants: TenantSet) -> tuple[StaticToken, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.add(path, "must be a list of {id, tenant, hash}")
        return ()
    out: dict[str, StaticToken] = {}
    for i, item in enumerate(raw):
        s = rd.Section.of(item, rd.join(path, i), problems)
        token = StaticToken(
            id=s.get("id", rd.text, ""), tenant=s.get("tenant", rd.text, ""), hash=s.get("hash", rd.text, "")
        )
        s.done()
        if not TOKEN_ID.fullmatch(token.id):
            problems.add(rd.join(s.path, "id"), "required: a DNS-1123 label, the part of the token before the '.'")
        elif token.id in out:
            problems.add(rd.join(s.path, "id"), f"duplicate token id {token.id!r}")
        if tenants.get(token.tenant) is None:
            problems.add(rd.join(s.path, "tenant"), f"no tenant named {token.tenant!r}")
        if error := check_hash_format(token.hash):
            problems.add(rd.join(s.path, "hash"), error)  # the message never quotes the value
        out[token.id] = token
    return tuple(out.values())


def _oidc(s: rd.Section) -> OidcSettings | None:
    if not s.raw:
        s.done()
        return None
    settings = OidcSettings(
        issuer=s.get("issuer", rd.text, ""),  # required: checked below
        audience=s.get("audience", rd.text, ""),
        jwks_url=s.get("jwks_url", rd.text, ""),
        **s.given({"groups_claim": rd.text, "algorithms": _algorithms, "leeway_seconds": rd.number}),
    )
    for key in ("issuer", "audience", "jwks_url"):
        if not getattr(settings, key):
            s.problems.add(rd.join(s.path, key), "required when oidc is configured")
    if settings.jwks_url and not settings.jwks_url.startswith("https://"):
        s.problems.add(rd.join(s.path, "jwks_url"), "must be an https:// URL")
    s.done()
    return settings


def parse_authentication(s: rd.Section, tenants: TenantSet) -> tuple[tuple[StaticToken, ...], OidcSettings | None]:
    tokens = _static_tokens(s.raw_value("static_tokens"), rd.join(s.path, "static_tokens"), s.problems, tenants)
    oidc = _oidc(s.section("oidc"))
    s.done()
    return tokens, oidc


def check_identities(tenants: TenantSet, oidc: OidcSettings | None, problems: rd.Problems) -> None:
    """Cross-section checks: OIDC groups need OIDC configured."""
    ordered: Sequence[Tenant] = list(tenants.tenants.values())
    for i, tenant in enumerate(ordered):
        if tenant.oidc_groups and oidc is None:
            problems.add(f"tenants[{i}].identities.oidc_groups", "set, but authentication.oidc is not configured")
