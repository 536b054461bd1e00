"""Data access for the product catalogue (keyword-only functions; the caller commits), and the
demo catalogue ``migrate`` seeds."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from .models import Product

#: The demo catalogue ``migrate`` seeds: sku, name, price in cents.
DEMO_CATALOGUE = (
    ("FLT-KAYAK", "Sea kayak", 89_900),
    ("FLT-PADDLE", "Carbon paddle", 14_900),
    ("FLT-VEST", "Buoyancy vest", 7_900),
    ("FLT-DRYBAG", "Dry bag, 20 l", 2_900),
    ("FLT-COMPASS", "Deck compass", 5_900),
    ("FLT-LANTERN", "Anchor lantern", 3_900),
)
#: Units of each demo product on the shelf when it is first seeded.
DEMO_STOCK = 50_000


def seed_catalogue(*, session: Session) -> int:
    """Insert the demo products that are missing; never touches existing stock.

    ``INSERT … ON CONFLICT DO NOTHING`` keeps two migrations running at once from failing.

    Returns:
        How many products were added.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    added = 0
    for sku, name, price in DEMO_CATALOGUE:
        statement = (
            insert(Product)
            .values(sku=sku, name=name, price_cents=price, available=DEMO_STOCK, reserved=0)
            .on_conflict_do_nothing(index_elements=["sku"])
            .returning(Product.sku)  # NOTE: rowcount is -1 here with psycopg; RETURNING is not
        )
        added += len(session.execute(statement).all())
    return added


def list_products(*, session: Session) -> list[Product]:
    """Every product, in sku order."""
    return list(session.scalars(sa.select(Product).order_by(Product.sku)))


def get_product(*, session: Session, sku: str) -> Product | None:
    """The product with ``sku``, or ``None``."""
    return session.get(Product, sku)
