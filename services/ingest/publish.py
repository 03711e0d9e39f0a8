"""Puts a request's touchpoints on Kafka and waits, within a deadline, until all are acknowledged.

The producer is idempotent with acks=all (shared.kafka.durable_producer), so an acknowledged
record is on every in-sync replica: that is what lets a 2xx mean "durable". All of a request's
records are handed to the producer first and their acknowledgements awaited together, so one
request costs one round of produce requests, not one per event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2
from sqlalchemy.exc import SQLAlchemyError

from services.ingest import metrics
from services.ingest.touchpoint import Record
from shared.streams import OutRecord, RecordWriter

log = logging.getLogger("polku.ingest")


class Publisher(Protocol):
    dependency: str  # what acknowledges the records ("kafka", "log"), named in 503 answers

    async def publish(self, records: Sequence[Record]) -> None:
        """Return once the log acknowledged every record; raise NotAcknowledged otherwise."""


class NotAcknowledged(Exception):
    """The log did not acknowledge every record before the deadline (or refused them)."""


def _consume_outcome(future: asyncio.Future[object]) -> None:
    # A record that missed the deadline may still fail later; read its exception so asyncio does
    # not log "exception was never retrieved" for a request that has already answered 503.
    if not future.cancelled():
        future.exception()


class ContactHashes:
    """murmur2 of each contact key, as Kafka's default partitioner computes it, cached.

    Choosing the partition ourselves keeps the mapping every Kafka client uses (murmur2 of the
    key modulo the partition count), so other producers keyed by contact agree with ingest;
    it is cached because aiokafka's murmur2 is pure Python and contacts recur.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self._capacity = capacity
        self._hashes: dict[bytes, int] = {}

    def __call__(self, key: bytes) -> int:
        found = self._hashes.get(key)
        if found is None:
            if len(self._hashes) >= self._capacity:
                self._hashes.clear()  # cheaper than LRU bookkeeping, and rare
            found = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return found


class KafkaPublisher:
    """Publishes to the touchpoints topic, each record on its contact's partition.

    Until `connect` has given it a started producer (the broker may be down when ingest starts)
    every publish is refused, which the API answers with 503 and Retry-After.
    """

    dependency = "kafka"

    def __init__(self, topic: str, deadline_s: float) -> None:
        self.producer: AIOKafkaProducer | None = None
        self._topic = topic
        self._deadline_s = deadline_s
        self._hash = ContactHashes()

    async def connect(self, start: Callable[[], AIOKafkaProducer], retry_s: float = 1.0) -> None:
        """Start a producer from `start()`, again every `retry_s` until the broker answers."""
        while self.producer is None:
            producer = start()
            try:
                await producer.start()
            except KafkaError as exc:
                await producer.stop()
                log.warning("Kafka is not reachable (%s); retrying in %g s",
                            type(exc).__name__, retry_s)
                await asyncio.sleep(retry_s)
            else:
                self.producer = producer

    async def publish(self, records: Sequence[Record]) -> None:
        if not records:
            return
        if self.producer is None:
            raise NotAcknowledged("Kafka has not been reachable since ingest started")
        producer = self.producer
        started = time.perf_counter()
        send = producer.send
        topic = self._topic
        futures: list[asyncio.Future[object]] = []
        acknowledged = 0
        try:
            async with asyncio.timeout(self._deadline_s):
                # send() only waits when it has no metadata or the partition's buffer is full,
                # which is what happens while the broker is away: the deadline bounds that too.
                # Cancelling a send() that is still waiting withdraws its record.
                partitions = sorted(await producer.partitions_for(topic))
                count = len(partitions)
                if not count:
                    raise NotAcknowledged(f"Kafka reports no partitions for {topic!r}")
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
        except TimeoutError:
            self._abandon(futures[acknowledged:])
            raise NotAcknowledged(
                f"Kafka did not acknowledge the events within {self._deadline_s:g} s"
            ) from None
        except KafkaError as exc:
            self._abandon(futures[acknowledged:])
            raise NotAcknowledged(f"Kafka refused the events ({type(exc).__name__})") from exc
        metrics.PRODUCE_SECONDS.observe(time.perf_counter() - started)

    @staticmethod
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
