"""Table definitions (SQLAlchemy Core). Migrations in `migrations/` create exactly these."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData()

# JSONB on PostgreSQL, JSON text elsewhere (the embedded SQLite mode).
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


class UtcTimestamp(sa.TypeDecorator[datetime]):
    """`timestamptz` on PostgreSQL; on SQLite, which has no time zones, UTC text.

    Every value goes in as UTC and comes out timezone-aware, in both databases, so code that
    compares a stored time with `clock.now()` works the same way in both modes. (SQLAlchemy's
    SQLite DATETIME would drop the offset on the way in and return naive datetimes.)
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None or dialect.name != "sqlite":
            return value
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a timestamp column; use UTC-aware ones")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


Timestamp = UtcTimestamp()

sources = sa.Table(
    "sources",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    # Only a SHA-256 of the write key is stored; the key itself is shown once at creation.
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("key_prefix", sa.String(12), nullable=False),
    sa.Column("rate_limit_per_s", sa.Float, nullable=True),
    sa.Column("created_at", Timestamp, nullable=False, server_default=sa.func.now()),
    sa.Column("revoked_at", Timestamp, nullable=True),
)

consumer_offsets = sa.Table(
    "consumer_offsets",
    metadata,
    sa.Column("group_id", sa.String(200), primary_key=True),
    sa.Column("topic", sa.String(249), primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True),
    sa.Column("next_offset", sa.BigInteger, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False, server_default=sa.func.now()),
)

# The touchpoint journal (migration 0005): one row per touchpoint applied to a contact. Its key
# is the dedupe record (a redelivered messageId is not applied twice); the message itself lets a
# merge recompute the contact from its history (docs/identity.md). Purged after the stager's
# journal retention.
processed_messages = sa.Table(
    "processed_messages",
    metadata,
    sa.Column("contact", sa.String(200), primary_key=True),
    sa.Column("message_id", sa.String(200), primary_key=True),
    sa.Column("processed_at", Timestamp, nullable=False, server_default=sa.func.now()),
    sa.Column("at", Timestamp, nullable=True),  # event time; null before migration 0005
    # The touchpoint named its contact as a userId: the contact is a known person.
    sa.Column("identified", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("message", sa.LargeBinary, nullable=True),  # the touchpoint message, as read
    sa.Index("ix_processed_messages_processed_at", "processed_at"),
)

contact_states = sa.Table(
    "contact_states",
    metadata,
    sa.Column("contact", sa.String(200), primary_key=True),
    sa.Column("journey_id", sa.String(100), primary_key=True),
    sa.Column("journey_version", sa.Integer, nullable=False),
    sa.Column("stage", sa.String(100), nullable=True),
    sa.Column("stage_entered_at", Timestamp, nullable=True),
    sa.Column("state", Json, nullable=False),
    # Earliest moment a timer rule could fire with no new event; indexed for the timer sweep.
    sa.Column("timer_due_at", Timestamp, nullable=True),
    sa.Column("partition", sa.Integer, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False, server_default=sa.func.now()),
    # --- analytics (migration 0007, docs/analytics.md): derived from `state` when it is written
    # When the contact entered the journey (its cohort), and its first-touch channel.
    sa.Column("journey_entered_at", Timestamp, nullable=True),
    sa.Column("first_channel", sa.String(100), nullable=True),
    # Bit i: the contact has reached the journey's i-th stage (any order; the first 63 stages).
    sa.Column("reached", sa.BigInteger, nullable=False, server_default="0"),
    # How many of the journey's stages, from the first, the contact first reached in order.
    sa.Column("in_order", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Index("ix_contact_states_timer", "partition", "timer_due_at"),
    sa.Index("ix_contact_states_cohort", "journey_id", "journey_entered_at",
             postgresql_include=["stage", "reached", "in_order", "first_channel"]),
    sa.Index("ix_contact_states_stage", "journey_id", "stage", "contact"),
)

transitions = sa.Table(
    "transitions",
    metadata,
    sa.Column("transition_id", sa.String(36), primary_key=True),
    sa.Column("journey_id", sa.String(100), nullable=False),
    sa.Column("journey_version", sa.Integer, nullable=False),
    sa.Column("contact", sa.String(200), nullable=False),
    sa.Column("from_stage", sa.String(100), nullable=True),
    sa.Column("to_stage", sa.String(100), nullable=False),
    sa.Column("at", Timestamp, nullable=False),
    sa.Column("cause", sa.String(250), nullable=False),
    sa.Column("rule_id", sa.String(100), nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("recorded_at", Timestamp, nullable=False, server_default=sa.func.now()),
    # --- analytics (migration 0007, docs/analytics.md)
    # Seconds the contact spent in `from_stage`: the stage visit this move ended.
    sa.Column("from_seconds", sa.Float, nullable=True),
    # The contact's cohort and first-touch channel, as on its contact_states row; null once
    # the contact is an id merged into another (its moves stay history, counted no more).
    sa.Column("contact_entered_at", Timestamp, nullable=True),
    sa.Column("first_channel", sa.String(100), nullable=True),
    # 0-63 from the transition id (`sample_of`): the funnel's time in stage reads a fixed share
    # of the visits when a period has too many to read all of them within a second.
    sa.Column("sample", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Index("ix_transitions_contact", "contact", "journey_id", "seq"),
    # The moves of a journey in time: the population over time reads them from the index alone.
    sa.Index("ix_transitions_journey_at", "journey_id", "at",
             postgresql_include=["from_stage", "to_stage", "contact_entered_at"]),
    sa.Index("ix_transitions_cohort", "journey_id", "contact_entered_at",
             postgresql_include=["from_stage", "to_stage"]),
    sa.Index("ix_transitions_sample", "journey_id", "sample", "contact_entered_at",
             postgresql_include=["from_stage", "from_seconds", "first_channel"]),
)

# Transitions waiting to be published to Kafka, written in the same transaction as the state.
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("partition", sa.Integer, nullable=False),
    sa.Column("topic", sa.String(249), nullable=False),
    sa.Column("key", sa.LargeBinary, nullable=True),
    sa.Column("payload", sa.LargeBinary, nullable=True),
    sa.Column("headers", Json, nullable=True),
    sa.Column("created_at", Timestamp, nullable=False, server_default=sa.func.now()),
    sa.Index("ix_outbox_partition", "partition", "id"),
)

# --- identity (migration 0005) ---

# One row per id merged into a person: `alias` (an anonymousId, or an alias call's previousId)
# now belongs to `canonical` (a userId). Touchpoints sent with the alias apply to the canonical
# contact. Written by the stager when it merges (services/stager/identity.py).
contact_links = sa.Table(
    "contact_links",
    metadata,
    sa.Column("alias", sa.String(200), primary_key=True),
    sa.Column("canonical", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # identify | alias: the call that linked
    sa.Column("cause", sa.String(200), nullable=False),  # that call's messageId
    sa.Column("linked_at", Timestamp, nullable=False),  # that call's event time
    sa.Column("merged_at", Timestamp, nullable=False, server_default=sa.func.now()),
    sa.Index("ix_contact_links_canonical", "canonical"),
)

# Links the stager refused (docs/identity.md, "Safety rules"): `contact` asked to take `other`.
identity_conflicts = sa.Table(
    "identity_conflicts",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("contact", sa.String(200), nullable=False),
    sa.Column("other", sa.String(200), nullable=False),
    # both_identified | already_linked | too_many_ids
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("cause", sa.String(200), nullable=False),
    sa.Column("at", Timestamp, nullable=False),
    sa.Column("recorded_at", Timestamp, nullable=False, server_default=sa.func.now()),
    sa.Index("ix_identity_conflicts_contact", "contact"),
    sa.Index("ix_identity_conflicts_other", "other"),
)

# --- privacy (migration 0006): erasure, suppression (docs/privacy.md) ---

# One row, created by the migration: the key of the HMAC-SHA256 every stored id hash is made
# with. Random per installation, so a hash found in one Polku says nothing in another, and a
# list of guessed ids cannot be hashed without reading this table.
privacy_salt = sa.Table(
    "privacy_salt",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),  # always 1
    sa.Column("salt", sa.LargeBinary, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False, server_default=sa.func.now()),
)

# Ids whose events are dropped (ingest, stager, actions): hashes only, never the id.
suppressions = sa.Table(
    "suppressions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("suppressed_at", Timestamp, nullable=False),
    sa.Column("receipt_id", sa.String(40), nullable=True),  # the erasure that added it
)

# What each erasure removed, as proof without personal data: hashed ids and counts.
erasure_receipts = sa.Table(
    "erasure_receipts",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("erased_at", Timestamp, nullable=False),
    sa.Column("id_hashes", Json, nullable=False),  # every id of the person, hashed
    sa.Column("removed", Json, nullable=False),  # rows removed (or blanked) per store
    # When the last copy Kafka may hold expires (null in the embedded mode: no broker).
    sa.Column("kafka_expires_at", Timestamp, nullable=True),
)

# --- actions worker (migration 0003) ---

# One row per webhook URL a journey names; the id (ep_ + hash of the URL) labels metrics.
webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("url", sa.Text, nullable=False, unique=True),
    # Set when the endpoint answered 410 Gone; cleared by POST /v1/endpoints/{id}/enable.
    sa.Column("disabled_at", Timestamp, nullable=True),
    sa.Column("disabled_reason", sa.Text, nullable=True),
    sa.Column("created_at", Timestamp, nullable=False, server_default=sa.func.now()),
)

# One row per transition and matching endpoint; the id is the Standard Webhooks `webhook-id`,
# derived from both, so a redelivered transition inserts nothing new. The retry schedule lives
# here (`next_attempt_at`), so a restart loses no retry.
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("transition_id", sa.String(36), nullable=False),
    sa.Column("endpoint_id", sa.String(40), sa.ForeignKey("webhook_endpoints.id"),
              nullable=False),
    sa.Column("journey_id", sa.String(100), nullable=False),
    sa.Column("contact", sa.String(200), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    # Where the signing secret is read at each attempt; the secret itself is never stored.
    sa.Column("secret_env", sa.String(200), nullable=True),
    sa.Column("secret_file", sa.Text, nullable=True),
    sa.Column("headers", Json, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending|delivered|failed|cancelled
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", Timestamp, nullable=False),
    # A worker's claim: another worker may take the delivery once the lease has run out.
    sa.Column("lease_until", Timestamp, nullable=True),
    sa.Column("claim_token", sa.String(36), nullable=True),
    sa.Column("last_status", sa.Integer, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("last_attempt_at", Timestamp, nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("delivered_at", Timestamp, nullable=True),
    sa.Column("failed_at", Timestamp, nullable=True),
    sa.Index("ix_webhook_deliveries_due", "endpoint_id", "next_attempt_at",
             postgresql_where=sa.text("status = 'pending'"),
             sqlite_where=sa.text("status = 'pending'")),
    sa.Index("ix_webhook_deliveries_status", "status", "created_at"),
    sa.Index("ix_webhook_deliveries_transition", "transition_id"),
)

# --- embedded mode only (migration 0004, SQLite) ---

# The embedded log: Kafka's topics, partitions and offsets as rows of the SQLite file, so an
# event is durable once its append commits. Consumers keep their offsets in consumer_offsets.
log_records = sa.Table(
    "log_records",
    metadata,
    sa.Column("topic", sa.String(249), primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True),
    sa.Column("offset", sa.BigInteger, primary_key=True),
    sa.Column("key", sa.LargeBinary, nullable=True),
    sa.Column("value", sa.LargeBinary, nullable=True),
    sa.Column("headers", Json, nullable=True),
    sa.Column("appended_at", Timestamp, nullable=False, server_default=sa.func.now()),
)
