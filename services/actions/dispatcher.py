"""Delivers due deliveries: claims them from PostgreSQL, attempts each, records the results.

Deliveries reach the dispatcher two ways, and neither waits for a timer:
- the transition consumer of the same worker creates new deliveries already leased to the
  dispatcher, as many as each endpoint has room for (`reserve`, store.create_and_claim), and
  hands them over in memory (`accept`): they are attempted as soon as their transaction commits,
  with no claim round trip;
- everything else (retries, deliveries left to an expired lease or by another worker, replays,
  what did not fit) is claimed from the database: when the consumer or the delivery API says
  there are new ones (`wake`), when attempts have freed enough room for an endpoint that left
  due deliveries behind (claims come in batches of at least half its concurrency, not one per
  finished attempt), and every `dispatch_poll_s` in any case, which is the fallback for what
  other processes add.

The dispatcher claims and attempts; beside it, outcome.py decides what becomes of a delivery
after an attempt (a pure function), results.py writes the results behind, and housekeeping.py
keeps the gauges and the retention purge.

- Several workers can run: claims skip rows another worker holds and carry a lease; a worker
  killed mid-attempt leaves its deliveries to be claimed again when the lease runs out, so none
  is lost (the receiver may see a webhook-id twice and dedupes on it).
- One slow endpoint never delays the others: each endpoint gets at most
  `endpoint_concurrency` attempts at a time and its own circuit breaker, and a worker claims at
  most twice that many of an endpoint's deliveries (the second half waits in memory to follow
  the running ones without a database round trip), so one backlog never fills a worker.
- Results are written in small batches (results.py); the next attempt's time is stored with
  the delivery.
- What is an outage is decided by shared.failures, as for the consumers. An outage is waited
  out. Anything else here is a bug or a statement the database refuses whatever the data:
  there is no record to set aside, so it is logged with its traceback and tried again at the
  same pace, never faster; the worker stays up (a crash would stop nothing less, and in
  `polku dev` would take ingest and the stager down with it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Collection, Sequence
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from services.actions import metrics
from services.actions.attempt import Outcome, Result, attempt
from services.actions.breaker import Breaker, BreakerState
from services.actions.housekeeping import Housekeeping
from services.actions.outcome import NextState, Verdict, next_state
from services.actions.results import ResultWriter
from services.actions.retry import RetrySchedule
from services.actions.settings import ActionsSettings
from services.actions.signing import SecretUnavailable, SigningSecrets
from services.actions.store import FAILED, AttemptResult, Claim, Delivery, claim_due
from services.actions.transport import HttpTransport
from shared.clock import Clock
from shared.failures import is_outage
from shared.poll_loop import backoff

log = logging.getLogger(__name__)

GONE_HOLD_S = 30.0
# Claimed deliveries per endpoint, as a multiple of its concurrency (see Dispatcher.window).
PREFETCH = 2


class Dispatcher:
    def __init__(
        self,
        engine: AsyncEngine,
        settings: ActionsSettings,
        transport: HttpTransport,
        clock: Clock,
        *,
        secrets: SigningSecrets,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.transport = transport
        self.secrets = secrets
        # Schedules retries and leases; a ManualClock in tests. Signatures use the wall clock
        # (`wall`), because receivers compare webhook-timestamp with theirs.
        self.clock = clock
        self.wall = wall
        self.monotonic = monotonic
        self.schedule = RetrySchedule.of(settings.retry_schedule_s, settings.retry_jitter,
                                         settings.retry_after_max_s)
        self.breakers: dict[str, Breaker] = {}
        self._metrics: dict[str, metrics.EndpointMetrics] = {}
        # Endpoints that just answered 410, until their disabling is surely written down.
        self._gone: dict[str, float] = {}
        self._busy: Counter[str] = Counter()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        # Claimed deliveries waiting for a free slot of their endpoint, with their claim token.
        self._queued: dict[str, deque[tuple[Delivery, str]]] = {}
        # Room reserved for deliveries being created (reserve), until they are accepted.
        self._reserved: Counter[str] = Counter()
        # Endpoints whose last claim (or creation) may have left due deliveries in the
        # database; `_backlog_all`: the worker's own limit cut the last claim short.
        self._backlogged: set[str] = set()
        self._backlog_all = False
        # Endpoints given unclaimed deliveries while a claim was running (it may not see them).
        self._announced: set[str] = set()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self.results = ResultWriter(engine, self._finished)
        self.housekeeping = Housekeeping(engine, settings, clock, self.breakers,
                                         monotonic=monotonic)

    # -- control -------------------------------------------------------------------------------

    def wake(self) -> None:
        """New or replayed deliveries may be due: look now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def _finished(self) -> bool:
        """Stopping, with no attempt running: no result will come any more."""
        return self._stopping.is_set() and not self._tasks

    async def run(self) -> None:
        writer = asyncio.create_task(self.results.run(), name="actions-writer")
        gauges = asyncio.create_task(self.housekeeping.run(), name="actions-gauges")
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                try:
                    await self.dispatch_once()
                except Exception as exc:
                    if is_outage(exc):
                        log.warning("claiming deliveries failed (%s); retrying",
                                    type(exc).__name__)
                        await self._sleep(1.0)
                    else:
                        log.exception("claiming deliveries failed (%s), not an outage; "
                                      "retrying", type(exc).__name__)
                        await backoff(self._stopping)  # wake() must not make it loop hot
                    continue
                # Until something says there is more to claim, or the fallback poll is due.
                await self._sleep(self.settings.dispatch_poll_s)
        finally:
            gauges.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gauges
            await self._drain()
            self.results.flush()
            await writer

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _drain(self) -> None:
        """Give back what waits unstarted; let running attempts finish within the grace period,
        then cut them short (their deliveries are sent again, with the same webhook-id)."""
        for endpoint in list(self._queued):
            self._release_queued(endpoint)
        if self._tasks:
            _, late = await asyncio.wait(list(self._tasks.values()),
                                         timeout=self.settings.shutdown_grace_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    # -- claiming ------------------------------------------------------------------------------

    def breaker(self, endpoint_id: str) -> Breaker:
        breaker = self.breakers.get(endpoint_id)
        if breaker is None:
            s = self.settings
            breaker = Breaker(s.breaker_failures, s.breaker_open_s, s.breaker_max_open_s,
                              self.monotonic, endpoint=endpoint_id)
            self.breakers[endpoint_id] = breaker
        return breaker

    def enabled(self, endpoint_id: str) -> None:
        """An operator re-enabled the endpoint: forget that it said 410."""
        self._gone.pop(endpoint_id, None)

    def _is_gone(self, endpoint_id: str) -> bool:
        until = self._gone.get(endpoint_id)
        if until is not None and self.monotonic() >= until:
            del self._gone[endpoint_id]
            return False
        return until is not None

    @property
    def window(self) -> int:
        """Deliveries an endpoint may have claimed here: running plus as many waiting, so an
        attempt that finishes is followed at once, without a database round trip."""
        return self.settings.endpoint_concurrency * PREFETCH

    @property
    def claim_threshold(self) -> int:
        """How much room an endpoint with due deliveries left behind needs before a finished
        attempt makes the dispatcher claim again: half its concurrency, so claims come in
        batches rather than one round trip per attempt."""
        return max(1, self.settings.endpoint_concurrency // 2)

    def _room(self, endpoint: str, breaker: Breaker) -> int:
        """How many more deliveries of `endpoint` this worker may take now."""
        held = self._busy[endpoint] + len(self._queued.get(endpoint, ())) \
            + self._reserved[endpoint]
        free = max(0, self.window - held)
        if self._is_gone(endpoint) or (breaker.state is not BreakerState.CLOSED and held):
            free = 0
        return breaker.slots(free)

    def _total_room(self) -> int:
        waiting = sum(len(q) for q in self._queued.values())
        return self.settings.max_in_flight - len(self._tasks) - waiting \
            - sum(self._reserved.values())

    def free_slots(self) -> dict[str, int]:
        """How many more deliveries of each known endpoint to claim now."""
        return {endpoint: self._room(endpoint, breaker)
                for endpoint, breaker in self.breakers.items()}

    async def dispatch_once(self) -> int:
        """Claim what is due and start what the endpoints' limits allow; returns how many
        deliveries were claimed."""
        total = self._total_room()
        if total <= 0:
            self._backlog_all = True
            return 0
        now = self.clock.now()
        slots = self.free_slots()
        self._announced.clear()
        token, claimed = await claim_due(
            self.engine,
            now=now,
            lease_until=now + timedelta(seconds=self.settings.lease_s),
            slots=slots,
            default_slots=self.window,
            total=total,
            exclude=sorted(self.results.held),
        )
        self._enqueue(claimed, token)
        # Whoever got all they asked for may have more due; the others have none left.
        got = Counter(d.endpoint_id for d in claimed)
        self._backlog_all = len(claimed) >= total
        self._backlogged = {e for e, n in got.items() if n >= slots.get(e, self.window)}
        self._backlogged.update(e for e, n in slots.items() if n == 0)
        self._backlogged.update(self._announced)
        return len(claimed)

    # -- new deliveries, handed over by the transition consumer --------------------------------

    def reserve(self, endpoints: Collection[str]) -> Claim | None:
        """Room for new deliveries of `endpoints`, to be leased to this dispatcher as they are
        created (store.create_and_claim); held until `accept`. None: create them unclaimed
        (stopping, or new deliveries are not due at once)."""
        if self._stopping.is_set() or self.schedule.delays[0] > 0:
            return None
        total = self._total_room()
        room: dict[str, int] = {}
        for endpoint in sorted(endpoints):
            room[endpoint] = max(0, min(total, self._room(endpoint, self.breaker(endpoint))))
            total -= room[endpoint]
        self._reserved.update(room)
        lease_until = self.clock.now() + timedelta(seconds=self.settings.lease_s)
        return Claim(str(uuid.uuid4()), lease_until, room)

    def accept(self, claim: Claim | None, claimed: Sequence[Delivery],
               unclaimed: Collection[str]) -> None:
        """Take the deliveries created under `claim` (whatever became of the creation, every
        reservation ends here). `unclaimed`: endpoints that got new deliveries not leased here;
        they are claimed from the database."""
        if claim is not None:
            self._reserved.subtract(claim.room)
            self._reserved = +self._reserved  # forget the zeros
            if self._stopping.is_set():
                for delivery in claimed:
                    self.results.release(delivery.id, claim.token)
            else:
                self._enqueue(claimed, claim.token)
        self._backlogged.update(unclaimed)
        self._announced.update(unclaimed)
        # Claim now what has room to start; the rest follows as attempts free room.
        if any(self._room(e, self.breaker(e)) >= self.claim_threshold for e in unclaimed):
            self.wake()

    def _enqueue(self, claimed: Sequence[Delivery], token: str) -> None:
        for delivery in claimed:
            self.results.hold(delivery.id)
            self._queued.setdefault(delivery.endpoint_id, deque()).append((delivery, token))
        for endpoint in {d.endpoint_id for d in claimed}:
            self._start_ready(endpoint)

    def _room_freed(self, endpoint: str) -> None:
        """An attempt of `endpoint` ended: claim again if enough room has opened for what
        it (or any endpoint, after a claim the worker's limit cut short) left behind."""
        if not (self._backlog_all or endpoint in self._backlogged):
            return
        if self._room(endpoint, self.breaker(endpoint)) >= self.claim_threshold:
            self._wake.set()

    def _start_ready(self, endpoint: str) -> None:
        """Start the endpoint's waiting deliveries while it has free concurrency."""
        queue = self._queued.get(endpoint)
        if not queue:
            return
        breaker = self.breaker(endpoint)
        if self._stopping.is_set() or self._is_gone(endpoint) or (
            breaker.state is BreakerState.OPEN
        ):
            self._release_queued(endpoint)  # it said 410 or its breaker opened since the claim
            return
        limit = self.settings.endpoint_concurrency
        while queue and self._busy[endpoint] < limit and breaker.allow():
            delivery, token = queue.popleft()
            self._busy[endpoint] += 1
            self._tasks[delivery.id] = asyncio.create_task(self._deliver(delivery, token))
        metrics.IN_FLIGHT.set(len(self._tasks))

    def _release_queued(self, endpoint: str) -> None:
        queue = self._queued.pop(endpoint, deque())
        for delivery, token in queue:
            self.results.release(delivery.id, token)

    # -- attempting ----------------------------------------------------------------------------

    async def _deliver(self, delivery: Delivery, token: str) -> None:
        endpoint = delivery.endpoint_id
        breaker = self.breaker(endpoint)
        try:
            outcome = await self._attempt(delivery)
        except Exception as exc:  # a bug must not strand the delivery: record it as failed
            log.exception("attempt of delivery %s crashed", delivery.id)
            outcome = Outcome(Result.FAILED, error=f"internal error: {type(exc).__name__}",
                              kind="internal_error")
        except asyncio.CancelledError:
            # Shutdown cut the attempt short: not an attempt; the next claim sends it again.
            breaker.record_abandoned()
            self.results.release(delivery.id, token)
            raise
        finally:
            self._busy[endpoint] -= 1
            self._tasks.pop(delivery.id, None)
            metrics.IN_FLIGHT.set(len(self._tasks))
        if outcome.result is Result.GONE:
            # Claim nothing more for it while the disabling is being written.
            self._gone[endpoint] = self.monotonic() + GONE_HOLD_S
        if outcome.endpoint_failure:
            breaker.record_failure()
        elif outcome.result is Result.DELIVERED:
            breaker.record_success()
        else:
            breaker.record_abandoned()
        counted = self._metrics_of(endpoint)
        counted.breaker_state.set(int(breaker.state))
        counted.attempt_seconds.observe(outcome.seconds)
        self.results.add(self.result(delivery, token, outcome))
        self._start_ready(endpoint)
        self._room_freed(endpoint)

    def _metrics_of(self, endpoint: str) -> metrics.EndpointMetrics:
        found = self._metrics.get(endpoint)
        if found is None:
            found = self._metrics[endpoint] = metrics.EndpointMetrics(endpoint)
        return found

    async def _attempt(self, delivery: Delivery) -> Outcome:
        try:
            keys = self.secrets.resolve(delivery.secret_env, delivery.secret_file)
        except SecretUnavailable as exc:
            return Outcome(Result.FAILED, error=f"signing secret unavailable: {exc}",
                           kind="secret_unavailable")
        return await attempt(
            self.transport,
            url=delivery.url,
            webhook_id=delivery.id,
            body=delivery.payload.encode(),
            keys=keys,
            timestamp=int(self.wall()),
            extra_headers=delivery.headers,
            timeout_s=self.settings.attempt_timeout_s,
            excerpt_chars=self.settings.response_excerpt_chars,
        )

    def result(self, delivery: Delivery, token: str, outcome: Outcome) -> AttemptResult:
        """The delivery's next state after this attempt (outcome.next_state), counted and
        logged, as the write-behind stores it."""
        now = self.clock.now()
        endpoint = delivery.endpoint_id
        state = next_state(delivery, outcome, self.schedule, now)
        if state.verdict is Verdict.GONE:
            metrics.ENDPOINTS_DISABLED.labels(endpoint).inc()
        if state.verdict is not Verdict.DELIVERED:
            _log_attempt(state, delivery, outcome)
        self._metrics_of(endpoint).attempts(state.verdict.value).inc()
        if state.verdict is Verdict.DELIVERED:
            seconds = (now - delivery.created_at).total_seconds()
            metrics.TRANSITION_TO_DELIVERY.observe(max(0.0, seconds))
        if state.status == FAILED:
            metrics.DEAD_LETTERS.labels(endpoint).inc()
        return AttemptResult(delivery.id, token, endpoint, state.status, now,
                             state.next_attempt_at, outcome.http_status, state.error,
                             state.verdict is Verdict.GONE)


def _log_attempt(state: NextState, delivery: Delivery, outcome: Outcome) -> None:
    """One line per failed attempt. Names the delivery, its endpoint and journey by id; never
    the contact, the body, the receiver's answer or the URL (a query string may hold a token)."""
    if state.verdict is Verdict.GONE:
        what = "endpoint answered 410 Gone, disabled until an operator enables it; dead-lettered"
    elif state.verdict is Verdict.REFUSED:
        what = "refused, dead-lettered without retry"
    elif state.verdict is Verdict.EXHAUSTED:
        what = "failed, dead-lettered: the retry schedule is exhausted"
    else:
        what = f"failed, next attempt in {state.delay_s:.1f} s"
    log.warning("webhook delivery %s to endpoint %s (journey %s) attempt %d %s "
                "(status %s, error %s)", delivery.id, delivery.endpoint_id, delivery.journey_id,
                state.attempts_made, what, outcome.http_status or "-", outcome.kind or "-")
