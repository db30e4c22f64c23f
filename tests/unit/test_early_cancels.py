"""Cancels told of before the request's runner started here: taken once, the stored flag as the fallback."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway import domain
from gateway.pods.cancels import DEFAULT_REASON, EarlyCancels


def record(request_id: str, *, stored: str | None = None) -> domain.PodRecord:
    request = domain.PodRequest(request_id=request_id, pod={})
    asked = datetime.now(UTC) if stored is not None else None
    return domain.PodRecord(
        request=request, phase=domain.PodPhase.QUEUED, cancel_requested_at=asked, cancel_reason=stored or ""
    )


def test_a_told_cancel_is_taken_once_and_wins_over_the_stored_one() -> None:
    cancels = EarlyCancels()
    cancels.remember("r1", "told over NOTIFY")
    assert cancels.take(record("r1", stored="stored first")) == "told over NOTIFY"
    assert cancels.take(record("r1")) is None  # taken: a later runner of the record goes by the record
    assert cancels.take(record("r1", stored="stored first")) == "stored first"
    assert cancels.take(record("r1", stored="")) == DEFAULT_REASON


def test_it_keeps_only_the_latest_and_forgets_the_oldest_first() -> None:
    cancels = EarlyCancels(kept=3)
    for request_id in ("a", "b", "c", "a", "d"):  # "a" again: now the newest
        cancels.remember(request_id, request_id)
    assert len(cancels) == 3
    assert [cancels.take(record(r)) for r in ("a", "b", "c", "d")] == ["a", None, "c", "d"]
