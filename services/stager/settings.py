"""Stager configuration (`POLKU_STAGER_*`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.stager.identity import DEFAULT_PLACEHOLDER_IDS, IdentityRules


class StagerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POLKU_STAGER_")

    group_id: str = "polku-stager"
    # Records per partition per database transaction: larger batches amortise the commit, but
    # every record of a poll (this times the partitions owned) is in memory at once, with its
    # contact's states: 1,000 keeps a stager of six partitions under 300 MB (docs/stager.md).
    max_batch: int = 1000
    # What the consumer fetches ahead per partition; more only buys records held in memory.
    max_partition_fetch_bytes: int = 1024 * 1024
    poll_timeout_ms: int = 200
    # The broker holds a fetch until it has this much or the wait runs out. A busy stager then
    # takes records in batches instead of a few at a time, so each transaction carries more
    # events; the price is at most the wait in added latency when traffic is light.
    fetch_min_bytes: int = 64 * 1024
    fetch_max_wait_ms: int = 50
    timer_interval_s: float = 1.0
    timer_batch: int = 1000
    stage_gauge_interval_s: float = 15.0
    # How soon the group notices a dead instance and hands its partitions to another.
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    # How long messageIds are remembered for dedupe; a redelivery older than this is new again.
    dedupe_retention_days: int = 7
    # How long the touchpoint journal keeps each touchpoint (at least as long as dedupe): a merge
    # recomputes a contact exactly when both histories are still whole in it (docs/identity.md).
    journal_retention_days: int = Field(default=90, ge=1)
    # Ids never linked to anyone (compared case-insensitively; all-zero ids always count):
    # a comma-separated list replaces the default one.
    placeholder_ids: Annotated[tuple[str, ...], NoDecode] = DEFAULT_PLACEHOLDER_IDS
    # Ids that may be merged into one contact, besides its own; a link beyond is refused.
    max_linked_ids: int = Field(default=100, ge=0)

    @field_validator("placeholder_ids", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return tuple(v.strip() for v in value.split(",")) if isinstance(value, str) else value

    @property
    def identity_rules(self) -> IdentityRules:
        return IdentityRules.of(self.placeholder_ids, self.max_linked_ids)

    @property
    def journal_retention(self) -> timedelta:
        """How long journal rows live: the longer of the journal's and dedupe's retention."""
        return timedelta(days=max(self.journal_retention_days, self.dedupe_retention_days))
