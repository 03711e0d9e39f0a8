"""What the actions worker does when its claim or its housekeeping fails: an outage is waited
out, anything else (a bug, a refused statement) is logged with its traceback and tried again at
the same pace. Neither kind stops the worker, ends the housekeeping loop, or makes it spin."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.actions import dispatcher as dispatcher_module
from services.actions import housekeeping as housekeeping_module
from services.actions.dispatcher import Dispatcher
from services.actions.housekeeping import Housekeeping
from services.actions.settings import ActionsSettings
from services.actions.signing import SigningSecrets
from shared.clock import ManualClock

ENGINE: AsyncEngine = None  # type: ignore[assignment]  # the store is replaced in these tests
SETTINGS = ActionsSettings(dispatch_poll_s=0.01, gauge_interval_s=0.01, shutdown_grace_s=0.1)


@pytest.fixture
def quiet_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """Housekeeping's queries find nothing (the claim is replaced per test)."""
    async def backlog(engine: Any) -> tuple[dict[str, int], dict[str, int]]:
        return {}, {}

    async def purge_finished(engine: Any, before: datetime, batch: int = 5000) -> int:
        return 0

    monkeypatch.setattr(housekeeping_module, "backlog", backlog)
    monkeypatch.setattr(housekeeping_module, "purge_finished", purge_finished)


def dispatcher() -> Dispatcher:
    return Dispatcher(ENGINE, SETTINGS, httpx.MockTransport(lambda r: httpx.Response(204)),
                      ManualClock(), secrets=SigningSecrets({}))


async def test_a_claim_that_fails_of_a_bug_is_logged_and_retried_no_faster_than_a_second(
    monkeypatch: pytest.MonkeyPatch, quiet_store: None, caplog: pytest.LogCaptureFixture,
) -> None:
    claims: list[float] = []

    async def claim_due(*args: Any, **kwargs: Any) -> Any:
        claims.append(time.monotonic())
        raise ValueError("a bug in the claim")

    monkeypatch.setattr(dispatcher_module, "claim_due", claim_due)
    worker = dispatcher()
    running = asyncio.create_task(worker.run())
    for _ in range(30):  # deliveries created all the while: wake() must not cut the pause
        worker.wake()
        await asyncio.sleep(0.01)
    assert claims and all(b - a >= 0.9 for a, b in itertools.pairwise(claims))
    worker.stop()
    await asyncio.wait_for(running, 2.0)  # the pause ends at once on stop; no raise
    [line] = [r for r in caplog.records if "claiming deliveries failed" in r.getMessage()]
    assert line.levelno == logging.ERROR and line.exc_info is not None
    assert "ValueError" in line.getMessage() and "not an outage" in line.getMessage()


async def test_a_claim_that_meets_an_outage_is_retried_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, quiet_store: None, caplog: pytest.LogCaptureFixture,
) -> None:
    async def claim_due(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionRefusedError()

    monkeypatch.setattr(dispatcher_module, "claim_due", claim_due)
    worker = dispatcher()
    running = asyncio.create_task(worker.run())
    await asyncio.sleep(0.05)
    worker.stop()
    await asyncio.wait_for(running, 2.0)
    lines = [r for r in caplog.records if "claiming deliveries failed" in r.getMessage()]
    assert lines and all(r.levelno == logging.WARNING and r.exc_info is None for r in lines)
    assert lines[0].getMessage() == "claiming deliveries failed (ConnectionRefusedError); retrying"


async def test_a_bug_in_housekeeping_is_logged_and_the_next_round_still_comes(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    rounds = 0

    async def backlog(engine: Any) -> tuple[dict[str, int], dict[str, int]]:
        nonlocal rounds
        rounds += 1
        raise KeyError("a bug in the gauges")

    async def purge_finished(engine: Any, before: datetime, batch: int = 5000) -> int:
        raise OSError("the database went away")

    monkeypatch.setattr(housekeeping_module, "backlog", backlog)
    monkeypatch.setattr(housekeeping_module, "purge_finished", purge_finished)
    housekeeping = Housekeeping(ENGINE, SETTINGS, ManualClock(), {})
    running = asyncio.create_task(housekeeping.run())
    await asyncio.sleep(0.1)
    assert not running.done()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    # About one round per interval (0.01 s): it keeps going, and never faster.
    assert 2 <= rounds <= 12
    bugs = [r for r in caplog.records if r.getMessage().startswith("housekeeping failed")]
    assert len(bugs) == rounds and all(r.exc_info is not None for r in bugs)
    [purge] = [r for r in caplog.records if "purging old deliveries failed" in r.getMessage()]
    assert purge.levelno == logging.WARNING  # an outage: the purge is tried again in 10 min
