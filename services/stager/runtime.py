"""Process-wide tuning for a stager process (called by `polku stager` and bench.stager)."""

from __future__ import annotations

import gc

# Python's default (700, 10, 10) runs a collection every 700 net container allocations. A batch
# of 2,000 touchpoints keeps tens of thousands of objects alive until it commits, so they are
# all promoted to the oldest generation and then rescanned there again and again: with the
# shipped journeys that cost about a fifth of the stager's CPU. Reference counting frees almost
# everything the stager allocates; the cycle collector only has to run now and then.
GC_THRESHOLDS = (50_000, 20, 10)


def tune_garbage_collector() -> None:
    """Collect cycles less often, and never rescan what exists once start-up is done."""
    gc.collect()
    gc.freeze()  # journeys, modules, pools: moved to a generation no collection scans
    gc.set_threshold(*GC_THRESHOLDS)
