"""Request and response bodies of inventory-api."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ProductOut(BaseModel):
    """A product and how many units can still be reserved."""

    sku: str = Field(examples=["FLT-KAYAK"])
    name: str
    price_cents: int
    available: int


class ProductList(BaseModel):
    """``GET /products``: the whole catalogue, in sku order."""

    items: list[ProductOut]


class ReservationLine(BaseModel):
    """One line of a reservation.

    NOTE: the sku is only bounded, not pattern-checked: any sku the catalogue lacks is
    answered as an unknown product (422 naming it), as the contract says.
    """

    model_config = ConfigDict(extra="forbid")

    sku: str = Field(min_length=1, max_length=64, examples=["FLT-KAYAK"])
    quantity: int = Field(gt=0, le=100_000)


class ReservationIn(BaseModel):
    """``POST /reservations``: hold these items for ``reference`` (an order id)."""

    model_config = ConfigDict(extra="forbid")

    reference: str = Field(min_length=1, max_length=100)
    items: list[ReservationLine] = Field(min_length=1, max_length=100)


class ReservationOut(BaseModel):
    """A reservation; lines with the same sku were summed into one.

    ``expires_at``: while held, when its units go back on the shelf unless committed;
    ``amount_cents``: what the items cost.
    """

    id: str
    reference: str
    status: Literal["held", "committed", "released", "expired"]
    items: list[ReservationLine]
    amount_cents: int
    expires_at: datetime | None = None
