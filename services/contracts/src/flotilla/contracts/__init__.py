"""The orders domain's vocabulary that crosses members: an order's statuses with the
transitions between them (:mod:`flotilla.contracts.statuses`) and the messages between services
(:mod:`flotilla.contracts.messages`). Producers and consumers, the API, the saga, the load
command and the tests all import them from here (services never import each other;
``flotilla.core`` names no domain).

The messages are imported when first named, so a member that needs only the statuses (the CLI)
does not need the messaging stack (the ``messages`` extra).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .statuses import TRANSITIONS, OrderStatus

if TYPE_CHECKING:
    from .messages import FulfilOrder, OrderConfirmation, OrderLine

__all__ = ["TRANSITIONS", "FulfilOrder", "OrderConfirmation", "OrderLine", "OrderStatus"]

_MESSAGES = ("FulfilOrder", "OrderConfirmation", "OrderLine")


def __getattr__(name: str) -> Any:
    if name in _MESSAGES:
        from . import messages

        return getattr(messages, name)
    raise AttributeError(f"module 'flotilla.contracts' has no attribute {name!r}")
