"""The OIDC issuer's signing keys, fetched over HTTPS and cached.

Keys are refetched when older than `max_age`, and at once (at most every `min_refetch` seconds) when a
token names a key id we do not have: that is how an issuer's key rotation reaches us without a restart
and without letting a flood of forged key ids hammer the issuer.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from urllib.parse import urlsplit

import aiohttp
import jwt

from gateway import errors

log = logging.getLogger(__name__)

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


class JwksCache:
    def __init__(
        self,
        url: str,
        *,
        ca_file: str | None = None,
        max_age: float = 600.0,
        min_refetch: float = 30.0,
        timeout: float = 10.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in LOOPBACK):
            raise ValueError(f"the JWKS URL must be https (plain http only on loopback), got {url!r}")
        self.url = url
        self._ssl = ssl.create_default_context(cafile=ca_file) if parts.scheme == "https" else None
        self._max_age = max_age
        self._min_refetch = min_refetch
        self._timeout = timeout
        self._keys: jwt.PyJWKSet | None = None
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def keys(self, *, wanted_kid: str | None = None) -> jwt.PyJWKSet:
        """The current key set; refetched when stale or when it lacks `wanted_kid`."""
        async with self._lock:
            now = time.monotonic()
            stale = now - self._fetched_at > self._max_age
            missing = wanted_kid is not None and self._keys is not None and not _has(self._keys, wanted_kid)
            if self._keys is None or stale or (missing and now - self._fetched_at > self._min_refetch):
                await self._fetch(now)
            assert self._keys is not None
            return self._keys

    async def _fetch(self, now: float) -> None:
        try:
            timeout = aiohttp.ClientTimeout(total=self._timeout)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(self.url, ssl=self._ssl if self._ssl is not None else False) as response,
            ):
                response.raise_for_status()
                self._keys = jwt.PyJWKSet.from_dict(await response.json(content_type=None))
            self._fetched_at = now
        except (aiohttp.ClientError, TimeoutError, ValueError, jwt.PyJWTError) as e:
            log.warning("cannot fetch the OIDC keys from %s: %s", self.url, e)
            self._fetched_at = now - self._max_age + self._min_refetch  # keep the old keys; retry in a while
            if self._keys is None:
                raise errors.Unavailable(f"cannot verify the JWT: the issuer's keys are unavailable ({e})") from None


def _has(keys: jwt.PyJWKSet, kid: str) -> bool:
    return any(k.key_id == kid for k in keys.keys)
