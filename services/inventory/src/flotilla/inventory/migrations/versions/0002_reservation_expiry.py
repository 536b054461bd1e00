"""Held reservations expire.

Revision ID: 0002
Revises: 0001

Reservations held before this revision had no expiry and may have leaked; they get the
default TTL from now on, so they are swept ten minutes after the upgrade unless settled.
"""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

#: the expiry given to reservations already held when the schema is upgraded
UPGRADE_GRACE = timedelta(minutes=10)


def upgrade() -> None:
    op.add_column("reservations", sa.Column("expires_at", sa.DateTime(timezone=True)))
    op.create_index("reservations_due", "reservations", ["status", "expires_at"])
    reservations = sa.table(
        "reservations", sa.column("status", sa.String), sa.column("expires_at", sa.DateTime)
    )
    op.execute(
        reservations.update()
        .where(reservations.c.status == "held")
        .values(expires_at=datetime.now(UTC) + UPGRADE_GRACE)
    )


def downgrade() -> None:
    op.drop_index("reservations_due", "reservations")
    op.drop_column("reservations", "expires_at")
