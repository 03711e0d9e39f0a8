"""The embedded mode's log: Kafka's topics, partitions and offsets as rows of the SQLite file.

`polku dev` runs ingest, the stager and the actions worker in one process with no broker. They
still talk through a log, with the same contracts as Kafka's, so the code above it is shared:

- an append returns once a transaction holding its records has committed (WAL,
  synchronous=FULL): the records are on disk, which is what ingest's 2xx promises. Appends
  that arrive while one is being written are written together by the next transaction (group
  commit): one commit, one fsync, one turn of the connection for all of them;
- offsets per partition are dense and committed in order, so a consumer that has read offset N
  has seen everything before it;
- records keyed alike land on the same partition (murmur2 of the key, as Kafka's producers);
- a consumer group's position is a row of `consumer_offsets`, next to the state it produced.

One process owns the file (the `polku dev` lock), and every statement goes through the engine's
single connection (shared.db.engine.sqlite_engine), so appends need no cross-process locking.
Appends and reads go to that connection's driver directly (`sqlite_driver`): each statement is
one hop to the driver's thread, and the rows are bound by sqlite3 in C rather than processed
column by column by SQLAlchemy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

import orjson
import sqlalchemy as sa
from aiokafka import TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.dialect import insert
from shared.db.engine import sqlite_driver
from shared.db.tables import consumer_offsets, log_records
from shared.streams import OutRecord
from shared.wire import partition_for_key

# (topic, partition, key, value, headers as JSON text) of a record to append
_Row = tuple[str, int, bytes | None, bytes | None, str | None]
# An append waiting for its transaction: its rows, and the future its caller waits on.
_Append = tuple[list[_Row], asyncio.Future[None]]

_APPEND = ('insert into log_records (topic, partition, "offset", key, value, headers) '
           "values (?, ?, ?, ?, ?, ?)")
_READ = ('select "offset", key, value, headers from log_records '
         'where topic = ? and partition = ? and "offset" >= ? order by "offset" limit ?')


class LogRecord(NamedTuple):
    """A record read back; the attributes the consumers use, named as aiokafka's."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str] | None


class EmbeddedLog:
    """Appends and reads records; also a `shared.streams.RecordWriter`."""

    def __init__(self, engine: AsyncEngine, partitions: int = 1) -> None:
        if partitions < 1:
            raise ValueError("an embedded log needs at least one partition")
        self.engine = engine
        self.partitions = partitions
        self._ends: dict[tuple[str, int], int] = {}  # next offset of each (topic, partition)
        self._waiting: list[_Append] = []  # appends for the next transaction, in call order
        self._appending: asyncio.Task[None] | None = None  # writes them while there are any
        self._appended = asyncio.Event()  # replaced after each append; consumers wait on it

    def partition_of(self, key: bytes | None) -> int:
        if key is None or self.partitions == 1:
            return 0
        return partition_for_key(key, self.partitions)

    def known_end(self, topic: str, partition: int) -> int | None:
        """end_offset as far as this process has learnt it, without a query (None: not yet)."""
        return self._ends.get((topic, partition))

    def next_append(self) -> asyncio.Event:
        """Set by the next append to commit: take it before reading, then wait on it."""
        return self._appended

    async def end_offset(self, topic: str, partition: int) -> int:
        """The offset the next record of the partition will get (Kafka's high watermark)."""
        end = self._ends.get((topic, partition))
        if end is None:
            async with self.engine.connect() as conn:
                last = (await conn.execute(
                    sa.select(sa.func.max(log_records.c.offset))
                    .where(log_records.c.topic == topic, log_records.c.partition == partition)
                )).scalar_one_or_none()
                # Never behind a consumer: an erase (shared/privacy) may have deleted the newest
                # records, and an offset a group has read past must not be handed out again.
                read = (await conn.execute(
                    sa.select(sa.func.max(consumer_offsets.c.next_offset))
                    .where(consumer_offsets.c.topic == topic,
                           consumer_offsets.c.partition == partition)
                )).scalar_one_or_none()
            found = max(0 if last is None else int(last) + 1, int(read or 0))
            # setdefault: an append may have learnt it meanwhile, and its value is newer.
            end = self._ends.setdefault((topic, partition), found)
        return end

    async def write(self, records: Sequence[OutRecord]) -> None:
        """Append `records`; returns once the transaction holding them has committed.

        They join the appends waiting for the next transaction, in call order, which is the
        order their offsets are handed out in. A failed transaction fails every append in it.
        """
        if not records:
            return
        rows = [(r.topic, self.partition_of(r.key), r.key, r.value,
                 orjson.dumps(dict(r.headers)).decode() if r.headers else None)
                for r in records]
        committed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((rows, committed))
        if self._appending is None:
            self._appending = asyncio.create_task(self._append_waiting(),
                                                  name="embedded-log-appends")
        await committed

    async def _append_waiting(self) -> None:
        """Write the waiting appends, a transaction at a time, until none is left. While one
        transaction waits for the connection and the disk, the next group gathers."""
        group: list[_Append] = []
        try:
            while self._waiting:
                # An append whose caller stopped waiting before it was taken is not written.
                group = [append for append in self._waiting if not append[1].done()]
                self._waiting = []
                if not group:
                    continue
                try:
                    await self._append([row for rows, _ in group for row in rows])
                except Exception as exc:
                    for _, committed in group:
                        if not committed.done():
                            committed.set_exception(exc)
                else:
                    for _, committed in group:
                        if not committed.done():
                            committed.set_result(None)
                group = []
        except BaseException:  # cancelled (the loop is closing): nothing more is written
            for _, committed in group + self._waiting:
                committed.cancel()
            self._waiting = []
            raise
        finally:
            self._appending = None

    async def _append(self, rows: list[_Row]) -> None:
        """Append `rows` in one transaction, at the next offsets of their partitions."""
        ends: dict[tuple[str, int], int] = {}
        numbered = []
        for topic, partition, key, value, headers in rows:
            where = (topic, partition)
            offset = ends.get(where)
            if offset is None:
                offset = await self.end_offset(topic, partition)
            ends[where] = offset + 1
            numbered.append((topic, partition, offset, key, value, headers))
        try:
            async with self.engine.begin() as conn:
                await (await sqlite_driver(conn)).executemany(_APPEND, numbered)
        except BaseException:
            # Whether or not it reached the disk, read the ends again before the next one.
            for where in ends:
                self._ends.pop(where, None)
            raise
        self._ends.update(ends)  # only once committed: a failed append leaves no gap
        self._appended.set()
        self._appended = asyncio.Event()

    async def read(self, topic: str, partition: int, offset: int, limit: int
                   ) -> list[LogRecord]:
        async with self.engine.connect() as conn:
            rows = await (await sqlite_driver(conn)).fetchall(
                _READ, (topic, partition, offset, limit))
        return [LogRecord(topic, partition, o, k, v, None if h is None else orjson.loads(h))
                for o, k, v, h in rows]

    async def prune(self, older_than: datetime) -> int:
        """Delete records appended before `older_than` that every consumer group is past.

        Kafka keeps records for its retention period whether read or not; here a record no
        group has consumed yet is kept whatever its age, so a stopped worker loses nothing.
        The newest record of a partition always stays: its offset is where the next one
        continues after a restart. Returns how many went.
        """
        deleted = 0
        async with self.engine.begin() as conn:
            heads = await conn.execute(
                sa.select(log_records.c.topic, log_records.c.partition).distinct()
            )
            for topic, partition in list(heads):
                newest = (await conn.execute(
                    sa.select(sa.func.max(log_records.c.offset))
                    .where(log_records.c.topic == topic, log_records.c.partition == partition)
                )).scalar_one()
                committed = (await conn.execute(
                    sa.select(sa.func.min(consumer_offsets.c.next_offset))
                    .where(consumer_offsets.c.topic == topic,
                           consumer_offsets.c.partition == partition)
                )).scalar_one_or_none()
                where = [log_records.c.topic == topic, log_records.c.partition == partition,
                         log_records.c.appended_at < older_than, log_records.c.offset < newest]
                if committed is not None:
                    where.append(log_records.c.offset < committed)
                result = await conn.execute(sa.delete(log_records).where(*where))
                deleted += int(result.rowcount or 0)
        return deleted

    def consumer(self, group_id: str) -> EmbeddedConsumer:
        return EmbeddedConsumer(self, group_id)


class EmbeddedConsumer:
    """The only member of its group: every partition of its topics is assigned to it.

    Follows aiokafka's consumer where the services rely on it (`shared.streams.RecordConsumer`):
    `getmany` returns records from the current positions and moves past them, `seek` moves a
    position, `commit` stores the group's offsets, and at start the position of each partition
    is the committed offset (or the beginning), after which the listener hears of the
    assignment, as on a Kafka rebalance.
    """

    def __init__(self, log: EmbeddedLog, group_id: str) -> None:
        self.log = log
        self.group_id = group_id
        self._topics: list[str] = []
        self._listener: Any = None
        self._positions: dict[TopicPartition, int] = {}

    def subscribe(self, topics: list[str], listener: Any = None) -> None:
        self._topics = list(topics)
        self._listener = listener

    async def start(self) -> None:
        assigned = [TopicPartition(t, p) for t in self._topics for p in range(self.log.partitions)]
        async with self.log.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(consumer_offsets.c.topic, consumer_offsets.c.partition,
                          consumer_offsets.c.next_offset)
                .where(consumer_offsets.c.group_id == self.group_id)
            )
            committed = {TopicPartition(t, int(p)): int(o) for t, p, o in rows}
        self._positions = {tp: committed.get(tp, 0) for tp in assigned}
        if self._listener is not None:
            await self._listener.on_partitions_assigned(assigned)

    async def stop(self) -> None:
        return None

    def assignment(self) -> set[TopicPartition]:
        return set(self._positions)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self._positions[partition] = offset

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        for tp in partitions:
            self._positions[tp] = 0

    async def position(self, partition: TopicPartition) -> int:
        return self._positions[partition]

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.log.partitions))

    def highwater(self, partition: TopicPartition) -> int | None:
        return self.log.known_end(partition.topic, partition.partition)

    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[TopicPartition, list[Any]]:
        budget = max_records or 10_000
        deadline = asyncio.get_running_loop().time() + timeout_ms / 1000
        while True:
            appended = self.log.next_append()  # taken first: an append after the reads wakes us
            batches: dict[TopicPartition, list[Any]] = {}
            for tp in sorted(partitions or self._positions):
                position = self._positions[tp]
                if budget <= 0 or position >= await self.log.end_offset(tp.topic, tp.partition):
                    continue
                records = await self.log.read(tp.topic, tp.partition, position, budget)
                if records:
                    batches[tp] = records
                    self._positions[tp] = records[-1].offset + 1
                    budget -= len(records)
            remaining = deadline - asyncio.get_running_loop().time()
            if batches or remaining <= 0:
                return batches
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(appended.wait(), remaining)

    async def commit(self, offsets: dict[TopicPartition, int] | None = None) -> None:
        offsets = offsets if offsets is not None else dict(self._positions)
        if not offsets:
            return
        async with self.log.engine.begin() as conn:
            statement = insert(conn, consumer_offsets)
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[consumer_offsets.c.group_id, consumer_offsets.c.topic,
                                    consumer_offsets.c.partition],
                    set_={"next_offset": statement.excluded.next_offset,
                          "updated_at": sa.func.now()},
                ),
                [{"group_id": self.group_id, "topic": tp.topic, "partition": tp.partition,
                  "next_offset": offset} for tp, offset in offsets.items()],
            )
