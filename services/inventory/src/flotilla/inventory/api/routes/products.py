"""``/products``: the catalogue and what is available."""

from __future__ import annotations

from flotilla.core import ProblemError
from flotilla.core.fastapi import ServiceRouter

from ... import _stock
from ...schemas import ProductList, ProductOut
from ..deps import ReadSession

router = ServiceRouter(prefix="/products", tags=["products"])


@router.get("")
def list_products(session: ReadSession) -> ProductList:
    """Every product with its price and the units that can still be reserved."""
    products = _stock.list_products(session=session)
    return ProductList(items=[ProductOut.model_validate(p, from_attributes=True) for p in products])


@router.get("/{sku}")
def get_product(sku: str, session: ReadSession) -> ProductOut:
    """One product; 404 problem naming the sku when there is none."""
    product = _stock.get_product(session=session, sku=sku)
    if product is None:
        raise ProblemError(
            404,
            "Unknown product",
            f"no product has sku {sku}",
            slug="unknown-sku",
            field="sku",
            sku=sku,
        )
    return ProductOut.model_validate(product, from_attributes=True)
