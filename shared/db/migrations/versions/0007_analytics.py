"""Analytics: what the funnel, flows and population figures need, written by the stager once.

`contact_states` gains the contact's journey entry time (its cohort), first-touch channel, the
stages it has reached (a bit per stage, in the journey's order) and how many of the journey's
stages it reached in order; `transitions` gains the seconds the contact spent in the stage it
left, the cohort and channel of its contact (null once that id is merged into another, so it is
counted once) and a pseudo-random sample bucket (0-63) for reading a fixed share of the visits.
Each comes with an index the analytics queries read without the wide rows.
See docs/analytics.md. Rows written before this revision are counted from their next write.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("contact_states", sa.Column("journey_entered_at", Timestamp, nullable=True))
    op.add_column("contact_states", sa.Column("first_channel", sa.String(100), nullable=True))
    op.add_column("contact_states", sa.Column("reached", sa.BigInteger, nullable=False,
                                              server_default="0"))
    op.add_column("contact_states", sa.Column("in_order", sa.SmallInteger, nullable=False,
                                              server_default="0"))
    op.create_index("ix_contact_states_cohort", "contact_states",
                    ["journey_id", "journey_entered_at"],
                    postgresql_include=["stage", "reached", "in_order", "first_channel"])
    op.create_index("ix_contact_states_stage", "contact_states",
                    ["journey_id", "stage", "contact"])
    op.add_column("transitions", sa.Column("from_seconds", sa.Float, nullable=True))
    op.add_column("transitions", sa.Column("contact_entered_at", Timestamp, nullable=True))
    op.add_column("transitions", sa.Column("first_channel", sa.String(100), nullable=True))
    op.add_column("transitions", sa.Column("sample", sa.SmallInteger, nullable=False,
                                           server_default="0"))
    # Rebuilt to include what the population over time reads (PostgreSQL; SQLite ignores it).
    op.drop_index("ix_transitions_journey_at", "transitions")
    op.create_index("ix_transitions_journey_at", "transitions", ["journey_id", "at"],
                    postgresql_include=["from_stage", "to_stage", "contact_entered_at"])
    op.create_index("ix_transitions_cohort", "transitions",
                    ["journey_id", "contact_entered_at"],
                    postgresql_include=["from_stage", "to_stage"])
    op.create_index("ix_transitions_sample", "transitions",
                    ["journey_id", "sample", "contact_entered_at"],
                    postgresql_include=["from_stage", "from_seconds", "first_channel"])


def downgrade() -> None:
    op.drop_index("ix_transitions_sample", "transitions")
    op.drop_index("ix_transitions_cohort", "transitions")
    op.drop_index("ix_transitions_journey_at", "transitions")
    op.create_index("ix_transitions_journey_at", "transitions", ["journey_id", "at"])
    op.drop_column("transitions", "sample")
    op.drop_column("transitions", "first_channel")
    op.drop_column("transitions", "contact_entered_at")
    op.drop_column("transitions", "from_seconds")
    op.drop_index("ix_contact_states_stage", "contact_states")
    op.drop_index("ix_contact_states_cohort", "contact_states")
    op.drop_column("contact_states", "in_order")
    op.drop_column("contact_states", "reached")
    op.drop_column("contact_states", "first_channel")
    op.drop_column("contact_states", "journey_entered_at")
