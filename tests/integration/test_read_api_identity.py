"""GET /v1/contacts/{id} answers for the person behind any of their ids (real PostgreSQL, and the
embedded mode's SQLite): the canonical contact's state, the history of every id in time order,
the links and the links the stager refused. Rows are written directly, as the stager leaves them
after a merge: the alias's states deleted, its transitions kept."""

from __future__ import annotations

import gc
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.dev.app import create_app as create_dev_app
from services.dev.settings import DevSettings
from services.ingest.read_api import read_api_of
from services.ingest.settings import IngestSettings
from shared.db.read_model import state_row, transition_row
from shared.db.tables import contact_links, contact_states, identity_conflicts, transitions
from shared.journey import ContactState, Touch, Transition, merge_cause
from shared.settings import DatabaseSettings, KafkaSettings
from tests.ingest_app import ingest_client

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
TOKEN = "read-token-" + uuid.uuid4().hex
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass(frozen=True)
class People:
    """The ids of one test's people (unique per test: the run's database is shared)."""

    user: str  # identified; anon and alias were merged into it
    anon: str  # merged by an identify call; its states are gone, its transitions stay
    alias: str  # merged by an alias call; never had a state or transition
    lonely_user: str  # linked, but neither id has a state or transition yet
    lonely_anon: str
    plain: str  # no links at all
    stranger: str  # only in a refused link

    @classmethod
    def new(cls) -> People:
        tag = uuid.uuid4().hex[:8]
        return cls(*(f"{name}-{tag}" for name in (
            "user", "anon", "alias", "lonely-user", "lonely-anon", "plain", "stranger")))


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def moved(contact: str, journey: str, from_: str | None, to: str, hours: float, cause: str,
          rule: str | None = "purchase") -> Transition:
    return Transition(str(uuid.uuid4()), journey, 1, contact, from_, to, at(hours), cause, rule,
                      "because")


async def write_people(engine: AsyncEngine, people: People) -> dict[str, Transition]:
    """The rows the stager leaves after merging `anon` (identify) and `alias` into `user`."""
    user, anon = people.user, people.anon
    history = {
        "anon-aware": moved(anon, "trial", None, "aware", 0, "m-1", None),
        "user-aware": moved(user, "trial", None, "aware", 1, "m-2", None),
        "anon-engaged": moved(anon, "trial", "aware", "engaged", 2, "m-3", "engaged-after-3-pages"),
        "user-merged": moved(user, "trial", "aware", "engaged", 3, merge_cause(anon), None),
        "user-bought": moved(user, "trial", "engaged", "customer", 4, "m-5"),
        "anon-other": moved(anon, "other", None, "first", 0.5, "m-1", None),
        "plain-aware": moved(people.plain, "trial", None, "aware", 0, "m-9", None),
    }
    seqs: dict[tuple[str, str], int] = {}
    rows = []
    for transition in history.values():
        key = (transition.contact, transition.journey_id)
        seqs[key] = seqs.get(key, 0) + 1
        rows.append(transition_row(transition, seqs[key]))
    states = [
        ContactState("trial", 1, user, stage="customer", stage_entered_at=at(4),
                     last_event_at=at(4), first_touch=Touch("paid_search", at(0)),
                     last_touch=Touch("direct", at(4)), traits={"email": "u@example.com"}),
        ContactState("trial", 1, people.plain, stage="aware", stage_entered_at=at(0),
                     last_event_at=at(0)),
    ]
    async with engine.begin() as conn:
        await conn.execute(transitions.insert(), rows)
        await conn.execute(contact_states.insert(),
                           [{**state_row(s, None), "state": s.to_stored(), "partition": 0}
                            for s in states])
        await conn.execute(contact_links.insert(), [
            {"alias": anon, "canonical": user, "kind": "identify", "cause": "m-4",
             "linked_at": at(3), "merged_at": at(3.5)},
            {"alias": people.alias, "canonical": user, "kind": "alias", "cause": "m-6",
             "linked_at": at(5), "merged_at": at(5.5)},
            {"alias": people.lonely_anon, "canonical": people.lonely_user, "kind": "identify",
             "cause": "m-7", "linked_at": at(1), "merged_at": at(1.5)},
        ])
        await conn.execute(identity_conflicts.insert(), [
            {"contact": user, "other": "someone-else", "reason": "both_identified",
             "cause": "m-8", "at": at(6)},
            {"contact": "another-user", "other": anon, "reason": "already_linked",
             "cause": "m-10", "at": at(7)},
            {"contact": "another-user", "other": people.stranger, "reason": "too_many_ids",
             "cause": "m-11", "at": at(8)},
        ])
    return history


def entry(t: Transition, caused_by: dict[str, str]) -> dict[str, Any]:
    return {"transition_id": t.transition_id, "contact": t.contact, "from": t.from_stage,
            "to": t.to_stage, "at": t.at.isoformat(), "cause": t.cause, "caused_by": caused_by,
            "rule": t.rule_id, "reason": t.reason}


def expected_person(people: People, history: dict[str, Transition]) -> dict[str, Any]:
    user, anon = people.user, people.anon

    def event(name: str) -> dict[str, Any]:
        return entry(history[name], {"kind": "event", "message_id": history[name].cause})

    return {
        "contact": user,
        "ids": [user, anon, people.alias],
        "links": [
            {"alias": anon, "kind": "identify", "cause": "m-4", "linked_at": at(3).isoformat(),
             "merged_at": at(3.5).isoformat()},
            {"alias": people.alias, "kind": "alias", "cause": "m-6",
             "linked_at": at(5).isoformat(), "merged_at": at(5.5).isoformat()},
        ],
        "conflicts": [
            {"reason": "both_identified", "contact": user, "other": "someone-else",
             "cause": "m-8", "at": at(6).isoformat()},
            {"reason": "already_linked", "contact": "another-user", "other": anon,
             "cause": "m-10", "at": at(7).isoformat()},
        ],
        "journeys": [
            # Only the alias ever was in `other`, and the merge ended its states: history only.
            {"journey": "other", "contact": None, "version": 1, "stage": None,
             "entered_at": None, "first_touch": None, "last_touch": None,
             "last_event_at": None, "traits": {}, "history": [event("anon-other")]},
            {"journey": "trial", "contact": user, "version": 1,
             "stage": {"id": "customer", "labels": {"fi": "Asiakas", "en": "Customer"}},
             "entered_at": at(4).isoformat(),
             "first_touch": {"channel": "paid_search", "at": at(0).isoformat()},
             "last_touch": {"channel": "direct", "at": at(4).isoformat()},
             "last_event_at": at(4).isoformat(), "traits": {"email": "u@example.com"},
             "history": [
                 event("anon-aware"), event("user-aware"), event("anon-engaged"),
                 entry(history["user-merged"], {"kind": "merge", "merged": anon}),
                 event("user-bought"),
             ]},
        ],
    }


async def check_read_api(http: httpx.AsyncClient, people: People,
                         history: dict[str, Transition]) -> None:
    person = expected_person(people, history)
    for asked in (people.user, people.anon, people.alias):
        answer = await http.get(f"/v1/contacts/{asked}", headers=AUTH)
        assert answer.status_code == 200, answer.text
        assert answer.json() == person, asked

    lonely = await http.get(f"/v1/contacts/{people.lonely_anon}", headers=AUTH)
    assert lonely.status_code == 200
    assert lonely.json()["ids"] == [people.lonely_user, people.lonely_anon]
    assert lonely.json()["journeys"] == [] and lonely.json()["conflicts"] == []

    plain = (await http.get(f"/v1/contacts/{people.plain}", headers=AUTH)).json()
    assert (plain["contact"], plain["ids"], plain["links"], plain["conflicts"]) == (
        people.plain, [people.plain], [], [])
    [trial] = plain["journeys"]
    assert trial["stage"]["id"] == "aware" and trial["contact"] == people.plain
    assert [(h["contact"], h["cause"]) for h in trial["history"]] == [(people.plain, "m-9")]

    for nobody in (people.stranger, f"nobody-{uuid.uuid4().hex[:6]}"):
        missing = await http.get(f"/v1/contacts/{nobody}", headers=AUTH)
        assert missing.status_code == 404
        assert "contact_id" in missing.json()["detail"]


async def test_any_id_of_a_person_answers_with_all_of_them_on_postgresql(
    topic_names: KafkaSettings, database_settings: DatabaseSettings, engine: AsyncEngine,
) -> None:
    people = People.new()
    history = await write_people(engine, people)
    async with ingest_client(topic_names, database_settings,
                             IngestSettings(read_token=TOKEN)) as http:
        await check_read_api(http, people, history)


@pytest.fixture
def collector() -> Iterator[None]:
    """The embedded stager tunes the collector for the whole process: undo it after the test."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.fixture
async def embedded(tmp_path: Path, collector: None) -> AsyncIterator[Any]:
    app = create_dev_app(DevSettings(data_dir=tmp_path / "dev"),
                         demo_secret="whsec_" + "A" * 32, environ={},
                         journeys_dir=Path(__file__).parents[1] / "journeys",
                         ingest=IngestSettings(read_token=TOKEN))
    async with app.router.lifespan_context(app):
        yield app


async def test_any_id_of_a_person_answers_with_all_of_them_in_the_embedded_mode(
    embedded: Any,
) -> None:
    people = People.new()
    history = await write_people(read_api_of(embedded).engine, people)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=embedded),
                                 base_url="http://dev") as http:
        await check_read_api(http, people, history)


async def test_an_id_postgresql_cannot_hold_is_nobody_not_an_error(
    topic_names: KafkaSettings, database_settings: DatabaseSettings,
) -> None:
    async with ingest_client(topic_names, database_settings,
                             IngestSettings(read_token=TOKEN)) as http:
        for odd in ("a%00b", "x" * 300, "%F0%9F%90%8D-ü"):
            answer = await http.get(f"/v1/contacts/{odd}", headers=AUTH)
            assert answer.status_code == 404, (odd, answer.text)
