"""The stager's metrics count every transition and stage duration of a batch, and how long
after its event time each transition was recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from services.stager.consumer import Stager
from services.stager.processing import Changes
from shared.journey import Transition

T0 = datetime(2026, 11, 23, tzinfo=UTC)


def _transition(contact: str, from_stage: str | None, to_stage: str) -> Transition:
    return Transition(f"id-{contact}-{to_stage}", "metrics-test", 1, contact, from_stage,
                      to_stage, T0, "m-1", None, "test")


def _value(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_grouped_counting_adds_up_every_transition_and_duration() -> None:
    moved = {"journey": "metrics-test", "from_stage": "a", "to_stage": "b"}
    entered = {"journey": "metrics-test", "from_stage": "", "to_stage": "a"}
    in_a = {"journey": "metrics-test", "stage": "a"}
    before = (_value("polku_stager_transitions_total", moved),
              _value("polku_stager_transitions_total", entered),
              _value("polku_stager_time_in_stage_seconds_count", in_a),
              _value("polku_stager_time_in_stage_seconds_sum", in_a),
              _value("polku_stager_event_to_transition_seconds_count", {}),
              _value("polku_stager_event_to_transition_seconds_sum", {}),
              _value("polku_stager_event_to_transition_seconds_bucket", {"le": "60.0"}),
              _value("polku_stager_event_to_transition_seconds_bucket", {"le": "120.0"}))
    changes = Changes()
    changes.transitions = [(_transition(f"c{i}", "a", "b"), 2) for i in range(5)]
    changes.transitions.append((_transition("c9", None, "a"), 1))
    changes.stage_durations = [("metrics-test", "a", 10.0), ("metrics-test", "a", -1.0),
                               ("metrics-test", "a", 5.0)]

    Stager._count(changes, T0 + timedelta(seconds=90))

    assert _value("polku_stager_transitions_total", moved) == before[0] + 5
    assert _value("polku_stager_transitions_total", entered) == before[1] + 1
    assert _value("polku_stager_time_in_stage_seconds_count", in_a) == before[2] + 3
    assert _value("polku_stager_time_in_stage_seconds_sum", in_a) == before[3] + 15.0
    # Every transition's event time is T0: each was recorded 90 s after it, in the 120 s bucket.
    assert _value("polku_stager_event_to_transition_seconds_count", {}) == before[4] + 6
    assert _value("polku_stager_event_to_transition_seconds_sum", {}) == pytest.approx(
        before[5] + 6 * 90.0)
    assert _value("polku_stager_event_to_transition_seconds_bucket", {"le": "60.0"}) == before[6]
    assert (_value("polku_stager_event_to_transition_seconds_bucket", {"le": "120.0"})
            == before[7] + 6)
