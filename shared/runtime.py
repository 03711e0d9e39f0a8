"""Process-wide garbage-collector tuning, shared by the services that allocate per event.

Reference counting frees almost everything a Polku service allocates; the cycle collector
only has to run now and then. With CPython's default thresholds (700, 10, 10) it runs every 700
net container allocations, promoting the objects a request or batch keeps alive until it is done
and rescanning them later in full collections.
"""

from __future__ import annotations

import gc


def collect_less_often(young: int, middle: int | None = None, *, freeze: bool = False) -> None:
    """Raise the collection thresholds (the oldest generation's stays); with `freeze`, first
    move everything start-up created to a generation no collection scans."""
    if freeze:
        gc.collect()
        gc.freeze()
    _, current_middle, old = gc.get_threshold()
    gc.set_threshold(young, current_middle if middle is None else middle, old)
