"""How long the client waits for each kind of call and stream: one value per cluster client, defaults here."""

from __future__ import annotations

from dataclasses import dataclass

LOG_INACTIVITY_SECONDS = 120.0


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


DEFAULT_TIMEOUTS = Timeouts()
