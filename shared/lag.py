"""Consumer lag per partition, in records and in seconds: how stale a worker's output is.

Records behind is the log's end (high watermark) minus the worker's position. Seconds behind is
what an on-call person asks ("how old are the stages?"): the wall clock minus the event time of
the newest record the worker has applied from the partition, or 0 once it has read everything
there is (a quiet partition is not stale, however old its last event). While a worker is behind
but has applied nothing from a partition since it got it, the seconds are not known yet and the
gauge keeps its earlier value (or has none).

The stager and the actions worker each own a `ConsumerLag` with their own pair of gauges
(services/*/metrics.py) and call `publish` from their poll loop; it does its work at most once
per `every_s`, and then only a position and a watermark look-up per owned partition (no query,
nothing per record), in Kafka and in the embedded log alike. A partition the worker no longer
owns loses its series, so the instance that now owns it is the only one reporting it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import Gauge

from shared.streams import RecordConsumer

LAG_EVERY_S = 1.0


class ConsumerLag:
    def __init__(self, records: Gauge, seconds: Gauge, *, every_s: float = LAG_EVERY_S,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        """`records` and `seconds` are gauges with one label, `partition`."""
        self.records = records
        self.seconds = seconds
        self.every_s = every_s
        self.monotonic = monotonic
        self._next = 0.0
        self._published: set[str] = set()

    async def publish(self, consumer: RecordConsumer,
                      newest: Mapping[TopicPartition, datetime], now: datetime) -> None:
        """Set both gauges for each partition `consumer` owns, if `every_s` has passed since
        the last time; `newest` holds the event time of the newest record applied per
        partition."""
        if self.monotonic() < self._next:
            return
        self._next = self.monotonic() + self.every_s
        owned: set[str] = set()
        for tp in consumer.assignment():
            try:
                highwater = consumer.highwater(tp)
                position = await consumer.position(tp)
            except (KafkaError, AssertionError, KeyError):  # revoked meanwhile
                continue
            if highwater is None:  # nothing fetched from it yet
                continue
            label = str(tp.partition)
            owned.add(label)
            behind = max(0, highwater - position)
            self.records.labels(label).set(behind)
            if behind == 0:
                self.seconds.labels(label).set(0)
            elif tp in newest:
                self.seconds.labels(label).set(max(0.0, (now - newest[tp]).total_seconds()))
        for label in self._published - owned:
            self.records.remove(label)
            self.seconds.remove(label)
        self._published = owned
