"""orders-worker's Dramatiq actors, declared on the broker they are given."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from flotilla.contracts import FulfilOrder

from ._fulfilment import Fulfilment
from ._settings import OrdersSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OrdersActors:
    fulfil_order: dramatiq.Actor[Any, Any]
    mark_order_failed: dramatiq.Actor[Any, Any]


def declare_actors(
    broker: dramatiq.Broker, fulfilment: Fulfilment, settings: OrdersSettings
) -> OrdersActors:
    """Declare ``fulfil_order`` (queue ``orders``) and its retries-exhausted handler."""

    @dramatiq.actor(
        broker=broker,
        queue_name=FulfilOrder.queue,
        actor_name=FulfilOrder.actor,
        max_retries=settings.fulfil_max_retries,
        min_backoff=settings.fulfil_min_backoff_ms,
        max_backoff=settings.fulfil_max_backoff_ms,
        time_limit=settings.fulfil_time_limit_ms,
        on_retry_exhausted="mark_order_failed",
    )
    def fulfil_order(payload: dict[str, Any]) -> None:
        message = FulfilOrder.from_payload(payload)
        status = fulfilment.fulfil(message.order_id, attempt=_current_message_id())
        logger.info("order processed", extra={"order": str(message.order_id), "status": status})

    @dramatiq.actor(
        broker=broker,
        queue_name=FulfilOrder.queue,
        actor_name="mark_order_failed",
        max_retries=10,
        min_backoff=1_000,
        max_backoff=60_000,
        time_limit=settings.fail_time_limit_ms,
    )
    def mark_order_failed(message_data: dict[str, Any], retry_info: dict[str, Any]) -> None:
        payload = message_data["args"][0]
        order = FulfilOrder.from_payload(payload)
        reason = (message_data.get("options", {}).get("traceback") or "").strip().splitlines()
        summary = reason[-1] if reason else "fulfilment failed"
        # NOTE: as the message that gave up, so the claim its attempts held is its own
        status = fulfilment.fail(
            order.order_id,
            f"gave up after {retry_info['retries'] + 1} attempts: {summary}",
            attempt=str(message_data["message_id"]),
        )
        logger.warning("order given up", extra={"order": str(order.order_id), "status": status})

    return OrdersActors(fulfil_order=fulfil_order, mark_order_failed=mark_order_failed)


def _current_message_id() -> str:
    """The id of the message being processed: the same for every retry of it."""
    message = CurrentMessage.get_current_message()
    return str(message.message_id) if message is not None else f"direct-{uuid.uuid4()}"
