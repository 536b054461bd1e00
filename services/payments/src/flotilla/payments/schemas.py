"""Request and response bodies of the payment stand-in (the shape of a real provider's)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ChargeIn(BaseModel):
    """``POST /charges`` (with an ``Idempotency-Key`` header)."""

    # NOTE: strict, as a provider's API is: ``"amount_cents": false`` is not a zero charge
    model_config = ConfigDict(extra="forbid", strict=True)

    order_id: str = Field(min_length=1, max_length=100)
    amount_cents: int = Field(ge=0, le=100_000_000)
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")


class ChargeOut(BaseModel):
    """A charge as the provider records it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    order_id: str
    amount_cents: int
    currency: str
    status: Literal["succeeded", "refunded"]
    created_at: datetime
    refunded_at: datetime | None = None

    @field_validator("created_at", "refunded_at")
    @classmethod
    def _in_utc(cls, moment: datetime | None) -> datetime | None:
        """SQLite hands datetimes back naive; they were stored in UTC."""
        return moment.replace(tzinfo=UTC) if moment and not moment.tzinfo else moment


class ChargeList(BaseModel):
    """``GET /charges``: the charges of one order, or the newest ones."""

    items: list[ChargeOut]


class ChargeSummary(BaseModel):
    """``GET /charges/summary``: what a test (or a person) counts."""

    charges: int = Field(description="charges made, refunded ones included")
    orders: int = Field(description="orders with at least one charge")
    orders_charged_more_than_once: int = Field(description="orders with two charges or more")
    refunds: int
    replays: int = Field(description="requests answered with an earlier result of their key")


class Faults(BaseModel):
    """The faults the stand-in injects (``GET``/``PUT /faults``)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    latency_ms: int = Field(default=0, ge=0, le=60_000)
    failure_rate: float = Field(default=0.0, ge=0, le=1)
    lost_reply_rate: float = Field(default=0.0, ge=0, le=1)
    fail_next: int = Field(
        default=0, ge=0, le=1_000_000, description="refuse this many charges next (503), then heal"
    )
