"""Privacy: the installation's id-hashing salt, the suppression list and erasure receipts.

The salt is generated here, once per database, so every process of an installation hashes ids
alike and no two installations do (docs/privacy.md). Webhook deliveries gain the status
`cancelled` (a plain string column: no schema change).

Revision ID: 0006
Revises: 0005
"""

import secrets

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    salt = op.create_table(
        "privacy_salt",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("salt", sa.LargeBinary, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False, server_default=sa.func.now()),
    )
    op.bulk_insert(salt, [{"id": 1, "salt": secrets.token_bytes(32)}])
    op.create_table(
        "suppressions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("suppressed_at", Timestamp, nullable=False),
        sa.Column("receipt_id", sa.String(40), nullable=True),
    )
    op.create_table(
        "erasure_receipts",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("erased_at", Timestamp, nullable=False),
        sa.Column("id_hashes", Json, nullable=False),
        sa.Column("removed", Json, nullable=False),
        sa.Column("kafka_expires_at", Timestamp, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("erasure_receipts")
    op.drop_table("suppressions")
    op.drop_table("privacy_salt")
