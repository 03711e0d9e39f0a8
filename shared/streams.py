"""The two seams between the services and their log: Kafka, or the embedded log (one process).

The services read and write records only through these. `AIOKafkaConsumer` already has the
shape of `RecordConsumer` (it is the shape being described); `shared.kafka.KafkaWriter` and
`shared.embedded_log` provide the rest. Everything above them (engine, stores, delivery logic)
is the same code in both modes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from aiokafka import TopicPartition


class OutRecord(NamedTuple):
    """A record to append: keyed records land on their key's partition, as with Kafka."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Mapping[str, str] | None = None


class RecordWriter(Protocol):
    async def write(self, records: Sequence[OutRecord]) -> None:
        """Return once every record is durably in the log (in order per partition); raise
        otherwise. A raise may leave some of them written: callers retry, consumers dedupe."""


class RecordConsumer(Protocol):
    """The part of aiokafka's consumer the stager and the actions worker use."""

    def subscribe(self, topics: list[str], listener: Any = None) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[TopicPartition, list[Any]]: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None: ...

    def assignment(self) -> set[TopicPartition]: ...

    def highwater(self, partition: TopicPartition) -> int | None: ...

    def partitions_for_topic(self, topic: str) -> set[int] | None: ...

    async def position(self, partition: TopicPartition) -> int: ...

    async def commit(self, offsets: dict[TopicPartition, int] | None = None) -> None: ...
