"""Actions worker configuration (`POLKU_ACTIONS_*`; the port is ServiceSettings' `actions_port`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.bearer import ApiToken

ADMIN_TOKEN_SETTING = "POLKU_ACTIONS_ADMIN_TOKEN"

# Immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: eight attempts over about 27 hours.
DEFAULT_RETRY_SCHEDULE_S = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


class ActionsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POLKU_ACTIONS_")

    group_id: str = "polku-actions"
    max_batch: int = 500
    poll_timeout_ms: int = 200
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000

    # Delay before each attempt, the first included; comma-separated seconds in the environment.
    retry_schedule_s: Annotated[tuple[float, ...], NoDecode] = DEFAULT_RETRY_SCHEDULE_S
    # Each delay is stretched or shrunk by up to this fraction, so retries don't arrive in waves.
    retry_jitter: float = 0.1
    # A receiver's Retry-After is honoured up to this long.
    retry_after_max_s: float = 86_400.0

    attempt_timeout_s: float = 15.0
    endpoint_concurrency: int = 16
    max_in_flight: int = 512
    # A claimed delivery is another worker's to take once its lease runs out (a crashed worker);
    # more than twice the attempt timeout.
    lease_s: float = 60.0
    dispatch_poll_s: float = 0.25
    shutdown_grace_s: float = 15.0

    breaker_failures: int = 5
    breaker_open_s: float = 30.0
    breaker_max_open_s: float = 600.0

    # CIDRs webhooks may reach even though they are private, loopback, etc. Comma-separated.
    egress_allow: Annotated[tuple[str, ...], NoDecode] = ()

    response_excerpt_chars: int = 1000
    # Delivered and dead-lettered deliveries are deleted this long after they were created.
    retention_days: float = 30.0
    gauge_interval_s: float = 5.0
    # When set, the /v1 delivery API (reads included: payloads carry personal data, endpoint
    # URLs and headers may carry the receivers' credentials) requires `Authorization: Bearer
    # <token>`; unset, it is open to local clients only, and actions refuses to start on a
    # non-loopback POLKU_HOST (see shared/bearer.py).
    admin_token: str | None = None

    @property
    def delivery_api_token(self) -> ApiToken:
        return ApiToken(ADMIN_TOKEN_SETTING, self.admin_token)

    @field_validator("retry_schedule_s", "egress_allow", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ActionsSettings:
        if not self.retry_schedule_s:
            raise ValueError("retry_schedule_s needs at least one delay (the first attempt)")
        if any(delay < 0 for delay in self.retry_schedule_s):
            raise ValueError("retry_schedule_s delays cannot be negative")
        if not 0 <= self.retry_jitter < 1:
            raise ValueError("retry_jitter must be in [0, 1)")
        if self.lease_s <= 2 * self.attempt_timeout_s:
            # A claimed delivery may wait for one round of attempts before its own.
            raise ValueError("lease_s must be longer than twice attempt_timeout_s, or a slow "
                             "attempt could be taken over by another worker while running")
        if self.endpoint_concurrency < 1 or self.max_in_flight < 1:
            raise ValueError("endpoint_concurrency and max_in_flight must be at least 1")
        return self
