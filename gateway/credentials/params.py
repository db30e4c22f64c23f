"""Reading a cluster's credential parameters, with errors that say which key is wrong and why.

Parameters are references (a file path, an env var name, an account id), never secrets; a value is
therefore safe to quote in an error, but a secret read *through* a reference never is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gateway.credentials.base import CredentialError


@dataclass(frozen=True, kw_only=True)
class Params:
    """A provider's parameters, checked against the keys it knows."""

    cluster: str
    source: str
    values: Mapping[str, str] = field(default_factory=dict)

    def check_keys(self, allowed: frozenset[str]) -> None:
        unknown = sorted(set(self.values) - allowed)
        if unknown:
            raise CredentialError(
                f"cluster {self.cluster!r}: unknown {self.source} credentials key(s) {unknown}; "
                f"allowed: {sorted(allowed)}"
            )

    def get(self, key: str, default: str = "") -> str:
        return str(self.values.get(key, default) or default)

    def require(self, key: str) -> str:
        value = self.get(key)
        if not value:
            raise CredentialError(f"cluster {self.cluster!r}: {self.source} credentials need {key!r}")
        return value

    def error(self, message: str) -> CredentialError:
        return CredentialError(f"cluster {self.cluster!r} ({self.source}): {message}")

    def secret_from_env(self, key: str, environ: Mapping[str, str] | None = None) -> str:
        """The secret held by the environment variable that parameter `key` names."""
        name = self.require(key)
        value = (os.environ if environ is None else environ).get(name, "")
        if not value:
            raise self.error(f"environment variable {name!r} (named by {key!r}) is not set or empty")
        return value

    def readable_file(self, key: str) -> Path:
        path = Path(self.require(key)).expanduser()
        if not path.is_file():
            raise self.error(f"{key} {str(path)!r} is not a readable file")
        return path


def scrub(text: str, secrets: tuple[str, ...], limit: int = 300) -> str:
    """`text` with every known secret replaced, truncated: for SDK messages quoted in our errors."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    return text if len(text) <= limit else text[:limit] + "..."


def describe(exc: BaseException, secrets: tuple[str, ...] = ()) -> str:
    return f"{type(exc).__name__}: {scrub(str(exc), secrets)}"
