"""Actions settings from the environment (`POLKU_ACTIONS_*`)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.actions.settings import DEFAULT_RETRY_SCHEDULE_S, ActionsSettings


def test_lists_are_comma_separated_and_the_port_belongs_to_service_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POLKU_ACTIONS_RETRY_SCHEDULE_S", "0, 10,60")
    monkeypatch.setenv("POLKU_ACTIONS_EGRESS_ALLOW", "127.0.0.0/8,::1/128")
    monkeypatch.setenv("POLKU_ACTIONS_PORT", "9999")  # ServiceSettings.actions_port
    settings = ActionsSettings()
    assert settings.retry_schedule_s == (0, 10, 60)
    assert settings.egress_allow == ("127.0.0.0/8", "::1/128")


def test_defaults() -> None:
    settings = ActionsSettings()
    assert settings.retry_schedule_s == DEFAULT_RETRY_SCHEDULE_S
    assert settings.attempt_timeout_s == 15
    assert settings.egress_allow == ()


def test_a_lease_shorter_than_an_attempt_is_refused() -> None:
    with pytest.raises(ValidationError, match="lease_s"):
        ActionsSettings(lease_s=20, attempt_timeout_s=15)
