"""People who browse anonymously, then identify: their traffic and the checks that the stager
merged each of them exactly once (shared by the identity fault and rebalance tests).

(No tests here.) Each person has an anonymous id and a userId, usually on different partitions.
Their traffic comes in three phases, each to be consumed before the next is produced, so the
engine's answer is exact (docs/identity.md): `before` (both ids' touchpoints), the `identify`
linking them, and `after` (sent with the anonymous id once linked, redeliveries among them).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import shutil
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.tables import (
    contact_links,
    contact_states,
    identity_conflicts,
    outbox,
    transitions,
)
from shared.journey import ContactState, Journey, in_event_order, merge_cause, replay
from shared.settings import KafkaSettings
from shared.wire import MERGED_TYPE, TRANSITION_TYPE, decode_touchpoint, partition_for_key
from tests.messages import touchpoint
from tests.stager_harness import JOURNEYS, end_offsets, wait_consumed

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ["Pricing Viewed", "Demo Requested", "Signed Up", "Order Completed", "Feature Used",
          "Guide Downloaded", "Event Attended", "Signed In", "Webinar Attended",
          "Account Activated"]
PAGES = ["https://polku.example/?utm_source=google&utm_medium=cpc", "https://polku.example/blog",
         "https://polku.example/pricing?utm_source=newsletter&utm_medium=email"]


def journeys_dir(directory: Path) -> Path:
    """The stager tests' journey (a count rule, a purchase) and the example journeys (traits,
    templates, many stages), together: every timer in them is a week or longer, so none comes
    due for touchpoints of the last two days."""
    directory.mkdir(parents=True, exist_ok=True)
    for source in [*JOURNEYS.glob("*.yaml"), *(ROOT / "journeys").glob("*.yaml")]:
        shutil.copy(source, directory / source.name)
    return directory


@dataclass
class Person:
    user: str
    anon: str
    before: list[dict[str, Any]]
    identify: dict[str, Any]
    after: list[dict[str, Any]]

    def partitions(self, count: int) -> tuple[int, int]:
        """The partitions (of `count`) of the userId and of the anonymous id."""
        return (partition_for_key(self.user.encode(), count),
                partition_for_key(self.anon.encode(), count))

    def apart(self, count: int) -> bool:
        user, anon = self.partitions(count)
        return user != anon


def _anonymous(anon: str, at: datetime, rng: random.Random) -> dict[str, Any]:
    if rng.random() < 0.4:
        message = touchpoint(anon, at, type="page", name="Page",
                             context={"page": {"url": rng.choice(PAGES)}})
    else:
        message = touchpoint(anon, at, event=rng.choice(EVENTS))
    return message | {"userId": None, "anonymousId": anon}


def _known(user: str, at: datetime, rng: random.Random) -> dict[str, Any]:
    if rng.random() < 0.3:
        return touchpoint(user, at, type="identify", traits={"plan": rng.choice(["free", "pro"])})
    return touchpoint(user, at, event=rng.choice(EVENTS),
                      properties={"revenue": rng.choice([0, 49])})


def people(rng: random.Random, count: int, tag: str | None = None) -> list[Person]:
    """`count` people with event times in the last two days (so no timer comes due)."""
    tag = tag or uuid.uuid4().hex[:6]
    start = datetime.now(UTC) - timedelta(days=2)

    def moment() -> datetime:
        return start + timedelta(seconds=rng.randrange(24 * 3600))

    crowd = []
    for i in range(count):
        user, anon = f"user-{tag}-{i}", f"anon-{tag}-{i}"
        before = [_anonymous(anon, moment(), rng) for _ in range(rng.randint(3, 8))]
        before += [_known(user, moment(), rng) for _ in range(rng.randint(0, 2))]
        rng.shuffle(before)
        identify = touchpoint(user, moment(), type="identify", traits={
            "persona": rng.choice(["cto", "cmo"]), "employees": rng.choice([10, 80]),
            "email": f"{user}@example.com"}) | {"anonymousId": anon}
        after = [_anonymous(anon, moment(), rng) for _ in range(rng.randint(1, 3))]
        # Redeliveries: an old anonymous message and the identify again (nothing changes).
        after += [dict(rng.choice([*before, identify]))]
        crowd.append(Person(user, anon, before, identify, after))
    return crowd


def expected_states(person: Person, journeys: Sequence[Journey]) -> dict[str, ContactState]:
    """The engine's answer: before and the identify as the user's, in event-time order; then the
    touchpoints sent after, in their order of arrival, each messageId once."""
    merged = in_event_order([decode_touchpoint(m) for m in [*person.before, person.identify]],
                            person.user)
    seen = {tp.message_id for tp in merged}
    arrived = []
    for message in person.after:
        if message["messageId"] not in seen:
            seen.add(message["messageId"])
            arrived.append(replace(decode_touchpoint(message), contact=person.user))
    states = {}
    for journey in journeys:
        state = replay(journey, [*merged, *arrived]).state
        if state is not None:
            states[journey.id] = state
    return states


def comparable(state: ContactState) -> ContactState:
    return state.evolve(sequence=0, seen=(), observed=0)


async def settled(engine: AsyncEngine, kafka: KafkaSettings, group_id: str,
                  timeout_s: float = 60) -> None:
    """Wait until the stager has consumed the whole touchpoints topic, its outbox is empty (so
    nothing forwarded is still to come) and the topic has stopped growing."""
    deadline = time.monotonic() + timeout_s
    while True:
        ends = await end_offsets(kafka, kafka.touchpoints_topic)
        await wait_consumed(engine, kafka, group_id, max(1.0, deadline - time.monotonic()))
        async with engine.connect() as conn:
            pending = await conn.scalar(sa.select(sa.func.count()).select_from(outbox))
        if not pending and await end_offsets(kafka, kafka.touchpoints_topic) == ends:
            return
        assert time.monotonic() < deadline, f"{pending} outbox rows never published"
        await asyncio.sleep(0.2)


async def read_transitions_topic(kafka: KafkaSettings, want: set[str], merges: int,
                                 timeout_s: float = 30) -> list[dict[str, Any]]:
    """The transitions topic from the start, once it holds every id of `want` and `merges`
    contact.merged records (duplicates allowed), and a moment more."""
    consumer = AIOKafkaConsumer(kafka.transitions_topic,
                                bootstrap_servers=kafka.bootstrap_servers,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                group_id=f"reader-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    records: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(json.loads(r.value) for r in batch)
            ids = {r.get("transition_id") for r in records}
            merged = {r["merge_id"] for r in records if r["type"] == MERGED_TYPE}
            if want <= ids and len(merged) >= merges:
                break
        for batch in (await consumer.getmany(timeout_ms=500)).values():
            records.extend(json.loads(r.value) for r in batch)
    finally:
        await consumer.stop()
    return records


async def assert_merged_exactly_once(engine: AsyncEngine, kafka: KafkaSettings,
                                     crowd: Sequence[Person], journeys: Sequence[Journey]
                                     ) -> None:
    """Each person linked once and stored as the engine computes them; every transition
    recorded once, numbered without gaps, and published."""
    users = {p.user for p in crowd}
    anons = {p.anon for p in crowd}
    async with engine.connect() as conn:
        links = (await conn.execute(sa.select(contact_links.c.alias, contact_links.c.canonical)
                                    )).all()
        conflicts = (await conn.execute(sa.select(identity_conflicts.c.reason))).scalars().all()
        left = (await conn.execute(sa.select(contact_states.c.contact)
                                   .where(contact_states.c.contact.in_(anons)))).scalars().all()
        states = [ContactState.from_stored(s) for s in (await conn.execute(
            sa.select(contact_states.c.state).where(contact_states.c.contact.in_(users))
        )).scalars()]
        rows = (await conn.execute(sa.select(
            transitions.c.transition_id, transitions.c.contact, transitions.c.journey_id,
            transitions.c.seq, transitions.c.from_stage, transitions.c.to_stage,
            transitions.c.cause))).all()

    assert len(links) == len(crowd)
    assert dict(tuple(r) for r in links) == {p.anon: p.user for p in crowd}
    assert conflicts == []
    assert left == []

    stored: dict[str, dict[str, ContactState]] = defaultdict(dict)
    for state in states:
        stored[state.contact][state.journey_id] = state
    wrong = [p.user for p in crowd
             if {j: comparable(s) for j, s in stored[p.user].items()}
             != {j: comparable(s) for j, s in expected_states(p, journeys).items()}]
    assert not wrong, f"{len(wrong)} people differ from the engine's answer, e.g. {wrong[0]}"

    assert len({r.transition_id for r in rows}) == len(rows)
    by_key: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for row in rows:
        by_key[(row.contact, row.journey_id)].append(row)
    for (contact, journey_id), moves in by_key.items():
        moves.sort(key=lambda r: r.seq)
        assert [r.seq for r in moves] == list(range(1, len(moves) + 1)), (contact, journey_id)
        for earlier, later in itertools.pairwise(moves):
            assert later.from_stage == earlier.to_stage, (contact, journey_id)
        if contact in users:
            state = stored[contact][journey_id]
            assert (state.sequence, state.stage) == (len(moves), moves[-1].to_stage)
    person = {p.user: p for p in crowd}
    merge_moves = [(r.contact, r.journey_id, r.cause) for r in rows
                   if r.cause.startswith(merge_cause(""))]
    assert len(set(merge_moves)) == len(merge_moves)  # at most one per person and journey
    assert all(cause == merge_cause(person[contact].anon) for contact, _, cause in merge_moves)

    published = await read_transitions_topic(kafka, {r.transition_id for r in rows}, len(crowd))
    assert {r["transition_id"] for r in published if r["type"] == TRANSITION_TYPE} == \
        {r.transition_id for r in rows}
    assert {(r["contact"], r["merged"]) for r in published if r["type"] == MERGED_TYPE} == \
        {(p.user, p.anon) for p in crowd}
