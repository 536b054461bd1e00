"""Request and response bodies of orders-api."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from flotilla.contracts import OrderStatus

SKU_PATTERN = r"^[A-Z0-9][A-Z0-9-]{1,63}$"


class OrderLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: str = Field(pattern=SKU_PATTERN, examples=["FLT-KAYAK"])
    quantity: int = Field(ge=1, le=1000)


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_email: EmailStr
    items: list[OrderLineIn] = Field(min_length=1, max_length=50)


class OrderOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    client_id: str
    status: OrderStatus
    customer_email: str
    items: list[OrderLineIn]
    reservation_id: str
    amount_cents: int
    payment_id: str | None = None
    failure_reason: str | None = None
    created_at: datetime
    updated_at: datetime


class OrderPage(BaseModel):
    items: list[OrderOut]
    next_cursor: str | None
