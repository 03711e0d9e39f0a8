"""Housekeeping beside the dispatcher: the backlog and breaker gauges, the retention purge.

Every `gauge_interval_s` the worker publishes, per endpoint, how many deliveries wait for a
retry, how many dead letters are stored, and the state of its circuit breaker; every
`PURGE_EVERY_S` it deletes the delivered and dead-lettered deliveries created more than
`retention_days` ago, in batches of `PURGE_BATCH`, each its own short transaction (a purge never
holds a lock for long).

Nothing here decides a delivery's fate, so nothing here may stop deliveries: an outage skips the
round's database work (the claim loop already says so in the log), and any other failure is
logged with its traceback and the next round comes after the same interval. The loop neither
dies unnoticed nor spins.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from services.actions import metrics
from services.actions.breaker import Breaker
from services.actions.settings import ActionsSettings
from services.actions.store import backlog, purge_finished
from shared.clock import Clock
from shared.failures import is_outage

log = logging.getLogger(__name__)

PURGE_EVERY_S = 600.0
PURGE_BATCH = 5000


class Housekeeping:
    def __init__(
        self,
        engine: AsyncEngine,
        settings: ActionsSettings,
        clock: Clock,
        breakers: Mapping[str, Breaker],
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`breakers` is the dispatcher's own mapping, read afresh each round (it grows as
        endpoints appear)."""
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.breakers = breakers
        self.monotonic = monotonic
        # Endpoints that had a backlog gauge, so one whose backlog emptied reads 0.
        self._known: set[str] = set()
        self._next_purge = 0.0

    async def run(self) -> None:
        while True:
            try:
                await self.round()
            except Exception as exc:
                log.exception("housekeeping failed (%s), not an outage; next round in %g s",
                              type(exc).__name__, self.settings.gauge_interval_s)
            await asyncio.sleep(self.settings.gauge_interval_s)

    async def round(self) -> None:
        """The gauges and, when it is due, the purge first."""
        if self.monotonic() >= self._next_purge:
            self._next_purge = self.monotonic() + PURGE_EVERY_S
            await self.purge()
        await self.update_gauges()

    async def purge(self) -> None:
        cutoff = self.clock.now() - timedelta(days=self.settings.retention_days)
        try:
            while await purge_finished(self.engine, cutoff, PURGE_BATCH) == PURGE_BATCH:
                pass  # each batch is its own short transaction
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.warning("purging old deliveries failed (%s)", type(exc).__name__)

    async def update_gauges(self) -> None:
        try:
            pending, dead = await backlog(self.engine)
        except Exception as exc:
            if not is_outage(exc):
                raise
        else:
            for endpoint in self._known | set(pending) | set(dead):
                metrics.RETRIES_PENDING.labels(endpoint).set(pending.get(endpoint, 0))
                metrics.DEAD_LETTERS_STORED.labels(endpoint).set(dead.get(endpoint, 0))
            self._known |= set(pending) | set(dead)
        for endpoint, breaker in self.breakers.items():
            metrics.BREAKER_STATE.labels(endpoint).set(int(breaker.state))
