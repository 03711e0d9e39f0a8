"""Stager state: consumed offsets, dedupe records, contact states, transitions, outbox.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "consumer_offsets",
        sa.Column("group_id", sa.String(200), primary_key=True),
        sa.Column("topic", sa.String(249), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "processed_messages",
        sa.Column("contact", sa.String(200), primary_key=True),
        sa.Column("message_id", sa.String(200), primary_key=True),
        sa.Column("processed_at", Timestamp, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_processed_messages_processed_at", "processed_messages", ["processed_at"])
    op.create_table(
        "contact_states",
        sa.Column("contact", sa.String(200), primary_key=True),
        sa.Column("journey_id", sa.String(100), primary_key=True),
        sa.Column("journey_version", sa.Integer, nullable=False),
        sa.Column("stage", sa.String(100), nullable=True),
        sa.Column("stage_entered_at", Timestamp, nullable=True),
        sa.Column("state", Json, nullable=False),
        sa.Column("timer_due_at", Timestamp, nullable=True),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_contact_states_timer", "contact_states", ["partition", "timer_due_at"])
    op.create_table(
        "transitions",
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
    )
    op.create_index("ix_transitions_contact", "transitions", ["contact", "journey_id", "seq"])
    op.create_index("ix_transitions_journey_at", "transitions", ["journey_id", "at"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("topic", sa.String(249), nullable=False),
        sa.Column("key", sa.LargeBinary, nullable=True),
        sa.Column("payload", sa.LargeBinary, nullable=True),
        sa.Column("headers", Json, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_outbox_partition", "outbox", ["partition", "id"])


def downgrade() -> None:
    for table in ("outbox", "transitions", "contact_states", "processed_messages",
                  "consumer_offsets"):
        op.drop_table(table)
