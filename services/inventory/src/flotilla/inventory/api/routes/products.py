"""``/products``: the catalogue and what is available."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from flotilla.core import ProblemError
from flotilla.core.fastapi import ServiceRouter

from ... import _products
from ...schemas import ProductList, ProductOut
from ..deps import ReadSession

#: What a sku looks like in a path (the catalogue's are FLT-KAYAK and the like).
SKU_PATTERN = r"^[A-Za-z0-9._-]+$"

router = ServiceRouter(prefix="/products", tags=["products"], behind_edge=True)


@router.get("")
def list_products(session: ReadSession) -> ProductList:
    """Every product with its price and the units that can still be reserved."""
    products = _products.list_products(session=session)
    return ProductList(items=[ProductOut.model_validate(p, from_attributes=True) for p in products])


@router.get("/{sku}", responses={404: {"description": "no such product"}})
def get_product(
    sku: Annotated[str, Path(max_length=64, pattern=SKU_PATTERN)], session: ReadSession
) -> ProductOut:
    """One product; 404 problem naming the sku when there is none."""
    product = _products.get_product(session=session, sku=sku)
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
