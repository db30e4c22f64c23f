"""Who is calling and what their tenant may do: authentication per call, the tenants in force, admission.

The servicers ask `current_caller()` for the authenticated caller; `Authenticating` sets it for every
RPC except health checks and reflection. With no tenants configured the gateway runs open (allowed on
loopback only; `config.listener_problems` refuses anything else): every caller is the anonymous admin,
and the Pod Security Standards still apply, at the baseline level.

A reload of the settings (`LiveSettings.reload`) rebuilds the authenticator and swaps it with the tenants
in one assignment, so an RPC sees either the old configuration or the new one, never a mix.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import grpc
import jwt

from gateway import domain, errors
from gateway.api.audit import AuditEvent, Auditor
from gateway.api.interceptors import Handler, rewrap
from gateway.api.jwks import JwksCache
from gateway.api.status import MAX_MESSAGE, clip, code_for
from gateway.credentials.issuing import KubeconfigAccess
from gateway.observability import logging as logcontext
from gateway.policy import tenants as tp
from gateway.policy.admission import admit_submission, recheck_quota, usage_of
from gateway.policy.identity import Authenticator, Principal, credentials_from_call
from gateway.policy.limits import InputLimits
from gateway.policy.ratelimit import RateLimiter
from gateway.settings import LiveSettings, Settings
from gateway.store import TenantAdmission

ANONYMOUS = "anonymous"
UNAUTHENTICATED_METHODS = ("/grpc.health.v1.Health/", "/grpc.reflection.")


@dataclass(frozen=True, kw_only=True)
class Caller:
    tenant: tp.Tenant
    identity: str

    @property
    def name(self) -> str:
        return self.tenant.name or ANONYMOUS


def open_tenant(settings: Settings) -> tp.Tenant:
    """The anonymous caller of a gateway without tenants: an admin of everything, baseline Pod Security."""
    return tp.Tenant(
        name="",
        clusters=frozenset({tp.ANY}),
        namespaces=frozenset({tp.ANY}),
        admin=True,
        kubeconfig=tp.KubeconfigGrant(
            allowed=True, max_access=KubeconfigAccess.EDIT, max_ttl_seconds=settings.kubeconfig.max_ttl_seconds
        ),
    )


_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("podgate_caller", default=None)
_refusal_audited: contextvars.ContextVar[bool] = contextvars.ContextVar("podgate_refusal_audited", default=False)


def current_caller() -> Caller:
    caller = _caller.get()
    if caller is None:  # a servicer called outside Authenticating: a wiring bug, never an open door
        raise errors.Unauthenticated("the call was not authenticated")
    return caller


@dataclass(frozen=True)
class _Config:
    settings: Settings
    authenticator: Authenticator
    anonymous: Caller | None  # every caller when no tenants are configured (one object for every call)


class AccessControl:
    """The tenants in force and everything that reads them: authentication, admission, audit."""

    def __init__(self, settings: LiveSettings, auditor: Auditor, *, jwks_ca_file: str | None = None) -> None:
        self.auditor = auditor
        self._jwks_ca_file = jwks_ca_file
        self._jwks: JwksCache | None = None
        self._limiter = RateLimiter(time.monotonic)
        self._locks: dict[str, asyncio.Lock] = {}
        self._config = self._build(settings.current)
        settings.subscribe(self._reloaded)

    def _build(self, settings: Settings) -> _Config:
        oidc = settings.authentication.oidc
        if oidc is None:
            self._jwks = None
        elif self._jwks is None or self._jwks.url != oidc.jwks_url:
            self._jwks = JwksCache(oidc.jwks_url, ca_file=self._jwks_ca_file)
        return _Config(
            settings=settings,
            authenticator=settings.authenticator(),
            anonymous=None if settings.auth_enabled else Caller(tenant=open_tenant(settings), identity=ANONYMOUS),
        )

    def _reloaded(self, settings: Settings) -> None:
        self._config = self._build(settings)
        self._limiter.forget(set(settings.tenants.tenants))

    @property
    def settings(self) -> Settings:
        return self._config.settings

    @property
    def limits(self) -> InputLimits:
        """The input limits in force (reloadable)."""
        return self._config.settings.limits

    # --- authentication ---------------------------------------------------------------------

    async def authenticate(self, context: grpc.aio.ServicerContext) -> Caller:
        """The caller of an RPC. A malformed authorization header is refused even on an open gateway; the
        call's auth context (a dict gRPC builds afresh per call) is read only when tenants are configured."""
        config = self._config
        metadata = context.invocation_metadata() or ()
        if config.anonymous is not None:
            credentials_from_call({}, metadata)
            return config.anonymous
        creds = credentials_from_call(context.auth_context() or {}, metadata)
        authenticator = config.authenticator
        if authenticator.slow(creds):  # an scrypt or a JWT's signature: off the event loop
            keys = await self._keys_for(creds.bearer, config)
            principal: Principal = await asyncio.to_thread(authenticator.authenticate, creds, jwks=keys, now=time.time())
        else:  # a certificate, or a static token verified before: a thread hop would cost more than the check
            principal = authenticator.authenticate(creds, now=time.time())
        tenant = config.settings.tenants.get(principal.tenant)
        if tenant is None:  # reloaded away between the two lines above
            raise errors.PermissionDenied(f"tenant {principal.tenant!r} is no longer configured")
        return Caller(tenant=tenant, identity=principal.identity)

    async def _keys_for(self, bearer: str, config: _Config) -> jwt.PyJWKSet | None:
        if not bearer or self._jwks is None or config.authenticator.tokens.knows(bearer):
            return None
        try:
            kid = jwt.get_unverified_header(bearer).get("kid")
        except jwt.PyJWTError:
            return None  # the authenticator says why it is refused
        return await self._jwks.keys(wanted_kid=str(kid) if kid is not None else None)

    # --- admission --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def admission(self, tenant: tp.Tenant) -> AsyncIterator[None]:
        """Serialises a tenant's submissions at this replica when it has quotas, so that they do not refuse
        each other in the store's check (`quota_in_store`), which holds across replicas."""
        if not _has_quota(tenant):
            yield
            return
        lock = self._locks.setdefault(tenant.name, asyncio.Lock())
        async with lock:
            yield

    @staticmethod
    def rate_limited(tenant: tp.Tenant) -> bool:
        """Whether admitting the tenant's submissions takes a token of its rate limit."""
        return bool(tenant.name) and tenant.rate_limit.per_second > 0

    @staticmethod
    def counts_usage(tenant: tp.Tenant) -> bool:
        """Whether admitting the tenant's submissions needs its unfinished requests (it has quotas)."""
        return bool(tenant.name) and _has_quota(tenant)

    @staticmethod
    def quota_in_store(
        tenant: tp.Tenant, request: domain.PodRequest, live: Sequence[domain.PodRecord]
    ) -> TenantAdmission:
        """The tenant's quotas checked again where the store inserts the record, under the tenant's lock
        (`live`: its unfinished records as counted for `admit`)."""
        return TenantAdmission(
            tenant=tenant.name, known=live, check=lambda unfinished: recheck_quota(tenant, request, unfinished)
        )

    def admit(
        self,
        caller: Caller,
        request: domain.PodRequest,
        *,
        clusters: Sequence[domain.ClusterSpec],
        live: Iterable[domain.PodRecord],
    ) -> domain.PodRequest:
        tenant = caller.tenant
        if not tenant.name:  # open gateway: Pod Security only
            return admit_submission(tenant, request, clusters=clusters, usage=tp.TenantUsage())
        usage = usage_of(live, tenant.name) if _has_quota(tenant) else tp.TenantUsage()
        return admit_submission(tenant, request, clusters=clusters, usage=usage, limiter=self._limiter)

    async def audit(self, caller: Caller | None, entry: AuditEvent) -> None:
        entry = _by(caller, entry)
        if entry.code:  # a refusal a servicer recorded itself, with more context than the interceptor has
            _refusal_audited.set(True)
        await self.auditor.record(entry)

    def audit_record(self, caller: Caller, entry: AuditEvent) -> dict[str, Any]:
        """What `audit` would store, for a store write that stores it with what it audits; `audited` then
        copies it to the sink once that write is made."""
        return _by(caller, entry).as_record(datetime.now(UTC))

    def audited(self, record: dict[str, Any]) -> None:
        self.auditor.copy_to_sink(record)


def _by(caller: Caller | None, entry: AuditEvent) -> AuditEvent:
    if caller is None or (entry.tenant == caller.tenant.name and entry.identity == caller.identity):
        return entry  # made for this caller already (SubmitPod's entries are): no copy
    return replace(entry, tenant=caller.tenant.name, identity=caller.identity)


def _has_quota(tenant: tp.Tenant) -> bool:
    """Whether admission needs the tenant's current usage (counting it walks its unfinished requests)."""
    return bool(tenant.max_concurrent_pods) or tenant.total_caps != tp.ResourceCaps()


# --- the interceptor -------------------------------------------------------------------------

DENIALS = (errors.Unauthenticated, errors.PermissionDenied, errors.ResourceExhausted)


class Authenticating:
    """Wraps each method to authenticate its calls (health checks and reflection excepted) and record every
    refusal (unauthenticated, denied, over quota) in the audit."""

    def __init__(self, access: AccessControl) -> None:
        self._access = access

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if method.startswith(UNAUTHENTICATED_METHODS):
            return handler
        return rewrap(handler, functools.partial(self._unary, method), functools.partial(self._stream, method))

    async def _enter(self, method: str, context: grpc.aio.ServicerContext) -> Caller:
        _refusal_audited.set(False)
        try:
            caller = await self._access.authenticate(context)
        except DENIALS as e:
            await self._denied(None, method, e)
            raise
        _caller.set(caller)
        logcontext.bind(tenant=caller.name)
        return caller

    async def _denied(self, caller: Caller | None, method: str, e: errors.GatewayError) -> None:
        if _refusal_audited.get():
            return
        entry = AuditEvent(action="rpc.denied", outcome="denied", code=code_for(e).name, message=clip(str(e), MAX_MESSAGE))
        await self._access.audit(caller, replace(entry, details=(("rpc", method.lstrip("/")),)))

    def _unary(self, method: str, behaviour: Handler) -> Handler:
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
            caller = await self._enter(method, context)
            try:
                return await behaviour(request, context)
            except DENIALS as e:
                await self._denied(caller, method, e)
                raise

        return wrapper

    def _stream(self, method: str, behaviour: Callable[..., AsyncIterator[Any]]) -> Handler:
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            caller = await self._enter(method, context)
            try:
                async for item in behaviour(request, context):
                    yield item
            except DENIALS as e:
                await self._denied(caller, method, e)
                raise

        return wrapper
