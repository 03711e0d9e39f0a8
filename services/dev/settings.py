"""Embedded-mode configuration (`POLKU_DEV_*`, and the demo's POLKU_DEMO_WEBHOOK_SECRET). The
services' own settings still apply: POLKU_INGEST_*, POLKU_STAGER_*, POLKU_ACTIONS_* and the
topic names of POLKU_KAFKA_*."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SINK_BASE = "http://127.0.0.1"


class DevSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POLKU_DEV_", populate_by_name=True)

    # Everything the embedded mode keeps: the SQLite file (state and log), its lock, the demo
    # write key and webhook secret.
    data_dir: Path = Path(".polku/dev")
    host: str = "127.0.0.1"
    port: int = 8000
    # The built-in webhook sink. The example journeys send to ${POLKU_DEV_SINK_URL}/hooks/...,
    # which `polku dev` sets to `sink_url` (see docs/embedded.md).
    sink_port: int = 8099
    # Partitions of each topic in the embedded log. One process applies them all; more only
    # matter when the state moves to the distributed mode (see docs/embedded.md).
    partitions: int = 1
    # Log records every consumer is past are deleted once older than this (checked every ten
    # minutes), as Kafka's retention does (docs/privacy.md); 0 keeps them all, which makes the
    # log a full replay source when moving to the distributed mode (docs/embedded.md).
    log_retention_days: float = 7.0
    # Demo traffic: new demo contacts per second, each walking its persona's script.
    demo_contacts_per_s: float = 1.0
    # The webhook secret the example journeys sign with (their webhooks name this variable);
    # unset, one is generated once and kept in the data directory (services/dev/app.py).
    demo_webhook_secret: SecretStr | None = Field(
        default=None, validation_alias="POLKU_DEMO_WEBHOOK_SECRET")

    @property
    def sink_url(self) -> str:
        """Where the sink listens: always loopback, whatever `host` the API binds, because it
        has no token and its GET /deliveries shows the webhook bodies it received."""
        return f"{SINK_BASE}:{self.sink_port}"

    @property
    def database_file(self) -> Path:
        return self.data_dir / "polku.db"

    @property
    def database_url(self) -> str:
        return f"sqlite+aiosqlite:///{self.database_file}"
