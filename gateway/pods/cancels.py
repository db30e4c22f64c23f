"""Cancels that reach a gateway before (or without) the request's runner there (docs/decisions/0021).

Every cancel is stored on its record first (`Store.request_cancel`), so a runner started from a record
read after it cancels at once: after a takeover, a restart, or a claim of a record nobody ran. What the
stored flag cannot cover is a runner started from a record read just *before* the cancel was stored: a
submission whose insert is on its way back, or a claim round, when the cancel (or the owner's NOTIFY of
it) arrives in between. Those are remembered here until the runner starts. Every replica hears every
cancel NOTIFY, so cancels of requests other replicas run are remembered too: bounded, oldest dropped
first (they only matter for milliseconds, and the stored flag stays).
"""

from __future__ import annotations

from collections import OrderedDict

from gateway import domain

KEPT = 1000
DEFAULT_REASON = "cancelled by the caller"


class EarlyCancels:
    def __init__(self, kept: int = KEPT) -> None:
        self._kept = kept
        self._reasons: OrderedDict[str, str] = OrderedDict()

    def remember(self, request_id: str, reason: str) -> None:
        self._reasons[request_id] = reason
        self._reasons.move_to_end(request_id)
        while len(self._reasons) > self._kept:
            self._reasons.popitem(last=False)

    def take(self, record: domain.PodRecord) -> str | None:
        """Why a runner starting now for `record` must cancel at once (told here, or stored), or None."""
        told = self._reasons.pop(record.request.request_id, None)
        if told is not None:
            return told
        if record.cancel_requested_at is not None:
            return record.cancel_reason or DEFAULT_REASON
        return None

    def __len__(self) -> int:
        return len(self._reasons)
