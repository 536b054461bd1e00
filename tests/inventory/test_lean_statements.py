"""The statements an order costs inventory, counted on both databases: a one-line reserve is
three, its commit or release two (BEGIN/COMMIT are the driver's, not counted); the same
stock arithmetic as ever."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from flotilla.core import make_engine, session_factory
from flotilla.inventory import _stock, migrate
from flotilla.inventory.models import Product

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    migrate(database_url)
    engine = make_engine(database_url, trace=False)
    yield engine
    engine.dispose()


def counted(engine: sa.Engine) -> list[str]:
    statements: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def seen(_c: object, _k: object, statement: str, *_: object) -> None:
        statements.append(statement.split()[0].upper())

    return statements


def shelf(engine: sa.Engine, sku: str) -> tuple[int, int]:
    with engine.connect() as connection:
        row = connection.execute(
            sa.select(Product.available, Product.reserved).where(Product.sku == sku)
        ).one()
        return int(row[0]), int(row[1])


@pytest.mark.parametrize("action", ["commit", "release"])
def test_a_one_line_reserve_is_three_statements_and_its_settlement_two(
    engine: sa.Engine, action: str
) -> None:
    sessions = session_factory(engine)
    before = shelf(engine, "FLT-VEST")
    statements = counted(engine)
    with sessions() as session:
        view = _stock.reserve(
            session=session, reference=f"order-{action}", lines=[("FLT-VEST", 2)], ttl_s=60
        )
        session.commit()
    assert statements == ["UPDATE", "INSERT", "INSERT"]
    assert view.amount_cents == 2 * 7_900 and view.items == (("FLT-VEST", 2),)
    statements.clear()
    with sessions() as session:
        settled = _stock.settle(session=session, reservation_id=view.id, action=action)  # type: ignore[arg-type]
        session.commit()
    assert statements == ["UPDATE", "UPDATE"]
    assert settled.items == (("FLT-VEST", 2),) and settled.amount_cents == 2 * 7_900
    expected = (before[0] - 2, before[1]) if action == "commit" else before
    assert shelf(engine, "FLT-VEST") == expected
    statements.clear()
    with sessions() as session:  # the same settlement again: answered, nothing moves
        again = _stock.settle(session=session, reservation_id=view.id, action=action)  # type: ignore[arg-type]
        session.commit()
    assert again.status == settled.status and shelf(engine, "FLT-VEST") == expected


def test_a_two_line_settlement_moves_both_products_one_at_a_time_in_sku_order(
    engine: sa.Engine,
) -> None:
    sessions = session_factory(engine)
    with sessions() as session:
        view = _stock.reserve(
            session=session,
            reference="two-lines",
            lines=[("FLT-VEST", 1), ("FLT-COMPASS", 3)],
            ttl_s=60,
        )
        session.commit()
    statements = counted(engine)
    with sessions() as session:
        settled = _stock.settle(session=session, reservation_id=view.id, action="release")
        session.commit()
    assert settled.items == (("FLT-COMPASS", 3), ("FLT-VEST", 1))
    assert statements == ["UPDATE", "SELECT", "UPDATE", "UPDATE"]
