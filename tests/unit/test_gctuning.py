"""The collector as `podgate serve` tunes it once started (gateway/gctuning.py)."""

from __future__ import annotations

import gc

from gateway import gctuning


def test_settle_freezes_what_startup_built_and_raises_the_young_threshold() -> None:
    before = gc.get_threshold()
    built = [{"startup": i} for i in range(1000)]  # alive through settle, as startup's objects are
    try:
        assert gctuning.settle() == before
        assert gc.get_threshold() == gctuning.THRESHOLDS and gctuning.THRESHOLDS[0] > before[0]
        assert gc.get_freeze_count() >= len(built)  # frozen: later collections skip them
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
