"""The Kubernetes WebSocket remote-command framing (v4/v5.channel.k8s.io), pure.

Each binary message is one channel byte then data: 0 stdin, 1 stdout, 2 stderr, 3 error (a JSON
`Status` with the exit code, v4+), 4 resize. v5 adds a close signal: byte 255 then the channel to close.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any, NamedTuple

CLOSE_SIGNAL = 255


class Channel(enum.IntEnum):
    STDIN = 0
    STDOUT = 1
    STDERR = 2
    ERROR = 3
    RESIZE = 4


class ExecResult(NamedTuple):
    exit_code: int
    stdout: bytes
    stderr: bytes


class ExecProtocolError(ValueError):
    """The server broke the remote-command protocol (unknown channel, unreadable status)."""


def encode_frame(channel: Channel, data: bytes) -> bytes:
    return bytes([channel]) + data


def encode_close(channel: Channel) -> bytes:
    """v5 only: tell the server that we will send nothing more on `channel` (e.g. end of stdin)."""
    return bytes([CLOSE_SIGNAL, channel])


def decode_frame(message: bytes) -> tuple[Channel, bytes]:
    if not message:
        raise ExecProtocolError("empty WebSocket frame")
    try:
        return Channel(message[0]), message[1:]
    except ValueError as e:
        raise ExecProtocolError(f"frame on unknown channel {message[0]}") from e


def exit_code_from_status(raw: bytes) -> int:
    """The exit code in the error channel's Status: 0 on Success, the ExitCode cause on NonZeroExitCode."""
    try:
        status: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ExecProtocolError(f"error channel carries no JSON status: {raw[:200]!r}") from e
    if not isinstance(status, dict):
        raise ExecProtocolError("error channel status is not an object")
    if status.get("status") == "Success":
        return 0
    if status.get("reason") == "NonZeroExitCode":
        for cause in (status.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode":
                try:
                    return int(cause.get("message", ""))
                except ValueError as e:
                    raise ExecProtocolError(f"exit code {cause.get('message')!r} is not a number") from e
    raise ExecProtocolError(f"exec failed: {str(status.get('message', status))[:300]}")


@dataclass
class ExecCollector:
    """Accumulates one exec's output from frames, bounded: output beyond `limit` bytes is an error."""

    limit: int = 16 << 20
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    status: bytearray = field(default_factory=bytearray)

    def feed(self, message: bytes) -> None:
        channel, data = decode_frame(message)
        target = {Channel.STDOUT: self.stdout, Channel.STDERR: self.stderr, Channel.ERROR: self.status}.get(channel)
        if target is None:
            return  # stdin/resize echoes carry nothing for us
        target += data
        if len(self.stdout) + len(self.stderr) > self.limit:
            raise ExecProtocolError(f"exec output exceeds {self.limit} bytes")

    def result(self) -> ExecResult:
        if not self.status:
            raise ExecProtocolError("the server closed the exec stream without an exit status")
        return ExecResult(exit_code_from_status(bytes(self.status)), bytes(self.stdout), bytes(self.stderr))
