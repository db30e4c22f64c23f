"""How CPython's cyclic garbage collector runs in `podgate serve`: tuned once the gateway has started.

The gateway allocates many short-lived containers per pod (watch events, decoded records, journal
payloads), so with CPython's default thresholds (700, 10, 10) the collector ran about once a pod and
walked every object the gateway holds at each full collection: about 16 % of the gateway's CPU under
`bench/dispatch.py throughput`. Two standard remedies (as large CPython servers use them):
- `gc.freeze()` once started: what startup built (modules, classes, settings, clients) lives for the
  process, so later collections skip it;
- a young generation of 50,000 allocations instead of 700: most of a pod's objects are freed by reference
  counting before a collection would look at them, and cyclic garbage waits a little longer (bounded by
  those 50,000 objects).
Measured (bench/README.md, issue 16): 8.5-8.8 ms -> 8.0-8.1 ms of gateway CPU per pod; the collector's own
time 1.6-1.8 s -> 0.3 s for 1,000 pods (thread CPU time measured around each collection).
"""

from __future__ import annotations

import gc

THRESHOLDS = (50_000, 20, 50)  # young allocations; young collections per middle; middle per full


def settle() -> tuple[int, int, int]:
    """After startup: collects once, freezes what survives, sets the thresholds; returns the old ones."""
    before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    return before
