"""The actions worker's lag in seconds counts from the latest transition time it has applied from
a partition, not from the last record read: a late touchpoint's transition (an app flushing its
offline queue) read after newer ones does not make the webhooks look hours staler than they
are."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import REGISTRY

from services.actions.consumer import TransitionConsumer
from services.actions.dispatcher import Dispatcher
from services.actions.egress import EgressPolicy, guarded_transport
from services.actions.settings import ActionsSettings
from services.actions.signing import SigningSecrets
from shared.clock import ManualClock
from shared.db.engine import make_engine
from shared.db.migrate import upgrade
from shared.embedded_log import EmbeddedLog
from shared.lag import LAG_EVERY_S
from shared.settings import DatabaseSettings, TopicSettings
from shared.streams import OutRecord
from tests.actions_harness import transition

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def at(contact: str, when: datetime) -> OutRecord:
    message = transition(contact) | {"at": when.isoformat().replace("+00:00", "Z")}
    return OutRecord(TopicSettings().transitions_topic, contact.encode(),
                     json.dumps(message).encode())


async def test_a_late_transition_read_last_does_not_make_the_partition_look_stale(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'polku.db'}"
    await asyncio.to_thread(upgrade, url)
    engine = make_engine(DatabaseSettings(url_override=url))
    topics = TopicSettings()
    log = EmbeddedLog(engine, partitions=1)
    await log.write([at("lag-fresh", NOW - timedelta(seconds=10)),
                     at("lag-late", NOW - timedelta(hours=3)),
                     at("lag-next", NOW)])
    settings = ActionsSettings(max_batch=2, poll_timeout_ms=50)
    # Not run: no journey, so the worker has no delivery to hand it.
    dispatcher = Dispatcher(engine, settings, guarded_transport(EgressPolicy()), ManualClock(NOW),
                            secrets=SigningSecrets({}))
    worker = TransitionConsumer(log.consumer(settings.group_id), log, engine, settings,
                                topics.topics, {}, ManualClock(NOW), dispatcher=dispatcher)
    worker.consumer.subscribe([topics.transitions_topic])
    await worker.consumer.start()
    try:
        await worker.poll_once()  # the fresh one and the late one
        await asyncio.sleep(LAG_EVERY_S)  # the lag is published at most once per interval
        await worker.poll_once()  # published first: one record behind
    finally:
        await engine.dispose()
    labels = {"partition": "0"}
    assert REGISTRY.get_sample_value("polku_actions_consumer_lag_records", labels) == 1
    assert REGISTRY.get_sample_value("polku_actions_consumer_lag_seconds", labels) == 10.0
