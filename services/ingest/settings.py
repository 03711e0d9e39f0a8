"""Ingest configuration (`POLKU_INGEST_*`); the listening port stays `POLKU_INGEST_PORT`."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.bearer import ApiToken
from shared.wire import MAX_EVENT_TIME_AHEAD

READ_TOKEN_SETTING = "POLKU_INGEST_READ_TOKEN"
ADMIN_TOKEN_SETTING = "POLKU_INGEST_ADMIN_TOKEN"


class IngestSettings(BaseSettings):
    """Limits and timeouts of the tracking API. Defaults follow Segment's documented limits."""

    # `port` is deliberately not a field: POLKU_INGEST_PORT belongs to ServiceSettings.
    model_config = SettingsConfigDict(env_prefix="POLKU_INGEST_", extra="ignore")

    max_event_bytes: int = 32 * 1024
    max_batch_bytes: int = 500 * 1024
    max_batch_events: int = 2500
    # An event time (after the sentAt clock correction) further than this past receivedAt is
    # replaced by receivedAt and flagged in the message (`timestampAdjusted`, docs/ingest.md).
    # At most a day: the stager's reader dead-letters event times further ahead than that.
    max_future_skew_s: Annotated[
        float, Field(ge=0, le=MAX_EVENT_TIME_AHEAD.total_seconds())] = 3600.0
    # How long a request may wait for Kafka to acknowledge its events before it answers 503.
    produce_timeout_s: float = 5.0
    # Retry-After sent with a 503 (broker or database unreachable).
    retry_after_s: int = 5
    # Write-key lookups are cached this long, so a revoke takes effect within this time.
    key_cache_ttl_s: float = 5.0
    # Database lookups per second (per process) of write keys not known to be valid; beyond it
    # such keys are answered 429. Re-checking a known key is not counted (see sources.py).
    key_lookups_per_s: float = 50.0
    # Allocations between young-generation collections (CPython's default: 700); shared/runtime.py
    gc_young_threshold: int = 20_000
    # A key lookup in PostgreSQL that takes longer than this answers 503 instead of hanging.
    key_lookup_timeout_s: float = 2.0
    # Bearer token the read API (/v1/contacts, /v1/journeys) demands; unset leaves it open to
    # local clients, and ingest refuses to start unset on a non-loopback POLKU_HOST: contact
    # state carries identify traits (see shared/bearer.py).
    read_token: str | None = None
    # Bearer token of the privacy API (erase a person, receipts, unsuppress: docs/privacy.md);
    # unset and off loopback refused exactly like the read token.
    admin_token: str | None = None
    # How often ingest reloads its copy of the suppression list (erased ids): events of an id
    # erased since the last reload still reach Kafka, where the stager drops them.
    suppression_refresh_s: float = Field(default=5.0, gt=0)

    @property
    def read_api_token(self) -> ApiToken:
        return ApiToken(READ_TOKEN_SETTING, self.read_token)

    @property
    def admin_api_token(self) -> ApiToken:
        return ApiToken(ADMIN_TOKEN_SETTING, self.admin_token)
