"""Claims and payments on orders, relay claims on the outbox, key ages for pruning.

Revision ID: 0002
Revises: 0001
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as orders:
        orders.add_column(sa.Column("amount_cents", sa.Integer, nullable=False, server_default="0"))
        orders.add_column(sa.Column("claimed_by", sa.String(64)))
        orders.add_column(sa.Column("claim_expires_at", sa.DateTime(timezone=True)))
        orders.add_column(sa.Column("payment_id", sa.String(64)))
        orders.add_column(sa.Column("fulfil_message", sa.String(64)))
        orders.add_column(sa.Column("trace_context", sa.JSON))
    with op.batch_alter_table("outbox") as outbox:
        outbox.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True)))
    with op.batch_alter_table("idempotency_keys") as keys:
        # NOTE: keys stored before this revision count from the upgrade (kept a full TTL)
        keys.add_column(
            sa.Column(
                "created_at",
                sa.DateTime(timezone=True),
                nullable=False,
                server_default=sa.text(f"'{datetime.now(UTC).isoformat(sep=' ')}'"),
            )
        )
    op.create_index("idempotency_keys_created_at", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_index("idempotency_keys_created_at", "idempotency_keys")
    with op.batch_alter_table("idempotency_keys") as keys:
        keys.drop_column("created_at")
    with op.batch_alter_table("outbox") as outbox:
        outbox.drop_column("claimed_until")
    with op.batch_alter_table("orders") as orders:
        for column in (
            "trace_context",
            "fulfil_message",
            "payment_id",
            "claim_expires_at",
            "claimed_by",
        ):
            orders.drop_column(column)
        orders.drop_column("amount_cents")
