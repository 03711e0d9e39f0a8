"""The loop every log-reading worker runs: subscribe, start, poll until stopped, stop.

The stager and the actions consumer differ in what one poll does (their batch logic, dead
letters, seeks and stream time stay with them); how they start, keep polling, wait after an
outage and shut down is the same, and lives here once:
- the consumer is stopped whatever ends the loop (a stop request, a cancellation, a bug), so it
  leaves its group and a rebalance hands its partitions on without waiting for the session to
  time out;
- a worker waits out an outage with `backoff`, which a stop request cuts short, so shutdown
  never waits for a retry pause to run out.

The worker owns its `stopping` event; setting it is how it is asked to stop. A poll in progress
finishes first (its batch is committed or rewound, never half-applied).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import Gauge

from shared.streams import RecordConsumer

# How long a worker waits before retrying after an outage.
BACKOFF_S = 1.0


# Set after every poll: a loop stuck in an await (a hung connection, a bug) stops moving it while
# the process still answers /metrics and /healthz (alert PolkuWorkerStalled). Lag alone would
# not tell, since a stuck loop also stops updating the lag gauges.
LAST_POLL = Gauge("polku_worker_last_poll_timestamp_seconds",
                  "Unix time at which the worker's poll loop last finished a poll", ["worker"])


async def poll_until_stopped(
    consumer: RecordConsumer,
    topics: Sequence[str],
    poll_once: Callable[[], Awaitable[None]],
    stopping: asyncio.Event,
    *,
    worker: str,
    listener: Any = None,
) -> None:
    """Subscribe `consumer` to `topics` (with a rebalance `listener`, if given), start it, call
    `poll_once` until `stopping` is set, and stop the consumer however the loop ends. `worker`
    names the loop in polku_worker_last_poll_timestamp_seconds."""
    last_poll = LAST_POLL.labels(worker)
    consumer.subscribe(list(topics), listener=listener)
    await consumer.start()
    last_poll.set_to_current_time()
    try:
        while not stopping.is_set():
            await poll_once()
            last_poll.set_to_current_time()
    finally:
        await consumer.stop()


async def backoff(stopping: asyncio.Event, seconds: float = BACKOFF_S) -> None:
    """Wait `seconds` before retrying, or less if the worker is asked to stop meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)


def seek_if_owned(consumer: RecordConsumer, partition: TopicPartition, offset: int) -> None:
    """Move a partition's position, if the partition is still this member's.

    A rebalance may take it away mid-batch (aiokafka then raises on seek); its next owner
    resumes from the offset stored or committed for it, so there is nothing to move.
    """
    if partition in consumer.assignment():
        with contextlib.suppress(KafkaError, AssertionError, KeyError):
            consumer.seek(partition, offset)
