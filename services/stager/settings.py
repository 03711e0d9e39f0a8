"""Stager configuration (`POLKU_STAGER_*`)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class StagerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POLKU_STAGER_")

    group_id: str = "polku-stager"
    # Records per partition per database transaction: larger batches amortise the commit.
    max_batch: int = 2000
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
