"""The stager worker, assembled in one place from the parts a run mode hands it.

`polku stager` (services/stager/app.py) hands it a Kafka consumer and producer and PostgreSQL;
`polku dev` (services/dev/app.py) the embedded log and SQLite. Everything from here down is the
same code in both modes, so what differs between them is only what is passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack

from sqlalchemy.ext.asyncio import AsyncEngine

from services.stager.consumer import Stager
from services.stager.settings import StagerSettings
from shared.clock import Clock
from shared.journey import Journey
from shared.runtime import collect_less_often, start_background
from shared.streams import RecordConsumer, RecordWriter
from shared.wire import Topics

# Collection thresholds for the stager's young and middle generations (see shared/runtime.py).
STAGER_GC_YOUNG, STAGER_GC_MIDDLE = 50_000, 20
# How long the stager has, on the way out, to commit its current batch and leave the group.
STOP_TIMEOUT_S = 30.0


def start_stager(
    stack: AsyncExitStack,
    *,
    consumer: RecordConsumer,
    writer: RecordWriter,
    engine: AsyncEngine,
    settings: StagerSettings,
    topics: Topics,
    journeys: Sequence[Journey],
    clock: Clock,
) -> Stager:
    """Run a stager until `stack` closes.

    :param consumer: a member of the stager's consumer group (`settings.group_id`), not started.
    :param writer: where transitions and dead letters are published (the same log).
    :param engine: the database holding contact state, offsets and the outbox.
    """
    stager = Stager(consumer, writer, engine, settings, topics, journeys, clock)
    # A batch keeps tens of thousands of objects alive until it commits; with the default
    # thresholds rescanning them took a fifth of the CPU (docs/stager.md). The stager's
    # batches dominate what any process running one allocates, so the process is tuned for
    # them, and what start-up created is frozen out of every later collection.
    collect_less_often(STAGER_GC_YOUNG, STAGER_GC_MIDDLE, freeze=True)
    # On the way out the current batch commits, then the consumer leaves the group.
    start_background(stack, "stager", stager.run(), stager.stop, STOP_TIMEOUT_S)
    return stager
