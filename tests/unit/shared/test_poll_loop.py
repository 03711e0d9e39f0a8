"""The loop the stager and the actions consumer share: it polls until asked to stop, always
stops its consumer, and its pause after an outage never holds up a shutdown."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiokafka import TopicPartition

from shared.poll_loop import LAST_POLL, backoff, poll_until_stopped


class FakeConsumer:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.topics: list[str] = []
        self.listener: Any = None

    def subscribe(self, topics: list[str], listener: Any = None) -> None:
        self.calls.append("subscribe")
        self.topics, self.listener = topics, listener

    async def start(self) -> None:
        self.calls.append("start")

    async def stop(self) -> None:
        self.calls.append("stop")

    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[TopicPartition, list[Any]]:
        return {}

    def seek(self, partition: TopicPartition, offset: int) -> None: ...

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None: ...

    def assignment(self) -> set[TopicPartition]:
        return set()

    def highwater(self, partition: TopicPartition) -> int | None:
        return None

    async def position(self, partition: TopicPartition) -> int:
        return 0

    async def commit(self, offsets: dict[TopicPartition, int] | None = None) -> None: ...


async def test_the_loop_subscribes_starts_polls_until_stopped_and_stops_the_consumer() -> None:
    consumer, stopping, polls = FakeConsumer(), asyncio.Event(), 0
    listener = object()

    async def poll_once() -> None:
        nonlocal polls
        polls += 1
        consumer.calls.append("poll")
        if polls == 3:
            stopping.set()  # the poll in progress finishes; no other starts

    await poll_until_stopped(consumer, ("touchpoints",), poll_once, stopping, worker="test",
                             listener=listener)
    assert consumer.calls == ["subscribe", "start", "poll", "poll", "poll", "stop"]
    assert consumer.topics == ["touchpoints"] and consumer.listener is listener


async def test_a_poll_that_raises_still_stops_the_consumer() -> None:
    consumer = FakeConsumer()

    async def poll_once() -> None:
        raise ValueError("a bug in the batch logic")

    with pytest.raises(ValueError, match="a bug"):
        await poll_until_stopped(consumer, ["transitions"], poll_once, asyncio.Event(),
                                 worker="test")
    assert consumer.calls == ["subscribe", "start", "stop"]


async def test_a_worker_asked_to_stop_does_not_poll_at_all() -> None:
    consumer, stopping = FakeConsumer(), asyncio.Event()
    stopping.set()

    async def poll_once() -> None:
        raise AssertionError("polled after stop")

    await poll_until_stopped(consumer, ["transitions"], poll_once, stopping, worker="test")
    assert consumer.calls == ["subscribe", "start", "stop"]


async def test_each_finished_poll_moves_the_loops_heartbeat_and_a_stuck_one_does_not() -> None:
    consumer, stopping = FakeConsumer(), asyncio.Event()
    heartbeat = LAST_POLL.labels("heartbeat-test")
    seen: list[float] = []
    stuck = asyncio.Event()

    async def poll_once() -> None:
        seen.append(heartbeat._value.get())
        if len(seen) == 3:
            stuck.set()
            await asyncio.sleep(3600)  # a hung await: the heartbeat must stay where it was
        await asyncio.sleep(0.02)

    loop = asyncio.create_task(poll_until_stopped(consumer, ["t"], poll_once, stopping,
                                                  worker="heartbeat-test"))
    await stuck.wait()
    await asyncio.sleep(0.05)
    assert 0 < seen[0] < seen[1] < seen[2]  # set at start, then after each finished poll
    assert heartbeat._value.get() == seen[2]  # not moved while the third poll hangs
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    assert consumer.calls[-1] == "stop"


async def test_the_backoff_waits_its_time_unless_the_worker_is_stopped() -> None:
    stopping = asyncio.Event()
    started = time.monotonic()
    await backoff(stopping, 0.05)
    assert time.monotonic() - started >= 0.04

    asyncio.get_running_loop().call_later(0.01, stopping.set)
    started = time.monotonic()
    await backoff(stopping, 30.0)
    assert time.monotonic() - started < 5.0
