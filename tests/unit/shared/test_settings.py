"""Settings are read once, when the settings object is made: later changes to the environment
do not reach a running service through a property."""

from __future__ import annotations

import pytest

from shared.settings import DatabaseSettings, KafkaSettings, TopicSettings
from shared.wire import Topics

PG = "postgresql+asyncpg://polku:polku@127.0.0.1:5432/polku"


def test_polku_db_url_is_read_with_the_settings_not_when_the_url_is_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("POLKU_DB_URL", raising=False)
    before = DatabaseSettings()
    monkeypatch.setenv("POLKU_DB_URL", "sqlite+aiosqlite:///polku.db")
    assert before.url == PG
    assert DatabaseSettings().url == "sqlite+aiosqlite:///polku.db"
    # An explicit override still wins over the variable; an empty variable is no URL.
    assert DatabaseSettings(url_override="sqlite+aiosqlite:///other.db").url.endswith("other.db")
    monkeypatch.setenv("POLKU_DB_URL", "")
    assert DatabaseSettings().url == PG


def test_the_embedded_mode_reads_the_topic_names_without_any_broker_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POLKU_KAFKA_TRANSITIONS_TOPIC", "t.transitions")
    assert TopicSettings().topics == Topics("polku.touchpoints", "t.transitions",
                                            "polku.dead-letters")
    assert KafkaSettings().topics == TopicSettings().topics
    assert not hasattr(TopicSettings(), "bootstrap_servers")
