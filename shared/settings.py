"""Configuration for every Polku process: one pydantic-settings class per concern, `POLKU_` env."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.logs import LogFormat
from shared.wire import Topics


class TopicSettings(BaseSettings):
    """Which topics carry Polku's streams: Kafka's, or the embedded log's in `polku dev`, which
    reads only these names (and no broker settings)."""

    model_config = SettingsConfigDict(env_prefix="POLKU_KAFKA_")

    touchpoints_topic: str = Topics().touchpoints
    transitions_topic: str = Topics().transitions
    dead_letter_topic: str = Topics().dead_letters

    @property
    def topics(self) -> Topics:
        return Topics(self.touchpoints_topic, self.transitions_topic, self.dead_letter_topic)


class KafkaSettings(TopicSettings):
    """Where the broker is, how Polku's topics are created, and their names (TopicSettings)."""

    host: str = "127.0.0.1"
    port: int = 9092
    bootstrap: str | None = None
    partitions: int = 6
    # Topics Polku creates: copies of each partition, and how many must have a write before it
    # is acknowledged (acks=all). 1/1 suits the local single broker; in a real cluster use 3/2,
    # so one broker may fail without losing or refusing acknowledged events.
    replication_factor: int = 1
    min_insync_replicas: int = 1
    request_timeout_s: float = 10.0
    # How long topics Polku creates keep a record (retention.ms), and how often they start a new
    # segment (segment.ms): Kafka deletes whole closed segments, so a record may outlive the
    # retention by up to one segment. Together they bound how long an erased person's records
    # stay on the log, which each erasure receipt states (docs/privacy.md).
    retention_hours: float = Field(default=168.0, gt=0)
    segment_hours: float = Field(default=1.0, gt=0)

    @property
    def retention(self) -> timedelta:
        return timedelta(hours=self.retention_hours)

    @property
    def segment(self) -> timedelta:
        # Never longer than the retention: a segment is deleted only once it is closed.
        return timedelta(hours=min(self.segment_hours, self.retention_hours))

    @property
    def bootstrap_servers(self) -> str:
        return self.bootstrap or f"{self.host}:{self.port}"

    @property
    def topics(self) -> Topics:
        return Topics(self.touchpoints_topic, self.transitions_topic, self.dead_letter_topic)


class DatabaseSettings(BaseSettings):
    """PostgreSQL by default; any SQLAlchemy async URL in `POLKU_DB_URL` overrides it."""

    # populate_by_name: `DatabaseSettings(url_override=...)` as well as the variables below.
    model_config = SettingsConfigDict(env_prefix="POLKU_PG_", populate_by_name=True)

    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "polku"
    password: str = "polku"
    db: str = "polku"
    # Read with the rest of the settings, once (POLKU_PG_URL_OVERRIDE first, as before).
    url_override: str | None = Field(
        default=None, validation_alias=AliasChoices("POLKU_PG_URL_OVERRIDE", "POLKU_DB_URL"))
    pool_size: int = 10

    @property
    def url(self) -> str:
        # A plain property: a cached one would survive model_copy(update=...) with stale values.
        if self.url_override:  # an empty POLKU_DB_URL is no URL
            return self.url_override
        return (
            f"postgresql+asyncpg://{self.user}:{self.password}@{self.host}:{self.port}/{self.db}"
        )


class ServiceSettings(BaseSettings):
    """Where each service's HTTP listener binds (API for ingest, ops endpoints for the rest)."""

    model_config = SettingsConfigDict(env_prefix="POLKU_")

    host: str = "127.0.0.1"
    ingest_port: int = 8000
    stager_port: int = 8001
    actions_port: int = 8002
    journeys_dir: Path = Path("journeys")
    log_level: str = "info"
    # `json`: one JSON object per line, without personal data (shared/logs.py); `text` as always.
    log_format: LogFormat = "text"
