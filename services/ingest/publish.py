"""Puts a request's touchpoints on Kafka and waits, within a deadline, until all are acknowledged.

The producer is idempotent with acks=all (shared.kafka.durable_producer), so an acknowledged
record is on every in-sync replica: that is what lets a 2xx mean "durable". All of a request's
records are handed to the producer first and their acknowledgements awaited together, so one
request costs one round of produce requests, not one per event.

An idempotent producer can be finished for good while the broker is fine: aiokafka 0.14 never
resets a partition's sequence numbers, so once a batch that took sequence numbers is failed
unsent (it expires while no leader is known, as around a broker restart) every later batch of
that partition is refused with OutOfOrderSequenceNumber; an unknown or fenced producer id, a
closed producer or a dead sender task are just as final. Such a producer is replaced by a new
one (a new producer id, sequences from zero), once however many requests notice, and the
requests retry their unacknowledged records on it within their deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    IllegalStateError,
    InvalidProducerEpoch,
    KafkaError,
    OutOfOrderSequenceNumber,
    ProducerClosed,
    ProducerFenced,
    UnknownProducerId,
)
from sqlalchemy.exc import SQLAlchemyError

from services.ingest import metrics
from services.ingest.touchpoint import Record
from shared.streams import OutRecord, RecordWriter
from shared.wire import key_hash

log = logging.getLogger("polku.ingest")


class Publisher(Protocol):
    dependency: str  # what acknowledges the records ("kafka", "log"), named in 503 answers

    async def publish(self, records: Sequence[Record]) -> None:
        """Return once the log acknowledged every record; raise NotAcknowledged otherwise."""


class NotAcknowledged(Exception):
    """The log did not acknowledge every record before the deadline (or refused them)."""


# What a producer never recovers from (see the module docstring).
FINISHED_PRODUCER_ERRORS = (OutOfOrderSequenceNumber, UnknownProducerId, ProducerFenced,
                            InvalidProducerEpoch, ProducerClosed, IllegalStateError)


def can_produce(producer: AIOKafkaProducer) -> bool:
    """False once the producer's sender task has ended: with it gone nothing is ever sent
    again and every send raises the error that ended it. (aiokafka exposes no public state.)"""
    sender = getattr(producer, "_sender", None)
    task = getattr(sender, "sender_task", None)
    return task is not None and not task.done()


def _consume_outcome(future: asyncio.Future[object]) -> None:
    # A record that missed the deadline may still fail later; read its exception so asyncio does
    # not log "exception was never retrieved" for a request that has already answered 503.
    if not future.cancelled():
        future.exception()


class ContactHashes:
    """shared.wire.key_hash of each contact key, cached.

    Choosing the partition ourselves keeps the mapping every Kafka client uses (the key's hash
    modulo the partition count: shared.wire.partition_for_key), so other producers keyed by
    contact agree with ingest; the hash is cached because aiokafka's murmur2 is pure Python and
    contacts recur.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self._capacity = capacity
        self._hashes: dict[bytes, int] = {}

    def __call__(self, key: bytes) -> int:
        found = self._hashes.get(key)
        if found is None:
            if len(self._hashes) >= self._capacity:
                self._hashes.clear()  # cheaper than LRU bookkeeping, and rare
            found = self._hashes[key] = key_hash(key)
        return found


class KafkaPublisher:
    """Publishes to the touchpoints topic, each record on its contact's partition.

    Until `connect` has given it a started producer (the broker may be down when ingest starts)
    every publish is refused, which the API answers with 503 and Retry-After.
    """

    dependency = "kafka"

    def __init__(self, topic: str, deadline_s: float, retry_s: float = 1.0) -> None:
        self.producer: AIOKafkaProducer | None = None
        self._topic = topic
        self._deadline_s = deadline_s
        self._retry_s = retry_s
        self._hash = ContactHashes()
        self._partitions: tuple[set[int], list[int]] = (set(), [])
        self._start: Callable[[], AIOKafkaProducer] | None = None
        self._finished: AIOKafkaProducer | None = None  # known finished, being replaced
        self._replacing: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()

    async def connect(self, start: Callable[[], AIOKafkaProducer], retry_s: float = 1.0) -> None:
        """Start a producer from `start()`, again every `retry_s` until the broker answers."""
        self._start = start
        self._retry_s = retry_s
        self.producer = await self._started()

    async def _started(self) -> AIOKafkaProducer:
        assert self._start is not None
        while True:
            producer = self._start()
            try:
                await producer.start()
            except KafkaError as exc:
                await producer.stop()
                log.warning("Kafka is not reachable (%s); retrying in %g s",
                            type(exc).__name__, self._retry_s)
                await asyncio.sleep(self._retry_s)
            else:
                return producer

    def ready(self) -> bool:
        """For /readyz: a started producer that can still produce."""
        producer = self.producer
        return producer is not None and producer is not self._finished and can_produce(producer)

    async def stop(self) -> None:
        """Stop the producer (flushing what is in flight) and any replacement under way."""
        if self._replacing is not None:
            self._replacing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replacing
        if self.producer is not None:
            await self.producer.stop()
        await asyncio.gather(*self._retiring, return_exceptions=True)

    async def publish(self, records: Sequence[Record]) -> None:
        if not records:
            return
        started = time.perf_counter()
        pending = list(records)
        try:
            async with asyncio.timeout(self._deadline_s):
                while True:
                    producer = self.producer
                    if producer is None:
                        raise NotAcknowledged("Kafka has not been reachable since ingest started")
                    if producer is self._finished or not can_produce(producer):
                        await self._replace(producer, "its sender has stopped")
                        continue
                    try:
                        await self._send(producer, pending)
                        break
                    except _ProducerFinished as finished:
                        pending = finished.unacknowledged
                        await self._replace(producer, finished.reason)
        except TimeoutError:
            raise NotAcknowledged(
                f"Kafka did not acknowledge the events within {self._deadline_s:g} s"
            ) from None
        except KafkaError as exc:
            raise NotAcknowledged(f"Kafka refused the events ({type(exc).__name__})") from exc
        metrics.PRODUCE_SECONDS.observe(time.perf_counter() - started)

    async def _send(self, producer: AIOKafkaProducer, records: list[Record]) -> None:
        """Hand `records` to `producer` and return once all are acknowledged.

        When the producer turns out to be finished, raises _ProducerFinished with the records it
        did not acknowledge (after waiting, within the deadline, for the outcome of those in
        flight, so that only the ones really refused are sent again); any other Kafka error is
        raised as it is.
        """
        topic = self._topic
        futures: list[asyncio.Future[object]] = []
        acknowledged = 0
        try:
            # send() only waits when it has no metadata or the partition's buffer is full,
            # which is what happens while the broker is away: the deadline bounds that too.
            # Cancelling a send() that is still waiting withdraws its record.
            partitions = self._partitions_of(await producer.partitions_for(topic))
            count = len(partitions)
            if not count:
                raise NotAcknowledged(f"Kafka reports no partitions for {topic!r}")
            send = producer.send
            contact_hash = self._hash
            for key, value, _ in records:
                partition = partitions[contact_hash(key) % count]
                futures.append(await send(topic, value, key=key, partition=partition))
            # One by one rather than asyncio.wait(): the records of a produce request are
            # acknowledged together, so this suspends about once per partition instead of
            # scheduling a callback per record. Cancelling a record's future on timeout
            # does not withdraw the record (aiokafka skips futures already done).
            for future in futures:
                await future
                acknowledged += 1
        except FINISHED_PRODUCER_ERRORS as exc:
            in_flight = [f for f in futures[acknowledged:] if not f.done()]
            try:
                if in_flight:
                    await asyncio.wait(in_flight)
            except BaseException:
                _abandon(futures[acknowledged:])
                raise
            refused = [record for record, future in zip(records, futures, strict=False)
                       if future.cancelled() or future.exception() is not None]
            raise _ProducerFinished(type(exc).__name__,
                                    refused + records[len(futures):]) from exc
        except BaseException:  # the deadline, or Kafka refusing them otherwise
            _abandon(futures[acknowledged:])
            raise

    def _partitions_of(self, partitions: set[int]) -> list[int]:
        """The topic's partitions in order; sorted again only when they change (partitions_for
        gives a new set each time)."""
        known, ordered = self._partitions
        if partitions != known:
            ordered = sorted(partitions)
            self._partitions = (partitions, ordered)
        return ordered

    async def _replace(self, finished: AIOKafkaProducer, why: str) -> None:
        """Swap `finished` for a new producer. However many requests call this for the same
        producer, one replacement runs and they all wait for it (within their deadlines)."""
        if self.producer is not finished:
            return  # replaced already
        if self._finished is not finished:
            self._finished = finished
            log.warning("the Kafka producer cannot produce any more (%s); starting a new one",
                        why)
        replacing = self._replacing
        if replacing is None or replacing.done():  # none yet, or the last one failed
            replacing = self._replacing = asyncio.create_task(self._swap(finished))
        await asyncio.shield(replacing)

    async def _swap(self, finished: AIOKafkaProducer) -> None:
        producer = await self._started()
        self.producer = producer
        log.warning("a new Kafka producer has replaced the finished one")
        retiring = asyncio.create_task(self._retire(finished))
        self._retiring.add(retiring)
        retiring.add_done_callback(self._retiring.discard)

    async def _retire(self, finished: AIOKafkaProducer) -> None:
        # Its remaining batches can only fail; do not let a dead connection hold the task.
        try:
            await asyncio.wait_for(finished.stop(), self._deadline_s)
        except Exception as exc:
            log.warning("the finished Kafka producer did not stop cleanly (%s)",
                        type(exc).__name__)


class _ProducerFinished(Exception):
    """The producer can never produce again; these records were not acknowledged by it."""

    def __init__(self, reason: str, unacknowledged: list[Record]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unacknowledged = unacknowledged


def _abandon(futures: Sequence[asyncio.Future[object]]) -> None:
    for future in futures:
        future.add_done_callback(_consume_outcome)


class LogPublisher:
    """Publishes to the embedded log (`polku dev`): acknowledged once the append has committed
    to the SQLite file. The append goes on if the deadline passes (it is shielded), so the log's
    offsets never skip; the client, answered 503, retries and the stager drops the duplicate."""

    dependency = "log"

    def __init__(self, writer: RecordWriter, topic: str, deadline_s: float) -> None:
        self._writer = writer
        self._topic = topic
        self._deadline_s = deadline_s
        self._running: set[asyncio.Task[None]] = set()  # appends, kept until done

    async def publish(self, records: Sequence[Record]) -> None:
        if not records:
            return
        started = time.perf_counter()
        topic = self._topic
        self._running.add(append := asyncio.create_task(
            self._writer.write([OutRecord(topic, key, value) for key, value, _ in records])))
        append.add_done_callback(self._running.discard)
        try:
            await asyncio.wait_for(asyncio.shield(append), self._deadline_s)
        except TimeoutError:
            append.add_done_callback(_consume_outcome)  # type: ignore[arg-type]
            raise NotAcknowledged(
                f"the embedded log did not commit the events within {self._deadline_s:g} s"
            ) from None
        except (SQLAlchemyError, OSError) as exc:
            raise NotAcknowledged(
                f"the embedded log refused the events ({type(exc).__name__})") from exc
        metrics.PRODUCE_SECONDS.observe(time.perf_counter() - started)
