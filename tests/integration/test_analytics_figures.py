"""The analytics figures, worked out by hand for crafted histories written by the real stager
store, on PostgreSQL and on SQLite (docs/analytics.md has the definitions).

The histories (tests/analytics_histories.py), hours from T0 (Monday 2026-11-02 08:00 UTC):

    alice  a@0  b@2  c@5  d@9          first touch paid_search (cpc), the others direct
    bob    a@0  c@1  d@4               skips b
    carol  a@0  b@1  a@3  b@4  c@10    back to a, then b again: two visits of a and of b
    dave   c@0  d@2                    lands in c: skips a and b
    erin   a@0                         still in a
    frank  a@0  c@1  b@2  c@4          first reaches c before b
    gina   a@168  b@169                enters a week later (2026-W46)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest import analytics
from services.ingest.analytics import Period
from services.ingest.funnel import ANY_ORDER, IN_ORDER, StageFigures
from shared.db.tables import contact_states, transitions
from shared.privacy import ErasureStores, erase_person
from shared.settings import DatabaseSettings
from tests.analytics_histories import (
    CRAFTED,
    JOURNEY,
    T0,
    TOPICS,
    apply,
    at,
    event,
    interleaved,
    path,
    postgres_store,
    sqlite_store,
)

PERIOD = Period(at(-1), at(14 * 24))
H = 3600.0


@pytest.fixture(params=["postgresql", "sqlite"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> DatabaseSettings | Path:
    """A fresh PostgreSQL database, or a directory for a SQLite file."""
    if request.param == "postgresql":
        settings: DatabaseSettings = request.getfixturevalue("own_database")
        return settings
    return tmp_path


@pytest.fixture
async def store(database: DatabaseSettings | Path) -> AsyncIterator[AsyncEngine]:
    opened = (sqlite_store(database) if isinstance(database, Path)
              else postgres_store(database))
    async with opened as engine:
        yield engine


def rows(stages: list[StageFigures]) -> list[tuple[Any, ...]]:
    """(stage, reached, to next, from first, dropped, median h, p90 h, visits) per stage."""
    def share(value: float | None) -> float | None:
        return None if value is None else round(value, 6)

    def hours(value: float | None) -> float | None:
        return None if value is None else round(value / H, 6)

    return [(f.stage, f.reached, share(f.conversion_to_next), share(f.conversion_from_first),
             f.dropped, hours(f.time_in_stage.median_s), hours(f.time_in_stage.p90_s),
             f.time_in_stage.visits) for f in stages]


# Completed visits, in hours: a: alice 2, bob 1, carol 1 and 1, frank 1, gina 1 (erin is still
# there); b: alice 3, carol 2 and 6, frank 2 (gina is still there); c: alice 4, bob 3, dave 2,
# frank 1 (carol and frank are still there); d: nobody has left it.
TIME_A, TIME_B, TIME_C = (1.0, 1.5, 6), (2.5, 5.1, 4), (2.5, 3.7, 4)
TIME_D = (None, None, 0)


async def test_in_order_a_skipped_stage_drops_the_contact_from_every_later_step(
    store: AsyncEngine,
) -> None:
    await apply(store, interleaved(CRAFTED))

    funnel = await analytics.funnel(store, JOURNEY, PERIOD, IN_ORDER, analytics.NONE)

    # In order: alice a,b,c,d; bob a (skipped b); carol a,b,c; dave none (landed in c);
    # erin a; frank a,b (first reached c before b); gina a,b.
    assert rows(funnel.stages) == [
        ("a", 6, round(4 / 6, 6), 1.0, 2, *TIME_A),
        ("b", 4, 0.5, round(4 / 6, 6), 2, *TIME_B),
        ("c", 2, 0.5, round(2 / 6, 6), 1, *TIME_C),
        ("d", 1, None, round(1 / 6, 6), 0, *TIME_D),
    ]
    assert funnel.splits == []


async def test_in_any_order_every_stage_reached_counts(store: AsyncEngine) -> None:
    await apply(store, interleaved(CRAFTED))

    funnel = await analytics.funnel(store, JOURNEY, PERIOD, ANY_ORDER, analytics.NONE)

    # Reached: a 6 (not dave), b 4 (alice carol frank gina), c 5 (not erin gina), d 3 (alice
    # bob dave). Also the next: a&b 4, b&c 3 (alice carol frank), c&d 3 (alice bob dave).
    # From the first: a&c 4 (alice bob carol frank), a&d 2 (alice bob).
    assert rows(funnel.stages) == [
        ("a", 6, round(4 / 6, 6), 1.0, 2, *TIME_A),
        ("b", 4, 0.75, round(4 / 6, 6), 1, *TIME_B),
        ("c", 5, 0.6, round(4 / 6, 6), 2, *TIME_C),
        ("d", 3, None, round(2 / 6, 6), 0, *TIME_D),
    ]


async def test_a_cohort_split_counts_each_contact_in_the_week_it_entered(
    store: AsyncEngine,
) -> None:
    await apply(store, interleaved(CRAFTED))

    funnel = await analytics.funnel(store, JOURNEY, PERIOD, IN_ORDER, analytics.COHORT_WEEK)

    assert [key for key, _ in funnel.splits] == ["2026-W45", "2026-W46"]
    week45, week46 = (rows(stages) for _, stages in funnel.splits)
    # W45 is everyone but gina: gina's visit of a (1 h) is its only difference in times.
    assert week45 == [
        ("a", 5, 0.6, 1.0, 2, 1.0, round(1.6, 6), 5),
        ("b", 3, round(2 / 3, 6), 0.6, 1, *TIME_B),
        ("c", 2, 0.5, 0.4, 1, *TIME_C),
        ("d", 1, None, 0.2, 0, *TIME_D),
    ]
    assert week46 == [
        ("a", 1, 1.0, 1.0, 0, 1.0, 1.0, 1),
        ("b", 1, 0.0, 1.0, 1, None, None, 0),
        ("c", 0, None, 0.0, 0, None, None, 0),
        ("d", 0, None, 0.0, 0, None, None, 0),
    ]
    # The splits add up to the whole.
    assert rows(funnel.stages)[0][:2] == ("a", 6)


async def test_a_channel_split_uses_the_first_touch_even_when_it_arrives_late(
    store: AsyncEngine,
) -> None:
    await apply(store, interleaved(CRAFTED))
    # Erin's older touchpoint arrives late, from an email: her first touch is now email, on her
    # state and on the transitions she already made.
    late = event("erin", -2, "Newsletter Opened", medium="email")
    await apply(store, [late], first_offset=100)

    funnel = await analytics.funnel(store, JOURNEY, PERIOD, ANY_ORDER, analytics.CHANNEL)

    by_key = {key: rows(stages) for key, stages in funnel.splits}
    assert sorted(by_key) == ["direct", "email", "paid_search"]
    assert [r[1] for r in by_key["paid_search"]] == [1, 1, 1, 1]  # alice
    assert [r[1] for r in by_key["email"]] == [1, 0, 0, 0]  # erin
    assert [r[1] for r in by_key["direct"]] == [4, 3, 4, 2]  # bob carol dave frank gina
    assert by_key["paid_search"][0][5:] == (2.0, 2.0, 1)  # alice's visit of a
    async with store.connect() as conn:
        channels = set((await conn.execute(
            sa.select(transitions.c.first_channel).where(transitions.c.contact == "erin")
        )).scalars())
    assert channels == {"email"}


async def test_the_period_is_of_entries_and_its_end_is_exclusive(store: AsyncEngine) -> None:
    await apply(store, interleaved(CRAFTED))

    only_gina = await analytics.funnel(store, JOURNEY, Period(at(1), at(7 * 24 + 0.5)),
                                       IN_ORDER, analytics.NONE)
    nobody = await analytics.funnel(store, JOURNEY, Period(at(-5), T0), IN_ORDER,
                                    analytics.NONE)

    # Gina's moves after the period's end still count: she entered in it.
    assert [f.reached for f in only_gina.stages] == [1, 1, 0, 0]
    assert [f.reached for f in nobody.stages] == [0, 0, 0, 0]
    assert [f.conversion_from_first for f in nobody.stages] == [None] * 4


async def test_flows_count_every_move_of_the_period_s_contacts_and_where_they_are(
    store: AsyncEngine,
) -> None:
    await apply(store, interleaved(CRAFTED))

    flows = await analytics.flows(store, JOURNEY, PERIOD)

    assert flows.links == [
        (None, "a", 6), (None, "c", 1),
        ("a", "b", 4), ("a", "c", 2),
        ("b", "a", 1), ("b", "c", 3),
        ("c", "b", 1), ("c", "d", 3),
    ]
    assert flows.still_in == {"a": 1, "b": 1, "c": 2, "d": 3}
    # What flows into a stage and not out of it is still there.
    for stage in "abcd":
        into = sum(n for _, to, n in flows.links if to == stage)
        out = sum(n for source, _, n in flows.links if source == stage)
        assert into - out == flows.still_in[stage]


async def test_population_counts_each_stage_at_the_end_of_each_day(store: AsyncEngine) -> None:
    await apply(store, interleaved(CRAFTED))

    series = await analytics.population(store, JOURNEY, Period(at(-24), at(8 * 24)),
                                        timedelta(days=1))

    days = [at(24 * k) for k in range(0, 9)]
    # At T0 itself nobody has entered (moves at T0 are in the next day); gina enters at
    # T0 + 7 d exactly, so she counts from the point after it.
    assert {stage: [(p, n) for p, n in points] for stage, points in series.items()} == {
        "a": [(p, 0 if p == days[0] else 1) for p in days],
        "b": [(p, 0 if p == days[0] else 1 if p == days[8] else 0) for p in days],
        "c": [(p, 0 if p == days[0] else 2) for p in days],
        "d": [(p, 0 if p == days[0] else 3) for p in days],
    }


async def test_a_merged_anonymous_history_counts_once_as_the_known_contact(
    store: AsyncEngine,
) -> None:
    anonymous = [event("anon-1", 0, "Go A", user=False, anonymous_id="anon-1", medium="cpc"),
                 event("anon-1", 1, "Go B", user=False, anonymous_id="anon-1")]
    known = [event("user-1", 2, "Go A")]
    link = event("user-1", 3, "", type="identify", anonymous_id="anon-1")
    offset = await apply(store, anonymous)
    offset = await apply(store, known, offset)
    await apply(store, [link], offset)

    funnel = await analytics.funnel(store, JOURNEY, PERIOD, IN_ORDER, analytics.CHANNEL)
    flows = await analytics.flows(store, JOURNEY, PERIOD)

    # One person, recomputed from both histories: a@0, b@1, a@2, entered at 0 by paid search.
    assert [f.reached for f in funnel.stages] == [1, 1, 0, 0]
    assert [key for key, _ in funnel.splits] == ["paid_search"]
    # The anonymous id's own moves stay history; the flows count the known contact's.
    assert flows.links == [(None, "a", 1)]
    assert flows.still_in == {"a": 1}
    async with store.connect() as conn:
        kept = (await conn.execute(
            sa.select(transitions.c.contact, transitions.c.contact_entered_at)
            .order_by(transitions.c.contact, transitions.c.seq))).all()
    assert [(c, e is None) for c, e in kept] == [("anon-1", True), ("anon-1", True),
                                                 ("user-1", False)]
    assert kept[2][1] == at(0)  # the person entered when the anonymous id did


async def test_an_erased_contact_leaves_every_figure(store: AsyncEngine) -> None:
    await apply(store, interleaved(CRAFTED))

    await erase_person(store, "alice", ErasureStores(TOPICS.touchpoints, None), at(500))
    funnel = await analytics.funnel(store, JOURNEY, PERIOD, IN_ORDER, analytics.NONE)
    flows = await analytics.flows(store, JOURNEY, PERIOD)

    assert [f.reached for f in funnel.stages] == [5, 3, 1, 0]
    assert flows.still_in == {"a": 1, "b": 1, "c": 2, "d": 2}
    async with store.connect() as conn:
        left = await conn.scalar(sa.select(sa.func.count()).select_from(contact_states)
                                 .where(contact_states.c.contact == "alice"))
    assert left == 0


async def test_time_in_stage_reads_a_sample_of_the_visits_of_a_large_period(
    store: AsyncEngine, monkeypatch: pytest.MonkeyPatch,
) -> None:
    many = {f"c-{i}": path(f"c-{i}", (0, "a"), (1 + i % 5, "b")) for i in range(200)}
    await apply(store, interleaved(many))
    monkeypatch.setattr(analytics, "EXACT_CONTACTS", 50)

    funnel = await analytics.funnel(store, JOURNEY, PERIOD, IN_ORDER, analytics.NONE)

    time_a = funnel.stages[0].time_in_stage
    assert funnel.stages[0].reached == 200  # the counts stay exact
    assert time_a.sample == 16 / 64  # 64 buckets * 50 / 200 contacts
    assert 20 < time_a.visits < 90
    assert time_a.median_s is not None and 2 * H <= time_a.median_s <= 4 * H
    assert time_a.p90_s is not None and 4 * H <= time_a.p90_s <= 5 * H
