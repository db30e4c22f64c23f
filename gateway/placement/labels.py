"""Kubernetes label key/value syntax, checked the way the API server checks it.

Each check returns an error description ("" when valid) so callers can attach it to their own field path.
"""

from __future__ import annotations

import re

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
LABEL_NAME_MAX = 63
LABEL_VALUE_MAX = 63

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def _dns_name_error(name: str, limit: int, pattern: re.Pattern[str], what: str) -> str:
    if not name:
        return "must not be empty"
    if len(name) > limit:
        return f"must be at most {limit} characters (got {len(name)})"
    if not pattern.fullmatch(name):
        return f"{name!r} is not a {what}, starting and ending with a letter or digit"
    return ""


def dns1123_label_error(name: str) -> str:
    """Names of clusters, namespaces and containers."""
    return _dns_name_error(
        name, DNS1123_LABEL_MAX, _DNS1123_LABEL, "DNS-1123 label: lower-case letters, digits and '-'"
    )


def dns1123_subdomain_error(name: str) -> str:
    """Pod names and label key prefixes."""
    return _dns_name_error(
        name, DNS1123_SUBDOMAIN_MAX, _DNS1123_SUBDOMAIN, "DNS-1123 subdomain: lower-case letters, digits, '-' and '.'"
    )


def label_key_error(key: str) -> str:
    """`[prefix/]name`: prefix a DNS-1123 subdomain, name up to 63 of [A-Za-z0-9._-] with alphanumeric ends."""
    if not key:
        return "label key must not be empty"
    prefix, slash, name = key.rpartition("/")
    if slash and not prefix:
        return f"label key {key!r}: prefix before '/' must not be empty"
    if prefix and (error := dns1123_subdomain_error(prefix)):
        return f"label key {key!r}: prefix {error}"
    if not name:
        return f"label key {key!r}: name after the prefix must not be empty"
    if len(name) > LABEL_NAME_MAX:
        return f"label key {key!r}: name must be at most {LABEL_NAME_MAX} characters (got {len(name)})"
    if not _QUALIFIED_NAME.fullmatch(name):
        return (
            f"label key {key!r}: name must consist of letters, digits, '-', '_' or '.', "
            "and start and end with a letter or digit"
        )
    return ""


def label_value_error(value: str) -> str:
    """Up to 63 of [A-Za-z0-9._-] with alphanumeric ends; empty is valid."""
    if len(value) > LABEL_VALUE_MAX:
        return f"label value {value[:20]!r}... must be at most {LABEL_VALUE_MAX} characters (got {len(value)})"
    if not _LABEL_VALUE.fullmatch(value):
        return (
            f"label value {value!r} must be empty or consist of letters, digits, '-', '_' or '.', "
            "and start and end with a letter or digit"
        )
    return ""
