"""Request and response bodies of inventory-api."""

from __future__ import annotations

from pydantic import BaseModel, Field

SKU_PATTERN = r"^[A-Z0-9][A-Z0-9-]{1,63}$"


class ProductOut(BaseModel):
    sku: str
    name: str
    price_cents: int
    available: int


class ProductList(BaseModel):
    items: list[ProductOut]


class ReservationLine(BaseModel):
    sku: str = Field(pattern=SKU_PATTERN)
    quantity: int = Field(gt=0, le=100_000)


class ReservationIn(BaseModel):
    reference: str = Field(min_length=1, max_length=100)
    items: list[ReservationLine] = Field(min_length=1, max_length=100)


class ReservationOut(BaseModel):
    id: str
    reference: str
    status: str
    items: list[ReservationLine]
