"""A `polku contacts erase` over many people, killed with SIGKILL mid-way: every person is
either wholly erased, with a receipt and on the suppression list, or wholly untouched, and
running the same command again finishes the job. On PostgreSQL and on the embedded SQLite file.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.engine import make_engine
from shared.db.migrate import upgrade
from shared.db.tables import (
    contact_links,
    contact_states,
    erasure_receipts,
    processed_messages,
    suppressions,
)
from shared.privacy import id_hash, installation_salt
from shared.settings import DatabaseSettings
from tests.processes import ROOT

T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)


class Store:
    def __init__(self, database: DatabaseSettings, cli: list[str], env: dict[str, str],
                 people: int) -> None:
        self.database, self.cli, self.env, self.people = database, cli, env, people
        self.engine: AsyncEngine


@pytest.fixture(params=["postgresql", "sqlite"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("POLKU_DB_URL", None)
    if request.param == "sqlite":
        data_dir = tmp_path / "dev"
        data_dir.mkdir()
        url = f"sqlite+aiosqlite:///{data_dir / 'polku.db'}"
        upgrade(url)
        return Store(DatabaseSettings(url_override=url), ["--data-dir", str(data_dir)], env,
                     300)
    database: DatabaseSettings = request.getfixturevalue("own_database")
    return Store(database, [], {**env, "POLKU_PG_DB": database.db}, 1500)


@pytest.fixture
async def store(target: Store) -> AsyncIterator[Store]:
    target.engine = make_engine(target.database, pool_size=2)
    yield target
    await target.engine.dispose()


def person(i: int) -> tuple[str, str]:
    return f"crash-user-{i}", f"crash-anon-{i}"


async def seed(store: Store) -> None:
    states, journal, links = [], [], []
    for i in range(store.people):
        user, anon = person(i)
        for contact in (user, anon):
            states.append({"contact": contact, "journey_id": "trial", "journey_version": 1,
                           "stage": "aware", "state": {"contact": contact}, "partition": 0})
            journal.append({"contact": contact, "message_id": f"m-{contact}", "at": T0,
                            "message": json.dumps({"contact": contact}).encode()})
        links.append({"alias": anon, "canonical": user, "kind": "identify", "cause": "m",
                      "linked_at": T0})
    async with store.engine.begin() as conn:
        await conn.execute(sa.insert(contact_states), states)
        await conn.execute(sa.insert(processed_messages), journal)
        await conn.execute(sa.insert(contact_links), links)


async def outcome(store: Store) -> tuple[set[int], set[int]]:
    """(people wholly erased with a receipt, people untouched); asserts there is no third kind."""
    async with store.engine.connect() as conn:
        salt = await installation_salt(conn)
        stated = set((await conn.execute(sa.select(contact_states.c.contact))).scalars())
        journaled = set((await conn.execute(
            sa.select(processed_messages.c.contact))).scalars())
        linked = set((await conn.execute(sa.select(contact_links.c.alias))).scalars())
        listed = set((await conn.execute(sa.select(suppressions.c.id_hash))).scalars())
        receipted = {h for hashes in (await conn.execute(
            sa.select(erasure_receipts.c.id_hashes))).scalars() for h in hashes}
    erased, untouched = set(), set()
    for i in range(store.people):
        user, anon = person(i)
        hashes = {id_hash(salt, user), id_hash(salt, anon)}
        present = [user in stated, anon in stated, user in journaled, anon in journaled,
                   anon in linked]
        if all(present) and not hashes & (listed | receipted):
            untouched.add(i)
        elif not any(present) and hashes <= listed and hashes <= receipted:
            erased.add(i)
        else:
            raise AssertionError(f"person {i} is half erased: {present}, "
                                 f"listed {hashes & listed}, receipted {hashes & receipted}")
    return erased, untouched


def run_erase(store: Store, ids_file: Path, kill_after: int | None) -> list[str]:
    """Run the command; with `kill_after`, SIGKILL it once it has printed that many receipts."""
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "contacts", *store.cli, "erase",
         "--file", str(ids_file)],
        env=store.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    lines: list[str] = []
    try:
        for line in process.stdout:
            lines.append(line)
            if kill_after is not None and len(lines) >= kill_after:
                process.kill()
                break
    finally:
        process.wait(120)
    if kill_after is None:
        assert process.returncode == 0, process.stderr.read() if process.stderr else ""
    return lines


async def test_a_killed_erase_leaves_each_person_whole_or_gone_and_a_rerun_finishes(
    store: Store, tmp_path: Path,
) -> None:
    await seed(store)
    ids_file = tmp_path / "ids.txt"
    # By the alias for half of them: the erase finds the rest of the person from it.
    ids_file.write_text("".join(f"{person(i)[i % 2]}\n" for i in range(store.people)))

    printed = await asyncio.to_thread(run_erase, store, ids_file, 20)

    erased, untouched = await outcome(store)
    assert len(printed) >= 20 and len(erased) >= 20
    assert untouched, "the erase finished before it was killed: nothing was interrupted"
    for line in printed:
        receipt = json.loads(line)
        assert len(receipt["id_hashes"]) == 2 and receipt["removed"]["contact_states"] == 2

    rerun = await asyncio.to_thread(run_erase, store, ids_file, None)

    erased, untouched = await outcome(store)
    assert (len(erased), untouched) == (store.people, set())
    assert len(rerun) == store.people
    # Those erased before the kill are found again with nothing left to remove.
    assert sum(1 for line in rerun if sum(json.loads(line)["removed"].values()) == 0) >= 20
