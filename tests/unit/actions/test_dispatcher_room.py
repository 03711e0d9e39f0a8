"""How much room the dispatcher offers for deliveries being created, and that every
reservation ends, whatever became of the creation."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from services.actions.dispatcher import Dispatcher
from services.actions.egress import EgressPolicy, guarded_transport
from services.actions.settings import ActionsSettings
from services.actions.signing import SigningSecrets
from services.actions.store import PENDING, Delivery
from shared.clock import ManualClock

ENGINE: AsyncEngine = None  # type: ignore[assignment]  # nothing here reaches the database


def dispatcher(**settings: object) -> Dispatcher:
    return Dispatcher(ENGINE, ActionsSettings(**settings), guarded_transport(EgressPolicy()),
                      ManualClock(), secrets=SigningSecrets({}))


def delivery(endpoint: str, n: int) -> Delivery:
    now = datetime(2026, 11, 23, tzinfo=UTC)
    return Delivery(f"msg_{endpoint}_{n}", "t", endpoint, "https://example.com/", "deals", "c",
                    "{}", None, None, {}, PENDING, 0, now, "token", None, None, None, now,
                    None, None)


def test_each_endpoint_is_offered_its_window_within_the_workers_limit() -> None:
    worker = dispatcher(endpoint_concurrency=4, max_in_flight=10)
    claim = worker.reserve({"ep_a", "ep_b"})
    assert claim is not None
    assert claim.room == {"ep_a": 8, "ep_b": 2}  # windows of 2 x 4, 10 in all


def test_reserved_room_is_not_offered_twice_and_is_given_back_however_creation_ended() -> None:
    worker = dispatcher(endpoint_concurrency=4)
    first = worker.reserve({"ep_a"})
    second = worker.reserve({"ep_a"})
    assert first is not None and second is not None
    assert (first.room, second.room) == ({"ep_a": 8}, {"ep_a": 0})
    worker.accept(first, [], set())  # e.g. the transaction failed: nothing was created
    worker.accept(second, [], set())
    again = worker.reserve({"ep_a"})
    assert again is not None and again.room == {"ep_a": 8}


def test_nothing_is_reserved_when_new_deliveries_are_not_due_at_once() -> None:
    assert dispatcher(retry_schedule_s=(5.0, 60.0)).reserve({"ep_a"}) is None


def test_deliveries_handed_over_while_stopping_are_given_back_unattempted() -> None:
    worker = dispatcher()
    claim = worker.reserve({"ep_a"})
    worker.stop()
    worker.accept(claim, [delivery("ep_a", 1), delivery("ep_a", 2)], set())
    assert worker.in_flight == 0
    assert worker.results._released == [("msg_ep_a_1", claim.token), ("msg_ep_a_2", claim.token)]
    assert worker.reserve({"ep_a"}) is None
