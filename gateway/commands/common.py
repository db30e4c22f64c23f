"""What every client-side command shares: the channel from flags and environment, exit codes, one way to
report an error, tables and -o output."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import difflib
import enum
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.client.channel import ChannelSpec
from gateway.client.client import DEFAULT_RETRY, GatewayClient, RetryPolicy
from gateway.client.errors import GatewayError, NotFound, PlacementFailed, Unavailable


class Exit(enum.IntEnum):
    """podgate's own exit codes, above the range a pod's command normally uses (as `docker run` does):
    any other non-zero code is the pod's main container's exit code."""

    OK = 0
    GATEWAY = 125  # the gateway refused the request, could not be reached, or the command line is wrong
    PLACEMENT = 126  # no registered cluster can take the pod
    POD_NOT_RUN = 127  # the pod failed without its command's exit code (never started, XCom unreadable, ...)
    CANCELLED = 130  # the pod was cancelled (Ctrl-C, `podgate cancel`, or the gateway)


TOKEN_ENV = "PODGATE_TOKEN"  # noqa: S105 (the variable's name, not a token)
# flag -> environment variable holding its default
ENV_DEFAULTS: Mapping[str, str] = {
    "gateway": "PODGATE_GATEWAY",
    "ca_file": "PODGATE_CA_FILE",
    "cert_file": "PODGATE_CERT_FILE",
    "key_file": "PODGATE_KEY_FILE",
    "server_name": "PODGATE_SERVER_NAME",
    "token_file": "PODGATE_TOKEN_FILE",
}
TLS_ENV = "PODGATE_TLS"


class CommandError(Exception):
    """A problem the CLI finds before or after a call; printed once as `podgate <command>: <message>`."""

    def __init__(self, message: str, code: Exit = Exit.GATEWAY) -> None:
        super().__init__(message)
        self.code = code


def _setting(args: argparse.Namespace, name: str) -> str:
    return str(getattr(args, name, None) or os.environ.get(ENV_DEFAULTS[name], ""))


def channel(args: argparse.Namespace) -> ChannelSpec:
    """The gateway flags, each defaulting to its PODGATE_* variable; the bearer token comes from a file or
    $PODGATE_TOKEN, never from argv (where `ps` would show it)."""
    from gateway.client.channel import DEFAULT_ADDRESS

    token = os.environ.get(TOKEN_ENV, "")
    token_file = _setting(args, "token_file")
    if token_file:
        try:
            token = Path(token_file).read_text().strip()
        except OSError as e:
            raise CommandError(f"cannot read the token file {token_file}: {e.strerror or e}") from None
    tls = bool(getattr(args, "tls", False)) or os.environ.get(TLS_ENV, "").lower() in ("1", "true", "yes")
    try:
        return ChannelSpec(
            address=_setting(args, "gateway") or DEFAULT_ADDRESS,
            tls=tls,
            ca_file=_setting(args, "ca_file"),
            cert_file=_setting(args, "cert_file"),
            key_file=_setting(args, "key_file"),
            token=token,
            server_name=_setting(args, "server_name"),
        )
    except ValueError as e:  # a malformed --gateway / $PODGATE_GATEWAY, named by the spec
        raise CommandError(f"{e} (--gateway or $PODGATE_GATEWAY)") from None


def message_of(error: GatewayError) -> str:
    """The gateway's message once, without the RPC name, with each violation on its own line."""
    message = error.message
    listed = [str(v) for v in error.violations]
    head, sep, tail = message.partition(": ")
    if len(listed) > 1 and sep and all(v in tail for v in listed):
        message = head + ":"  # the gateway's message joins the violations listed below
    elif all(v.description in message for v in error.violations):
        listed = []  # the message already says it
    lines = [message, *(f"  - {v}" for v in listed)]
    return "\n".join(lines)


def exit_code_of(error: GatewayError) -> Exit:
    return Exit.PLACEMENT if isinstance(error, PlacementFailed) else Exit.GATEWAY


def report(command: str, message: str, code: Exit = Exit.GATEWAY) -> int:
    print(f"podgate {command}: {message}", file=sys.stderr)
    return int(code)


# A one-shot command gives up quickly on an unreachable gateway. Streams and watches (run, attach, logs -f,
# list --watch) ride out a restart or failover of a gateway that has answered them, but fail as quickly
# when it never did (nothing listens, the name does not resolve, the TLS handshake fails).
QUICK_RETRY = RetryPolicy(attempts=2)
FIRST_CONTACT_SECONDS = 5.0
STREAM_RETRY = dataclasses.replace(DEFAULT_RETRY, first_contact=FIRST_CONTACT_SECONDS)


def run_command(
    command: str,
    args: argparse.Namespace,
    action: Callable[[GatewayClient, argparse.Namespace], Awaitable[int]],
    *,
    retry: RetryPolicy = QUICK_RETRY,
) -> int:
    """Opens a client, runs the action, and turns any failure into one message on stderr and an exit code."""
    if not getattr(args, "verbose", False):
        logging.getLogger("gateway.client").setLevel(logging.ERROR)  # the error itself is reported once, below

    async def go() -> int:
        try:
            client = GatewayClient(channel(args), retry=retry)
        except ValueError as e:  # a name in a list of addresses that does not resolve
            raise CommandError(f"{e} (--gateway or $PODGATE_GATEWAY)") from None
        async with client:
            return await action(client, args)

    try:
        return asyncio.run(go())
    except KeyboardInterrupt:
        return int(Exit.CANCELLED)
    except CommandError as e:
        return report(command, str(e), e.code)
    except Unavailable as e:
        spec = channel(args)
        tls = " Or the TLS handshake failed: check --ca-file, --cert-file and --key-file." if spec.secure else ""
        return report(command, f"cannot reach the gateway at {spec.address} ({e.message}); is it running? "
                      f"(--gateway or $PODGATE_GATEWAY).{tls}")  # fmt: skip
    except GatewayError as e:
        return report(command, message_of(e), exit_code_of(e))


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """' Did you mean "x"?' for the closest known word, or ''."""
    close = difflib.get_close_matches(word, sorted(set(known)), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def unknown(kind: str, word: str, known: Iterable[str]) -> str:
    names = sorted(set(known))
    return f"unknown {kind} {word!r}." + did_you_mean(word, names) + f" Known: {', '.join(names) or 'none'}."


async def require_pod(client: GatewayClient, request_id: str) -> Any:
    try:
        return await client.get_pod(request_id)
    except NotFound:
        raise CommandError(f"no pod with request id {request_id!r} (see `podgate pods list`)") from None


def table(rows: Sequence[Sequence[str]], out: Any = None) -> None:
    out = out or sys.stdout
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(), file=out)


def plain(value: Any) -> Any:
    """A client dataclass as JSON-able data (enums by value, times as RFC 3339, secrets never included)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.repr and f.name != "kubeconfig"
        }
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def dump(data: Any, output: str) -> None:
    """-o json or -o yaml."""
    if output == "json":
        print(json.dumps(data, indent=2))
        return
    import yaml

    print(yaml.safe_dump(data, sort_keys=False).rstrip())


def age(when: datetime | None, now: datetime | None = None) -> str:
    if when is None:
        return "-"
    seconds = int(((now or datetime.now(when.tzinfo)) - when).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"
