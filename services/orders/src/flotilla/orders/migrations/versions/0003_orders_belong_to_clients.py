"""Orders belong to the client that placed them; idempotency keys are per client.

Revision ID: 0003
Revises: 0002

Orders and keys stored before this revision belong to no client (``""``): only an operator
(scope ``orders:admin``) sees them.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as orders:
        orders.add_column(sa.Column("client_id", sa.String(200), nullable=False, server_default=""))
    op.create_index("orders_client_created", "orders", ["client_id", "created_at"])
    # NOTE: a new primary key (client, key) is a new table on every database; SQLite cannot
    # change a primary key in place.
    op.create_table(
        "idempotency_keys_by_client",
        sa.Column("client_id", sa.String(200), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("body_hash", sa.String(64), nullable=False),
        sa.Column("order_id", sa.String(36), sa.ForeignKey("orders.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.execute(
        "INSERT INTO idempotency_keys_by_client (client_id, key, body_hash, order_id, created_at)"
        " SELECT '', key, body_hash, order_id, created_at FROM idempotency_keys"
    )
    op.drop_index("idempotency_keys_created_at", "idempotency_keys")
    op.drop_table("idempotency_keys")
    op.rename_table("idempotency_keys_by_client", "idempotency_keys")
    op.create_index("idempotency_keys_created_at", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_index("idempotency_keys_created_at", "idempotency_keys")
    op.create_table(
        "idempotency_keys_global",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("body_hash", sa.String(64), nullable=False),
        sa.Column("order_id", sa.String(36), sa.ForeignKey("orders.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    # NOTE: where two clients used one key, the older entry is kept
    op.execute(
        "INSERT INTO idempotency_keys_global (key, body_hash, order_id, created_at)"
        " SELECT key, MIN(body_hash), MIN(order_id), MIN(created_at) FROM idempotency_keys"
        " GROUP BY key"
    )
    op.drop_table("idempotency_keys")
    op.rename_table("idempotency_keys_global", "idempotency_keys")
    op.create_index("idempotency_keys_created_at", "idempotency_keys", ["created_at"])
    op.drop_index("orders_client_created", "orders")
    with op.batch_alter_table("orders") as orders:
        orders.drop_column("client_id")
