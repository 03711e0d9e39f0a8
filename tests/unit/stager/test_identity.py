"""Identity through the stager's store (SQLite): links, merges, forwarding and the safety rules.

The property test is the definition in docs/identity.md, end to end through the database: an
anonymous history on one partition, a known one on another, an identify linking them and
touchpoints still sent with the anonymous id afterwards (forwarded between partitions through
the outbox, as the publisher would). The contact's stored state must equal the engine's run on
all those touchpoints as one contact's, in event-time order.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from services.stager.identity import IdentityRules
from services.stager.processing import Record
from services.stager.store import Identity, Partition, apply_batch, delete_outbox, pending_outbox
from shared.db.engine import sqlite_engine
from shared.db.migrate import upgrade
from shared.db.tables import (
    contact_links,
    contact_states,
    identity_conflicts,
    processed_messages,
    transitions,
)
from shared.journey import ContactState, in_event_order, load_journeys, replay
from shared.wire import MERGED_TYPE, Topics, decode_touchpoint, partition_for_key
from tests.messages import iso

JOURNEYS = load_journeys(Path(__file__).parents[3] / "journeys")
TOPICS = Topics(touchpoints="touchpoints", transitions="transitions", dead_letters="dead")
PARTITIONS = 4
T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
USER, ANON = "user-1", "anon-3"
assert partition_for_key(USER.encode(), PARTITIONS) != partition_for_key(ANON.encode(), PARTITIONS)

EVENTS = ["Pricing Viewed", "Demo Requested", "Signed Up", "Order Completed", "Feature Used",
          "Guide Downloaded", "Event Attended", "Signed In", "Webinar Attended"]
_ids = itertools.count()


def call(contact: str, at: datetime, *, user_id: str | None = None,
         anonymous_id: str | None = None, type: str = "track", event: str | None = None,
         traits: dict[str, Any] | None = None, previous_id: str | None = None,
         referrer: str = "") -> dict[str, Any]:
    """A touchpoint message as ingest writes it (contact = userId, else anonymousId)."""
    return {
        "v": 1, "type": type, "messageId": f"m-{next(_ids)}", "contact": contact,
        "userId": user_id, "anonymousId": anonymous_id, "previousId": previous_id,
        "groupId": None, "event": event, "name": None, "properties": {},
        "traits": traits or {}, "context": {"page": {"referrer": referrer}} if referrer else {},
        "timestamp": iso(at), "originalTimestamp": iso(at), "sentAt": None,
        "receivedAt": iso(at), "sourceId": "test",
    }


def anonymous(at: datetime, **kw: Any) -> dict[str, Any]:
    return call(ANON, at, anonymous_id=ANON, **kw)


def known(at: datetime, **kw: Any) -> dict[str, Any]:
    return call(USER, at, user_id=USER, **kw)


def identify(at: datetime, user: str = USER, anon: str = ANON, **traits: Any) -> dict[str, Any]:
    return call(user, at, user_id=user, anonymous_id=anon, type="identify",
                traits=traits or {"persona": "cto"})


class Log:
    """The touchpoints topic and the stager's store, fed one partition batch at a time, with the
    outbox published back onto the topic as the stager's publisher does."""

    def __init__(self, engine: AsyncEngine, rules: IdentityRules | None = None) -> None:
        self.engine = engine
        self.rules = rules or IdentityRules()
        self.partitions: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
        self.applied = dict.fromkeys(self.partitions, 0)
        self.transitions_topic: list[dict[str, Any]] = []

    def append(self, message: dict[str, Any]) -> None:
        self.append_raw(message["contact"], json.dumps(message).encode())

    def append_raw(self, key: str, value: bytes) -> None:
        self.partitions[partition_for_key(key.encode(), PARTITIONS)].append(value)

    async def drain(self) -> None:
        """Apply everything on the log, partition by partition, until nothing moves."""
        while any(self.applied[p] < len(v) for p, v in self.partitions.items()):
            for p, values in self.partitions.items():
                start = self.applied[p]
                if start == len(values):
                    continue
                records = [Record(start + i, None, v) for i, v in enumerate(values[start:])]
                await apply_batch(self.engine, Partition("g", TOPICS.touchpoints, p), records,
                                  JOURNEYS, TOPICS, Identity(self.rules, PARTITIONS))
                self.applied[p] = len(values)
                await self.publish(p)

    async def publish(self, partition: int) -> None:
        rows = await pending_outbox(self.engine, partition)
        for row in rows:
            if row.topic == TOPICS.touchpoints:
                assert row.key is not None and row.payload is not None
                self.append_raw(row.key.decode(), row.payload)
            elif row.topic == TOPICS.transitions:
                assert row.payload is not None
                self.transitions_topic.append(json.loads(row.payload))
        await delete_outbox(self.engine, [r.id for r in rows])

    async def state(self, contact: str) -> dict[str, ContactState]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(sa.select(contact_states.c.state)
                                      .where(contact_states.c.contact == contact))
            return {s.journey_id: s for s in map(ContactState.from_stored, rows.scalars())}


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'stager.db'}"
    await asyncio.to_thread(upgrade, url)
    engine = sqlite_engine(url)
    yield engine
    await engine.dispose()


def as_one_contact(merged: Sequence[dict[str, Any]],
                   after: Sequence[dict[str, Any]] = ()) -> dict[str, ContactState]:
    """The engine's answer: every touchpoint as USER's; those the merge found in event-time
    order, then those that arrived after it in their order of arrival, as any contact's do."""
    ordered = in_event_order([decode_touchpoint(m) for m in merged], USER)
    arrived = [replace(decode_touchpoint(m), contact=USER) for m in after]
    states = {}
    for journey in JOURNEYS:
        state = replay(journey, [*ordered, *arrived]).state
        if state is not None:
            states[journey.id] = state
    return states


def comparable(state: ContactState) -> ContactState:
    return state.evolve(sequence=0, seen=(), observed=0)


Drawn = tuple[list[dict[str, Any]], dict[str, Any], list[dict[str, Any]]]


@st.composite
def histories(draw: st.DrawFn) -> Drawn:
    """(both ids' touchpoints before the link, the identify, those sent with the anonymous id
    that reach the stager after it: still in flight, from an offline app, or simply newer)."""
    def one(contact_call: Any, at: datetime | None = None) -> dict[str, Any]:
        at = at or T0 + timedelta(minutes=draw(st.integers(0, 60 * 24 * 40)))
        kind = draw(st.sampled_from(["track", "track", "page", "identify"]))
        if kind == "track":
            return contact_call(at, event=draw(st.sampled_from(EVENTS)))
        if kind == "page":
            return contact_call(at, type="page", referrer=draw(
                st.sampled_from(["", "https://www.google.com/", "https://t.co/x"])))
        return contact_call(at, type="identify", traits={
            "persona": draw(st.sampled_from(["cto", "cmo"])),
            "employees": draw(st.sampled_from([10, 80]))})

    before = [one(who) for who in draw(st.lists(st.sampled_from([anonymous, known]),
                                                max_size=14))]
    link = identify(T0 + timedelta(minutes=draw(st.integers(0, 60 * 24 * 40))))
    after = [one(anonymous) for _ in range(draw(st.integers(0, 3)))]
    return before, link, after


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(histories())
async def test_a_merged_contact_is_the_engine_run_on_both_histories_in_event_time_order(
    engine: AsyncEngine, drawn: Drawn
) -> None:
    before, link, after = drawn
    async with engine.begin() as conn:  # one database, many examples: start each clean
        for table in (contact_states, processed_messages, contact_links, transitions,
                      identity_conflicts):
            await conn.execute(sa.delete(table))
        await conn.execute(sa.text("delete from outbox"))
        await conn.execute(sa.text("delete from consumer_offsets"))
    log = Log(engine)
    for message in before:
        log.append(message)
    await log.drain()
    log.append(link)
    await log.drain()
    for message in after:
        log.append(message)
    await log.drain()

    expected = as_one_contact([*before, link], after)
    got = await log.state(USER)
    assert {j: comparable(s) for j, s in got.items()} == \
        {j: comparable(s) for j, s in expected.items()}
    assert await log.state(ANON) == {}
    merged = [r for r in log.transitions_topic if r["type"] == MERGED_TYPE]
    assert [(r["contact"], r["merged"]) for r in merged] == [(USER, ANON)]
    # Downstream heard of each real stage change once, and ends where the contact is.
    for journey_id, state in got.items():
        moves = [r for r in log.transitions_topic if r.get("journey", {}).get("id") == journey_id
                 and r["contact"] == USER]
        assert (moves[-1]["to"]["id"] if moves else None) == state.stage
        assert all(a["to"]["id"] != b["to"]["id"] for a, b in itertools.pairwise(moves))
        assert sum(m["cause"]["kind"] == "merge" for m in moves) <= 1


async def test_the_anonymous_history_sets_the_first_touch_and_moves_the_stage(
    engine: AsyncEngine,
) -> None:
    log = Log(engine)
    history = [anonymous(T0, type="page", referrer="https://www.google.com/"),
               anonymous(T0 + timedelta(hours=1), event="Pricing Viewed"),
               anonymous(T0 + timedelta(hours=2), event="Demo Requested")]
    for message in history:
        log.append(message)
    await log.drain()
    assert (await log.state(ANON))["b2b-cto"].stage is None  # no persona yet: not entered
    link = identify(T0 + timedelta(days=1), persona="cto", email="cto@example.fi")
    log.append(link)
    await log.drain()

    cto = (await log.state(USER))["b2b-cto"]
    assert cto.first_touch is not None and cto.first_touch.channel == "search"
    assert cto.first_touch.at == T0
    assert cto.traits["email"] == "cto@example.fi"
    whole = as_one_contact([*history, link])
    alone = as_one_contact([link])
    assert {j: s.stage for j, s in (await log.state(USER)).items()} == \
        {j: s.stage for j, s in whole.items()}
    # One merge transition in each journey where the anonymous history changed the stage.
    merges = {r["journey"]["id"]: r for r in log.transitions_topic
              if r.get("cause", {}).get("kind") == "merge"}
    changed = {j for j in whole if whole[j].stage != alone[j].stage}
    assert changed and set(merges) == changed
    for journey_id, record in merges.items():
        assert record["cause"]["merged"] == ANON
        assert (record["from"]["id"] if record["from"] else None, record["to"]["id"]) == \
            (alone[journey_id].stage, whole[journey_id].stage)

    # A redelivered identify merges nothing twice; later anonymous touchpoints are forwarded.
    sent = len(log.transitions_topic)
    log.append(identify(T0 + timedelta(days=1)) | {"messageId": "again"})
    log.append(anonymous(T0 + timedelta(days=2), event="Feature Used"))
    await log.drain()
    assert not [r for r in log.transitions_topic[sent:] if r["type"] == MERGED_TYPE]
    assert await log.state(ANON) == {}
    async with engine.connect() as conn:
        owners = (await conn.execute(sa.select(processed_messages.c.contact).distinct())).scalars()
        assert set(owners) == {USER}


@pytest.mark.parametrize("other", ["0", "undefined", "NULL", "00000000-0000-0000-0000-000000000000",
                                   "guest", ""])
async def test_placeholder_ids_are_never_linked(engine: AsyncEngine, other: str) -> None:
    log = Log(engine)
    log.append(call(other or "x", T0, anonymous_id=other or None, event="Pricing Viewed"))
    log.append(identify(T0 + timedelta(hours=1), anon=other))
    await log.drain()
    async with engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(contact_links))
                ).scalar_one() == 0


async def test_two_known_people_are_never_merged(engine: AsyncEngine) -> None:
    log = Log(engine)
    # Someone aliases bob (a userId of his own) to user-1, and a shared device id links
    # to user-1 after it already belongs to bob.
    for message in (
        call("bob", T0, user_id="bob", event="Pricing Viewed"),
        call(USER, T0 + timedelta(hours=1), user_id=USER, type="alias", previous_id="bob"),
        identify(T0 + timedelta(hours=2), user="bob", anon="device-9"),
        identify(T0 + timedelta(hours=3), user=USER, anon="device-9"),
    ):
        log.append(message)
        await log.drain()
    async with engine.connect() as conn:
        links = (await conn.execute(sa.select(contact_links.c.alias, contact_links.c.canonical))
                 ).all()
        conflicts = (await conn.execute(
            sa.select(identity_conflicts.c.contact, identity_conflicts.c.other,
                      identity_conflicts.c.reason).order_by(identity_conflicts.c.id))).all()
    assert [tuple(r) for r in links] == [("device-9", "bob")]
    assert [tuple(r) for r in conflicts] == [
        (USER, "bob", "both_identified"), (USER, "device-9", "already_linked")]
    assert (await log.state("bob"))["b2b-cto"].contact == "bob"


async def test_a_contact_takes_at_most_its_limit_of_linked_ids(engine: AsyncEngine) -> None:
    log = Log(engine, IdentityRules.of([], max_linked_ids=2))
    for n in range(4):
        log.append(call(f"device-{n}", T0, anonymous_id=f"device-{n}", event="Pricing Viewed"))
        log.append(identify(T0 + timedelta(hours=n + 1), anon=f"device-{n}"))
    await log.drain()
    async with engine.connect() as conn:
        linked = (await conn.execute(sa.select(contact_links.c.alias).order_by("alias"))
                  ).scalars().all()
        refused = (await conn.execute(sa.select(identity_conflicts.c.reason))).scalars().all()
    assert linked == ["device-0", "device-1"]
    assert refused == ["too_many_ids", "too_many_ids"]
    assert set((await log.state("device-3")).keys()) == {j.id for j in JOURNEYS}
