"""Write-behind of attempt results: what the dispatcher decided is stored in small batches.

An attempt's result does not wait for its own database round trip: results that finish within a
few milliseconds of each other are written together (store.record_results, one transaction).
Until a delivery's result, or its release unattempted, is written, the delivery is *held*: the
dispatcher does not claim it again, though its lease may run out meanwhile.

A result that is never written loses nothing: the delivery's lease runs out and it is attempted
again, with the same webhook-id (the receiver dedupes). So
- an outage is retried every second, the batch kept in order ahead of later results, except
  when the dispatcher has finished (stopping, nothing running): then it is given up;
- any other failure would fail the same way for ever and hold every later result back: the
  batch is dropped and left to its leases.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from services.actions.store import AttemptResult, record_results
from shared.failures import is_outage

log = logging.getLogger(__name__)

# How long a first result waits for others to join its batch.
GATHER_S = 0.005


class ResultWriter:
    def __init__(self, engine: AsyncEngine, finished: Callable[[], bool]) -> None:
        """`finished()` says no result will come any more (the dispatcher is stopping and
        nothing runs): the writer then returns once what it has is written or given up."""
        self.engine = engine
        self.finished = finished
        # Claimed by this worker and not yet written back: never claimed again meanwhile.
        self.held: set[str] = set()
        self._results: list[AttemptResult] = []
        self._released: list[tuple[str, str]] = []
        self._flush = asyncio.Event()

    def hold(self, delivery_id: str) -> None:
        self.held.add(delivery_id)

    def add(self, result: AttemptResult) -> None:
        self._results.append(result)
        self._flush.set()

    def release(self, delivery_id: str, token: str) -> None:
        """Give back a claimed delivery unattempted (its claim is cleared, not its lease's
        end awaited), e.g. at shutdown or when its endpoint's breaker opened."""
        self._released.append((delivery_id, token))
        self._flush.set()

    def flush(self) -> None:
        """Write what waits now; the last call, once finished, ends `run`."""
        self._flush.set()

    async def run(self) -> None:
        while True:
            await self._flush.wait()
            self._flush.clear()
            await asyncio.sleep(GATHER_S)  # let a few more results join this batch
            await self.write_pending()
            if self.finished():
                return

    async def write_pending(self) -> None:
        while self._results or self._released:
            results, self._results = self._results, []
            released, self._released = self._released, []
            try:
                swept = await record_results(self.engine, results, released)
            except Exception as exc:
                if not is_outage(exc):
                    # Retrying would fail the same way for ever and hold every later result
                    # back. Dropped results are safe: the leases run out and the deliveries
                    # are attempted again, with the same webhook-id.
                    log.error("writing %d results failed (%s); left to their leases",
                              len(results) + len(released), type(exc).__name__)
                    self._unhold(results, released)
                    continue
                log.warning("writing %d results failed (%s); retrying",
                            len(results) + len(released), type(exc).__name__)
                self._results[:0] = results
                self._released[:0] = released
                if self.finished():
                    # Unwritten results are safe: the leases run out and the deliveries are
                    # attempted again, with the same webhook-id.
                    return
                await asyncio.sleep(1.0)
                continue
            if swept:
                log.warning("endpoint answered 410 Gone: %d waiting deliveries dead-lettered",
                            swept)
            self._unhold(results, released)

    def _unhold(self, results: list[AttemptResult], released: list[tuple[str, str]]) -> None:
        self.held.difference_update(r.delivery_id for r in results)
        self.held.difference_update(i for i, _ in released)
