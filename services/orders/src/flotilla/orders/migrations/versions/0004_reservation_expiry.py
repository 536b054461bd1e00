"""Orders remember until when their stock is held, so a worker renews the hold only when it
could lapse before the charge and the commit.

Revision ID: 0004
Revises: 0003

Orders stored before this revision have no expiry (NULL): their worker renews, as before.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as orders:
        orders.add_column(
            sa.Column("reservation_expires_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("orders") as orders:
        orders.drop_column("reservation_expires_at")
