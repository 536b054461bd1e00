"""An order's statuses and the one table of the transitions between them (``status`` on the
wire and in the database). Needs nothing but the standard library: the CLI's load command
reads it without the messaging stack."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

__all__ = ["TRANSITIONS", "OrderStatus"]


class OrderStatus(StrEnum):
    """Where an order is (its ``status`` on the wire and in the database)."""

    ACCEPTED = "accepted"  # stored, stock reserved, its FulfilOrder on the way
    FULFILLING = "fulfilling"  # a worker's attempt holds it (a claim with an expiry)
    FULFILLED = "fulfilled"  # charged, stock committed, the confirmation on the way
    CANCELLED = "cancelled"  # by its client, before a worker took it
    FAILED = "failed"  # refused by the payment provider, or given up on

    @property
    def final(self) -> bool:
        """An order never leaves a final status."""
        return not TRANSITIONS[self]

    def sources(self) -> tuple[OrderStatus, ...]:
        """The statuses an order may come to this one from."""
        return tuple(status for status, nexts in TRANSITIONS.items() if self in nexts)


#: The one table of what may follow what. ``fulfilling`` → ``fulfilling`` is another attempt
#: taking over a claim that expired (its worker died) or the same message's retry.
TRANSITIONS: Mapping[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.ACCEPTED: frozenset(
        {OrderStatus.FULFILLING, OrderStatus.FULFILLED, OrderStatus.CANCELLED, OrderStatus.FAILED}
    ),
    OrderStatus.FULFILLING: frozenset(
        {OrderStatus.FULFILLING, OrderStatus.FULFILLED, OrderStatus.FAILED}
    ),
    OrderStatus.FULFILLED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
    OrderStatus.FAILED: frozenset(),
}
