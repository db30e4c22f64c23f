"""How long the client waits for each kind of call and stream: one value per cluster client, defaults here."""

from __future__ import annotations

from dataclasses import dataclass

LOG_INACTIVITY_SECONDS = 120.0
HTTP2_READ_IDLE_SECONDS = 30.0  # client-go's ReadIdleTimeout
HTTP2_PING_SECONDS = 15.0  # client-go's PingTimeout


@dataclass(frozen=True, kw_only=True)
class Timeouts:
    connect: float = 5.0
    request: float = 30.0  # whole ordinary request, answer included
    watch_seconds: int = 290  # asked of the server: it ends the watch cleanly after this
    watch_inactivity: float = 330.0  # no byte (not even a bookmark) for this long: the watch is dead
    # No byte of a log for this long: the stream raises StreamSilent and a follower reopens it from its last
    # line's time. A silent container sends nothing either, so this is the price of noticing a connection
    # dropped without FIN or RST (keepalive sees a dead peer, not a middlebox that forgot the flow).
    log_inactivity: float | None = LOG_INACTIVITY_SECONDS
    exec_total: float = 120.0
    # An HTTP/2 connection nothing was read from for this long is PINGed, and dropped (its requests and streams
    # fail as unreachable, and resume) when no answer comes within `http2_ping`: client-go's defaults.
    http2_read_idle: float = HTTP2_READ_IDLE_SECONDS
    http2_ping: float = HTTP2_PING_SECONDS


DEFAULT_TIMEOUTS = Timeouts()
