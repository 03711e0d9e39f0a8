"""Consumes the transitions topic and turns each record into persisted deliveries.

The topic carries transition records and contact.merged records (shared/wire/transitions_topic);
each is planned by its type (deliveries.plan). At-least-once in, exactly one logical delivery
out: a batch's deliveries are committed to the database first and the log's offsets after, so a
crash in between replays the batch, and the replay inserts nothing new because a delivery's id is
derived from the transition (or merge) and the endpoint. A record of neither type, or that cannot
be applied for any reason other than an outage (shared.failures), goes to the dead-letter topic
with the reason and never stalls its partition.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.actions import metrics
from services.actions.deliveries import PlannedDelivery, plan
from services.actions.settings import ActionsSettings
from services.actions.store import create_deliveries
from shared.clock import Clock
from shared.failures import failure_reason, failure_text, is_outage, isolate
from shared.journey import Journey
from shared.lag import ConsumerLag
from shared.poll_loop import backoff, poll_until_stopped, seek_if_owned
from shared.streams import OutRecord, RecordConsumer, RecordWriter
from shared.wire import DeadLetter, MalformedTransition, MergedRecord, Topics, decode_record

log = logging.getLogger(__name__)

Batches = Mapping[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
Item = tuple[TopicPartition, ConsumerRecord[bytes, bytes]]


class TransitionConsumer:
    """One member of the actions consumer group."""

    def __init__(
        self,
        consumer: RecordConsumer,
        writer: RecordWriter,
        engine: AsyncEngine,
        settings: ActionsSettings,
        topics: Topics,
        journeys: Mapping[str, Journey],
        clock: Clock,
        *,
        on_created: Callable[[], None],
        first_delay: Callable[[], float],
    ) -> None:
        """Every part is handed in (services/actions/worker.py assembles them): `consumer` is a
        member of the worker's group on Kafka (services/actions/app.py) or on the embedded log
        (services/dev/app.py); `writer` appends dead letters to the same log. `on_created` and
        `first_delay` are the dispatcher's: wake it, and when a new delivery is first due."""
        self.consumer = consumer
        self.writer = writer
        self.engine = engine
        self.settings = settings
        self.topics = topics
        self.journeys = journeys
        self.clock = clock
        self.on_created = on_created
        self.first_delay = first_delay
        self._stopping = asyncio.Event()
        # Per partition, the latest time of a transition (or merge) applied, for the lag: the
        # latest, not the last, since a late touchpoint's transition comes after newer ones.
        self._newest: dict[TopicPartition, datetime] = {}
        self._lag = ConsumerLag(metrics.CONSUMER_LAG_RECORDS, metrics.CONSUMER_LAG_SECONDS)

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        await poll_until_stopped(self.consumer, [self.topics.transitions], self.poll_once,
                                 self._stopping, worker="actions")

    async def poll_once(self) -> None:
        await self._lag.publish(self.consumer, self._newest, self.clock.now())
        batches: Batches = await self.consumer.getmany(
            timeout_ms=self.settings.poll_timeout_ms, max_records=self.settings.max_batch
        )
        if not batches:
            return
        items = [(tp, record) for tp, records in batches.items() for record in records]
        created = 0

        async def apply(part: Sequence[Item]) -> None:
            nonlocal created
            created += await self.apply(part)

        try:
            await isolate(items, apply, self._set_aside)
        except Exception as exc:
            if not is_outage(exc):
                raise
            # Nothing of the batch is committed to the log: read it again once the outage
            # passes; what it created already is not created twice (ids are derived).
            log.warning("transition batch failed (%s); retrying", type(exc).__name__)
            for tp, records in batches.items():
                seek_if_owned(self.consumer, tp, records[0].offset)
            await self._backoff()
            return
        if created:
            self.on_created()
        try:
            await self.consumer.commit(
                {tp: records[-1].offset + 1 for tp, records in batches.items()}
            )
        except KafkaError as exc:
            # E.g. a rebalance took the partitions away: their next owner reads the batch again
            # and creates nothing new.
            log.warning("offset commit failed (%s); the batch will be replayed harmlessly",
                        type(exc).__name__)

    async def apply(self, items: Sequence[Item]) -> int:
        """Create the records' deliveries (one database transaction); dead-letter bad records."""
        planned: list[PlannedDelivery] = []
        dead: list[tuple[TopicPartition, ConsumerRecord[bytes, bytes], MalformedTransition]] = []
        newest: dict[TopicPartition, datetime] = {}
        for tp, record in items:
            try:
                read = decode_record(record.value)
            except MalformedTransition as exc:
                dead.append((tp, record, exc))
                continue
            at = read.merge.at if isinstance(read, MergedRecord) else read.transition.at
            newest[tp] = max(at, newest.get(tp, at))
            found = plan(read, self.journeys)
            counter = metrics.MERGES if isinstance(read, MergedRecord) else metrics.TRANSITIONS
            counter.labels("matched" if found else "unmatched").inc()
            planned.extend(found)
        created = await create_deliveries(self.engine, planned, self.clock.now(),
                                          self.first_delay())
        for tp, at in newest.items():
            self._newest[tp] = max(at, self._newest.get(tp, at))
        for delivery in created:
            metrics.DELIVERIES_CREATED.labels(delivery.endpoint_id).inc()
        for tp, record, error in dead:
            await self._dead_letter(tp, record, error.reason, error.error)
        return len(created)

    async def _set_aside(self, item: Item, error: Exception) -> None:
        """Dead-letter a record whose deliveries cannot be created (not an outage: isolate)."""
        tp, record = item
        await self._dead_letter(tp, record, failure_reason(error), failure_text(error))

    async def _dead_letter(self, tp: TopicPartition, record: ConsumerRecord[bytes, bytes],
                           reason: str, error: str) -> None:
        letter = DeadLetter(record.key, record.value, tp.topic, tp.partition, record.offset,
                            reason, error)
        await self.writer.write([OutRecord(self.topics.dead_letters, letter.key,
                                           letter.value, letter.headers())])
        metrics.TRANSITIONS.labels("dead_letter").inc()
        log.warning("dead-lettered offset %d of partition %d: %s", record.offset, tp.partition,
                    reason)

    async def _backoff(self) -> None:
        await backoff(self._stopping)
