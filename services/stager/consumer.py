"""The stager's main loop: consume touchpoints per partition, apply them, fire timers, publish.

Offsets live in the database beside the state they produced (see store.py), so on every
partition assignment the consumer seeks to the stored offset instead of the log's committed one.
The log is Kafka, or the embedded log in `polku dev` (shared/streams.py): this loop is the same.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.stager import metrics
from services.stager.offsets import Partition, stored_offsets
from services.stager.processing import Changes, DeadLetter, Record
from services.stager.publisher import publish_outbox
from services.stager.settings import StagerSettings
from services.stager.store import (
    DEDUPE_PURGE_EVERY,
    Identity,
    apply_batch,
    dead_letter_record,
    fire_timers,
    purge_dedupe,
    stage_counts,
)
from shared.clock import Clock
from shared.failures import failure_reason, failure_text, is_outage, isolate
from shared.journey import Journey
from shared.lag import ConsumerLag
from shared.poll_loop import backoff, poll_until_stopped, seek_if_owned
from shared.streams import RecordConsumer, RecordWriter
from shared.wire import Topics

log = logging.getLogger(__name__)

class _SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, stager: Stager) -> None:
        self.stager = stager

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # Nothing to flush: every applied batch is already committed with its offset.
        self.stager.forget(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.stager.seek_assigned(assigned)


class Stager:
    """One stager instance: a consumer group member plus its timers and outbox publisher."""

    def __init__(
        self,
        consumer: RecordConsumer,
        writer: RecordWriter,
        engine: AsyncEngine,
        settings: StagerSettings,
        topics: Topics,
        journeys: Sequence[Journey],
        clock: Clock,
    ) -> None:
        """Every part is handed in (services/stager/worker.py assembles them): `consumer` is a
        member of the stager's group on Kafka (services/stager/app.py) or on the embedded log
        (services/dev/app.py); `writer` appends to the same log."""
        self.consumer = consumer
        self.writer = writer
        self.engine = engine
        self.settings = settings
        self.topics = topics
        self.journeys = list(journeys)
        self.clock = clock
        self.identity_rules = settings.identity_rules
        # The topics the store's outbox rows are published to.
        self._stopping = asyncio.Event()
        self._next_timer_sweep = 0.0
        self._next_gauge_update = 0.0
        self._next_purge = 0.0
        # Per partition, the latest event time read since it was assigned (see timer_time).
        self._stream_time: dict[TopicPartition, datetime] = {}
        self._lag = ConsumerLag(metrics.CONSUMER_LAG_RECORDS, metrics.CONSUMER_LAG_SECONDS)

    async def seek_assigned(self, assigned: list[TopicPartition]) -> None:
        offsets = await stored_offsets(self.engine, self.settings.group_id,
                                       self.topics.touchpoints)
        for tp in assigned:
            if tp.partition in offsets:
                self.consumer.seek(tp, offsets[tp.partition])
            else:
                await self.consumer.seek_to_beginning(tp)
        self.forget(assigned)  # what an earlier owner read is not known here
        log.info("assigned partitions %s", sorted(tp.partition for tp in assigned))

    def _partition_count(self, tp: TopicPartition) -> int:
        """Partitions of the touchpoints topic: an id's partition is its key's, among them."""
        known = self.consumer.partitions_for_topic(tp.topic)
        if not known:  # metadata not yet known: what this instance has seen of the topic
            raise RuntimeError(f"no metadata for topic {tp.topic!r} yet")
        return len(known)

    def forget(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._stream_time.pop(tp, None)

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        await poll_until_stopped(self.consumer, [self.topics.touchpoints], self.poll_once,
                                 self._stopping, worker="stager",
                                 listener=_SeekToStoredOffsets(self))

    async def poll_once(self) -> None:
        owned = max(1, len(self.consumer.assignment()))
        batches = await self.consumer.getmany(
            timeout_ms=self.settings.poll_timeout_ms, max_records=self.settings.max_batch * owned
        )
        # Partitions are independent (each has its own offset row and contacts), so their
        # batches run concurrently: one partition's engine work overlaps another's commit.
        await asyncio.gather(*(
            self._apply_or_rewind(tp, [Record(m.offset, m.key, m.value) for m in messages])
            for tp, messages in batches.items()
        ))
        now = time.monotonic()
        try:
            await self._lag.publish(self.consumer, self._stream_time, self.clock.now())
            if now >= self._next_timer_sweep:
                self._next_timer_sweep = now + self.settings.timer_interval_s
                await self.sweep_timers()
            if now >= self._next_gauge_update:
                self._next_gauge_update = now + self.settings.stage_gauge_interval_s
                await self.update_gauges()
            if now >= self._next_purge:
                self._next_purge = now + DEDUPE_PURGE_EVERY.total_seconds()
                await purge_dedupe(self.engine,
                                   self.clock.now() - self.settings.journal_retention)
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.warning("housekeeping failed (%s); retrying", type(exc).__name__)
            await self._backoff()

    async def _apply_or_rewind(self, tp: TopicPartition, records: list[Record]) -> None:
        """Apply a partition's batch; a record that cannot be applied is dead-lettered and the
        rest applied (shared.failures.isolate); an outage rewinds to retry the batch later."""
        try:
            await isolate(records, lambda part: self.apply(tp, list(part)),
                          lambda record, error: self.set_aside(tp, record, error))
        except Exception as exc:
            if not is_outage(exc):
                raise
            # What was committed stays so (its offset is stored); the rest is fetched again.
            log.warning("partition %d batch failed (%s); retrying", tp.partition,
                        type(exc).__name__)
            seek_if_owned(self.consumer, tp, records[0].offset)
            await self._backoff()

    async def _backoff(self) -> None:
        await backoff(self._stopping)

    async def apply(self, tp: TopicPartition, records: list[Record]) -> None:
        started = time.perf_counter()
        where = Partition(self.settings.group_id, tp.topic, tp.partition)
        identity = Identity(self.identity_rules, self._partition_count(tp),
                            await self.timer_time(tp))
        result = await apply_batch(self.engine, where, records, self.journeys, self.topics,
                                   identity)
        if result.skipped and result.next_offset is not None:
            # Another instance applied these while it owned the partition; resume after them.
            seek_if_owned(self.consumer, tp, result.next_offset)
        if result.latest_event_at is not None:
            seen = self._stream_time.get(tp)
            if seen is None or result.latest_event_at > seen:
                self._stream_time[tp] = result.latest_event_at
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        metrics.BATCH_SIZE.observe(len(records))
        metrics.EVENTS.labels("applied").inc(result.applied)
        metrics.EVENTS.labels("duplicate").inc(result.duplicates)
        metrics.EVENTS.labels("dead_letter").inc(len(result.dead_letters))
        metrics.EVENTS.labels("forwarded").inc(result.forwarded)
        metrics.EVENTS.labels("suppressed").inc(result.suppressed)
        for dead in result.dead_letters:
            metrics.DEAD_LETTERS.labels(dead.reason).inc()
            log.warning("dead-lettered offset %d of partition %d: %s", dead.offset,
                        tp.partition, dead.error)
        self._count(result.changes, self.clock.now())
        if result.changes.transitions or result.dead_letters or result.forwarded:
            # A batch that wrote nothing to the outbox skips the look; rows an earlier owner
            # left behind go out with the next timer sweep (every timer_interval_s).
            await publish_outbox(self.engine, self.writer, tp.partition, self.topics)

    async def set_aside(self, tp: TopicPartition, record: Record, error: Exception) -> None:
        """Dead-letter one record the stager cannot apply (it is not an outage: see isolate)."""
        where = Partition(self.settings.group_id, tp.topic, tp.partition)
        dead = DeadLetter(record.offset, record.key, record.value, failure_reason(error),
                          failure_text(error))
        if not await dead_letter_record(self.engine, where, dead, self.topics):
            return
        metrics.EVENTS.labels("dead_letter").inc()
        metrics.DEAD_LETTERS.labels(dead.reason).inc()
        # The class only: a database's message may quote the record's data.
        log.warning("dead-lettered offset %d of partition %d: %s (%s)", record.offset,
                    tp.partition, dead.reason, type(error).__name__)
        await publish_outbox(self.engine, self.writer, tp.partition, self.topics)

    async def timer_time(self, tp: TopicPartition) -> datetime | None:
        """The instant up to which a partition's timers may fire (None: not yet).

        Timers follow the stream, as Kafka Streams' stream-time punctuation does: while the
        partition is behind, only up to the latest event time read from it, so a contact whose
        newer touchpoints are still unread is not declared quiet; once caught up, with the wall
        clock. Never ahead of the wall clock, whatever time a touchpoint claims.
        """
        now = self.clock.now()
        if await self._caught_up(tp):
            return now
        seen = self._stream_time.get(tp)
        return None if seen is None else min(seen, now)

    async def _caught_up(self, tp: TopicPartition) -> bool:
        try:
            highwater = self.consumer.highwater(tp)
            return highwater is not None and await self.consumer.position(tp) >= highwater
        except (KafkaError, AssertionError, KeyError):  # revoked meanwhile
            return False

    async def sweep_timers(self) -> None:
        for tp in sorted(self.consumer.assignment(), key=lambda t: t.partition):
            now = await self.timer_time(tp)
            if now is None:
                continue
            where = Partition(self.settings.group_id, tp.topic, tp.partition)
            while True:
                changes = await fire_timers(self.engine, where, self.journeys, now,
                                            self.topics, self.settings.timer_batch)
                for journey_id, _ in changes.states:
                    metrics.TIMERS_FIRED.labels(journey_id).inc()
                self._count(changes, self.clock.now())
                if len(changes.states) < self.settings.timer_batch:
                    break
            await publish_outbox(self.engine, self.writer, tp.partition, self.topics)

    async def update_gauges(self) -> None:
        assignment = list(self.consumer.assignment())
        counts = await stage_counts(self.engine, [tp.partition for tp in assignment])
        for journey in self.journeys:
            for stage in journey.stages:
                metrics.CONTACTS_IN_STAGE.labels(journey.id, stage.id).set(
                    counts.get((journey.id, stage.id), 0)
                )

    @staticmethod
    def _count(changes: Changes, recorded: datetime) -> None:
        """Count a batch's or sweep's transitions and stage durations; `recorded` is when its
        transitions were committed."""
        # Grouped first: a labels() look-up costs more than the increment, and a batch repeats
        # the same few (journey, from, to) combinations thousands of times.
        moves = Counter((t.journey_id, t.from_stage or "", t.to_stage)
                        for t, _ in changes.transitions)
        for labels, count in moves.items():
            metrics.TRANSITIONS.labels(*labels).inc(count)
        for transition, _ in changes.transitions:
            seconds = (recorded - transition.at).total_seconds()
            metrics.EVENT_TO_TRANSITION.observe(max(0.0, seconds))
        durations: dict[tuple[str, str], list[float]] = defaultdict(list)
        for journey_id, stage, seconds in changes.stage_durations:
            durations[(journey_id, stage)].append(seconds)
        for (journey_id, stage), values in durations.items():
            histogram = metrics.TIME_IN_STAGE.labels(journey_id, stage)
            for seconds in values:
                histogram.observe(max(0.0, seconds))
