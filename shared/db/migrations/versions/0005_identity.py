"""Identity: the touchpoint journal, links between a person's ids, and refused links.

`processed_messages` (the dedupe record of every applied touchpoint) becomes the touchpoint
journal: each row keeps the event time, whether the touchpoint named its contact as a userId,
and the message itself, so a merge can recompute a contact from its history (docs/identity.md).
Rows written before this revision have no message; a merge treats such a history as incomplete.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("processed_messages", sa.Column("at", Timestamp, nullable=True))
    op.add_column("processed_messages", sa.Column("identified", sa.Boolean, nullable=False,
                                                  server_default=sa.false()))
    op.add_column("processed_messages", sa.Column("message", sa.LargeBinary, nullable=True))
    op.create_table(
        "contact_links",
        sa.Column("alias", sa.String(200), primary_key=True),
        sa.Column("canonical", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("cause", sa.String(200), nullable=False),
        sa.Column("linked_at", Timestamp, nullable=False),
        sa.Column("merged_at", Timestamp, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_contact_links_canonical", "contact_links", ["canonical"])
    op.create_table(
        "identity_conflicts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("contact", sa.String(200), nullable=False),
        sa.Column("other", sa.String(200), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("cause", sa.String(200), nullable=False),
        sa.Column("at", Timestamp, nullable=False),
        sa.Column("recorded_at", Timestamp, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_identity_conflicts_contact", "identity_conflicts", ["contact"])
    op.create_index("ix_identity_conflicts_other", "identity_conflicts", ["other"])


def downgrade() -> None:
    op.drop_table("identity_conflicts")
    op.drop_table("contact_links")
    op.drop_column("processed_messages", "message")
    op.drop_column("processed_messages", "identified")
    op.drop_column("processed_messages", "at")
