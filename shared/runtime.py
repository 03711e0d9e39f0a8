"""Process-wide plumbing the services share: garbage-collector tuning, background loops.

Garbage collection:
Reference counting frees almost everything a Polku service allocates; the cycle collector
only has to run now and then. With CPython's default thresholds (700, 10, 10) it runs every 700
net container allocations, promoting the objects a request or batch keeps alive until it is done
and rescanning them later in full collections.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from typing import Any

log = logging.getLogger(__name__)


def collect_less_often(young: int, middle: int | None = None, *, freeze: bool = False) -> None:
    """Raise the collection thresholds (the oldest generation's stays); with `freeze`, first
    move everything start-up created to a generation no collection scans."""
    if freeze:
        gc.collect()
        gc.freeze()
    _, current_middle, old = gc.get_threshold()
    gc.set_threshold(young, current_middle if middle is None else middle, old)


def start_background(stack: AsyncExitStack, name: str, work: Coroutine[Any, Any, None],
                     stop: Callable[[], None], timeout_s: float) -> asyncio.Task[None]:
    """Run `work` as a task until the stack closes, when `stop()` asks it to finish within
    `timeout_s`. A task that dies of a bug takes the process down (SIGTERM): a service must not
    look healthy with its loop gone."""
    task = asyncio.create_task(work, name=name)
    task.add_done_callback(_crash_loudly)

    async def finish() -> None:
        stop()
        try:
            await asyncio.wait_for(task, timeout_s)
        except (TimeoutError, asyncio.CancelledError):
            log.warning("%s did not stop within %.0f s", name, timeout_s)
        except Exception:  # already logged by _crash_loudly
            pass

    stack.push_async_callback(finish)
    return task


def _crash_loudly(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.critical("%s died", task.get_name(), exc_info=task.exception())
        os.kill(os.getpid(), signal.SIGTERM)
