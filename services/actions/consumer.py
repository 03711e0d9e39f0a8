"""Consumes the transitions topic and turns each record into persisted deliveries.

New deliveries are handed to the worker's dispatcher as they are created: those it has room for
are leased to it in the same insert and attempted as soon as the transaction commits
(dispatcher.py); the rest it claims from the database. The log's offsets are committed in the
background, after the batch's deliveries are in the database and while the next batch is read,
so no record waits for the broker's answer about the one before.

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
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.actions import metrics
from services.actions.deliveries import PlannedDelivery, plan
from services.actions.dispatcher import Dispatcher
from services.actions.settings import ActionsSettings
from services.actions.store import Created, create_and_claim
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
        dispatcher: Dispatcher,
    ) -> None:
        """Every part is handed in (services/actions/worker.py assembles them): `consumer` is a
        member of the worker's group on Kafka (services/actions/app.py) or on the embedded log
        (services/dev/app.py); `writer` appends dead letters to the same log; `dispatcher`, the
        same worker's, takes the new deliveries."""
        self.consumer = consumer
        self.writer = writer
        self.engine = engine
        self.settings = settings
        self.topics = topics
        self.journeys = journeys
        self.clock = clock
        self.dispatcher = dispatcher
        self._stopping = asyncio.Event()
        # Per partition, the latest time of a transition (or merge) applied, for the lag: the
        # latest, not the last, since a late touchpoint's transition comes after newer ones.
        self._newest: dict[TopicPartition, datetime] = {}
        self._lag = ConsumerLag(metrics.CONSUMER_LAG_RECORDS, metrics.CONSUMER_LAG_SECONDS)
        # The commit of the last batch's offsets, running while the next batch is read.
        self._commit: asyncio.Task[None] | None = None

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        try:
            await poll_until_stopped(self.consumer, [self.topics.transitions], self.poll_once,
                                     self._stopping, worker="actions")
        finally:
            if self._commit is not None:
                self._commit.cancel()

    async def poll_once(self) -> None:
        await self._lag.publish(self.consumer, self._newest, self.clock.now())
        batches: Batches = await self.consumer.getmany(
            timeout_ms=self.settings.poll_timeout_ms, max_records=self.settings.max_batch
        )
        if not batches:
            await self._committed()  # so none is left running when the loop stops
            return
        items = [(tp, record) for tp, records in batches.items() for record in records]
        try:
            await isolate(items, self.apply, self._set_aside)
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
        # One commit at a time, in order: the one before must be done before this one starts.
        await self._committed()
        self._commit = asyncio.create_task(
            self._commit_offsets({tp: records[-1].offset + 1 for tp, records in batches.items()})
        )
        if self._stopping.is_set():
            await self._committed()

    async def _committed(self) -> None:
        """Wait for the commit in the background, if one runs."""
        if self._commit is not None:
            commit, self._commit = self._commit, None
            await commit

    async def _commit_offsets(self, offsets: dict[TopicPartition, int]) -> None:
        try:
            await self.consumer.commit(offsets)
        except KafkaError as exc:
            # E.g. a rebalance took the partitions away: their next owner reads the batch again
            # and creates nothing new.
            log.warning("offset commit failed (%s); the batch will be replayed harmlessly",
                        type(exc).__name__)

    async def apply(self, items: Sequence[Item]) -> None:
        """Create the records' deliveries (one database transaction) and hand them to the
        dispatcher; dead-letter bad records."""
        planned: list[PlannedDelivery] = []
        dead: list[tuple[TopicPartition, ConsumerRecord[bytes, bytes], MalformedTransition]] = []
        newest: dict[TopicPartition, datetime] = {}
        read_records: Counter[tuple[bool, bool]] = Counter()  # (a merge?, matched?)
        for tp, record in items:
            try:
                read = decode_record(record.value)
            except MalformedTransition as exc:
                dead.append((tp, record, exc))
                continue
            at = read.merge.at if isinstance(read, MergedRecord) else read.transition.at
            newest[tp] = max(at, newest.get(tp, at))
            found = plan(read, self.journeys)
            read_records[isinstance(read, MergedRecord), bool(found)] += 1
            planned.extend(found)
        for (merge, matched), count in read_records.items():
            counter = metrics.MERGES if merge else metrics.TRANSITIONS
            counter.labels("matched" if matched else "unmatched").inc(count)
        created = await self._create(planned)
        for tp, at in newest.items():
            self._newest[tp] = max(at, self._newest.get(tp, at))
        for endpoint, count in Counter(d.endpoint_id for d in created.deliveries).items():
            metrics.DELIVERIES_CREATED.labels(endpoint).inc(count)
        for tp, record, error in dead:
            await self._dead_letter(tp, record, error.reason, error.error)

    async def _create(self, planned: Sequence[PlannedDelivery]) -> Created:
        """Create the deliveries, leasing those the dispatcher has room for to it."""
        claim = self.dispatcher.reserve({p.endpoint_id for p in planned}) if planned else None
        created = Created([], [])
        try:
            created = await create_and_claim(self.engine, planned, self.clock.now(),
                                             self.dispatcher.schedule.first_delay(), claim)
        finally:
            # Also when the creation failed: the reservation ends either way.
            leased = Counter(d.endpoint_id for d in created.claimed)
            unclaimed = {endpoint for endpoint, count
                         in Counter(d.endpoint_id for d in created.deliveries).items()
                         if count > leased[endpoint]}
            self.dispatcher.accept(claim, created.claimed, unclaimed)
        return created

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
